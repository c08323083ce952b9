"""A researcher launches the demo's tiny evaluation run from its admin page, watches the run page fill in its
report without reloading (the table, the plot), then browses the wrong answers with their images and compares
the run with another (the transformers backend really generates, on the CPU)."""

import re

from django.core.management import call_command

from evaluation import tasks
from evaluation.models import EvaluationResponse, EvaluationRun
from evaluation.services.runs import evaluation_run_create
from tests.browser.conftest import BROWSER_TEST
from tests.factories import ResearcherFactory

pytestmark = BROWSER_TEST


def test_a_researcher_launches_an_evaluation_and_reads_its_report(
    new_page, eval_snapshot, gpu_worker, tmp_path, screenshots
):
    from playwright.sync_api import expect

    gpu_worker(tasks.evaluation_run_task)

    call_command(
        "create_demo_evaluation",
        eval_snapshot.name,
        "--pair-count",
        "6",
        "--multi-count",
        "4",
        "--model-dir",
        str(tmp_path / "tiny-model"),
    )
    run = EvaluationRun.objects.get(name="demo-tiny-qwen")
    page = new_page(ResearcherFactory())
    page.goto("/")
    page.get_by_role("link", name="Evaluation").click()
    expect(page.locator("#benchmarks")).to_contain_text("Twin-Eval (demo)")
    page.get_by_role("link", name="demo-tiny-qwen").click()
    expect(page.locator("#run-status")).to_have_text("draft")
    page.get_by_role("link", name="Settings").click()

    page.get_by_role("button", name="Save and launch").click()

    expect(page).to_have_url(re.compile(rf"/evaluation/runs/{run.pk}/$"))
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=240_000)  # htmx polling, no reload
    table = page.locator("#report-table")
    expect(table).to_contain_text("Twin-Eval (demo)")
    expect(table).to_contain_text("Objects (demo)")
    expect(table).to_contain_text("Mean")
    expect(page.locator("#run-charts svg")).to_have_count(1)
    page.screenshot(path=screenshots / "evaluation_run.png", full_page=True)

    wrong = EvaluationResponse.objects.filter(run=run, correct=False).count()
    page.locator("#wrong-answers").click()
    expect(page.locator("section.response")).to_have_count(min(wrong, 20))
    if wrong:
        first = page.locator("section.response").first
        expect(first.locator("img").first).to_have_js_property("complete", True)
        assert (
            first.locator("img").first.evaluate("image => image.naturalWidth") > 0
        )  # the image really loads
        expect(first.locator(".model-response")).to_be_visible()
    page.screenshot(path=screenshots / "evaluation_wrong_answers.png", full_page=True)

    other = evaluation_run_create(
        name="other", benchmarks=list(run.benchmarks.all()), backend="vllm", model="m"
    )
    page.goto("/evaluation/runs/")
    page.get_by_label("compare demo-tiny-qwen").check()
    page.get_by_label("compare other").check()
    page.locator("#compare-runs").click()
    expect(page.locator("#comparison-table")).to_contain_text("demo-tiny-qwen")
    expect(page.locator("#comparison-table tbody th a").first).to_have_text(
        "demo-tiny-qwen"
    )  # the oldest: base
    page.get_by_label(f"base: {other.name}").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#comparison-table tbody th a").first).to_have_text(other.name)
    page.screenshot(path=screenshots / "evaluation_compare.png", full_page=True)
