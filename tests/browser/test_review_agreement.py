"""The agreement screens after the demo's answer step, in a real browser: a researcher reads kappa and the
simulated annotators' gold accuracy on the statistics page, then settles a disagreement on the adjudication
page, and the database records it."""

import io
import re

from django.core.management import call_command

from annotation.demo_catalog.overlap import NOISY_ANNOTATORS, NoisyAnnotator
from annotation.demo_catalog.review_tasks import demo_review_tasks_create
from annotation.models import HardNegativePair, ReviewDecision, ReviewQueue, ReviewTask, TaskKind
from annotation.review.statistics import annotator_figures, queue_agreement
from tests.browser.conftest import BROWSER_TEST, CHROMIUM, SOURCE
from tests.factories import ResearcherFactory

pytestmark = BROWSER_TEST

if CHROMIUM is not None:
    from playwright.sync_api import expect

HN = TaskKind.HARD_NEGATIVE.value
SIMULATED = [annotator.username for annotator in NOISY_ANNOTATORS]

# Every image on the page has loaded (the adjudication cards show photos).
IMAGES_LOADED = "() => [...document.images].every((img) => img.complete && img.naturalWidth > 0)"


def demo_answer_step(ground_truth: str) -> None:
    """The demo's gold and answer steps (scripts/demo.sh) on the small catalog, with its tasks already made."""
    common = ["--source", SOURCE, "--ground-truth", ground_truth, "--seed", "7"]
    out = io.StringIO()
    call_command("make_demo_review_tasks", *common, "--gold-only", stdout=out)
    call_command(
        "make_demo_review_tasks", *common, "--gold-only", "--kinds", HN, "--gold-per-queue", "12", stdout=out
    )
    call_command("answer_demo_tasks", *common, "--overlap-queue", HN, stdout=out)


def test_a_researcher_reads_the_agreement_and_settles_a_disagreement(
    catalog, demo_files, new_page, screenshots, monkeypatch
):
    # The small catalog has a handful of hard-negative tasks, and the demo's mistakes are seeded by task id
    # (which differs from run to run): one annotator who never errs and one who always does disagree on
    # every task, whatever the ids.
    annotators = (NoisyAnnotator(SIMULATED[0], 0.0, 1), NoisyAnnotator(SIMULATED[1], 1.0, 2))
    monkeypatch.setattr("annotation.demo_catalog.oracle.NOISY_ANNOTATORS", annotators)
    monkeypatch.setattr("annotation.management.commands.answer_demo_tasks.NOISY_ANNOTATORS", annotators)
    demo_review_tasks_create(ground_truth_path=demo_files.ground_truth_path, source=SOURCE, seed=5)
    # The small catalog has few tasks: serve gold often, so both annotators meet some.
    ReviewQueue.objects.filter(kind=HN).update(gold_rate=0.3)
    demo_answer_step(str(demo_files.ground_truth_path))
    agreement = next(row for row in queue_agreement() if row.kind == HN)
    disputed = list(ReviewTask.objects.filter(kind=HN, status=ReviewTask.Status.NEEDS_ADJUDICATION))
    assert agreement.kappa is not None and disputed

    page = new_page(ResearcherFactory(username="res"))
    page.goto("/review/statistics/")
    row = page.locator("#agreement tbody tr", has_text="Hard-negative selection")
    cells = row.locator("td")
    expect(cells.nth(5)).to_have_text(f"{agreement.kappa:.3f}")
    assert re.fullmatch(r"-?\d\.\d{3}", cells.nth(5).inner_text())
    expect(cells.nth(6)).to_have_text(str(len(disputed)))
    figures = {person.username: person for person in annotator_figures()}
    for name in SIMULATED:
        person = figures[name]
        accuracy = page.locator("#annotators tbody tr", has=page.locator("strong", has_text=name)).locator(
            "td"
        )
        expect(accuracy.nth(5)).to_have_text(
            f"{person.gold_accuracy * 100:.1f}% of {person.gold_answered}", use_inner_text=True
        )
    page.screenshot(path=str(screenshots / "agreement-statistics.png"), full_page=True)

    # The disputes count links to the adjudication page of the queue, which lists them with both votes.
    cells.nth(6).locator("a").click()
    expect(page).to_have_url(re.compile(r"/review/adjudication/\?kind=hard_negative$"))
    items = page.locator(".adjudication-item")
    expect(items).to_have_count(min(20, len(disputed)))
    first = items.first
    task_id = int(first.get_attribute("id").removeprefix("adjudicate-"))
    for name in SIMULATED:
        expect(first.locator(".vote", has_text=name)).to_have_count(1)
    page.wait_for_function(IMAGES_LOADED)
    page.screenshot(path=str(screenshots / "agreement-adjudication.png"))

    # Settle it as a hard negative: the item says so in place, and the outcome is applied.
    first.get_by_role("button", name="Hard negative: keep").click()
    settled = page.locator(f"#adjudicate-{task_id}.settled")
    expect(settled).to_have_text(f"Task #{task_id}: Hard negative: keep.")
    page.screenshot(path=str(screenshots / "agreement-adjudicated.png"))
    task = ReviewTask.objects.get(pk=task_id)
    assert (task.status, task.outcome) == (ReviewTask.Status.DECIDED, "hard_negative")
    ruling = ReviewDecision.objects.get(task=task, is_adjudication=True)
    assert (ruling.annotator.username, ruling.verdict) == ("res", "hard_negative")
    assert HardNegativePair.objects.filter(pk=task.outcome_effects["hard_negative_pair"]).exists()

    # One dispute fewer, on both pages.
    page.reload()
    expect(page.locator(f"#adjudicate-{task_id}")).to_have_count(0)
    page.goto("/review/statistics/")
    expect(row.locator("td").nth(6)).to_have_text(str(len(disputed) - 1))
