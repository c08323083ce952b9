"""One demo queue with overlap two, answered by two simulated annotators who make mistakes: afterwards the
statistics have a kappa and gold accuracy for both, the adjudication queue has disputes, and a rerun adds
nothing."""

import io
import re
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q
from django.test import Client

from annotation.demo_catalog.generator import DemoCatalog, demo_catalog_make
from annotation.demo_catalog.oracle import ORACLE_USERNAME, demo_queues_answer
from annotation.demo_catalog.overlap import NOISY_ANNOTATORS, NoisyAnnotator, demo_overlap_raise
from annotation.demo_catalog.review_tasks import (
    DemoReviewTasksError,
    demo_gold_tasks_create,
    demo_review_tasks_create,
)
from annotation.models import ReviewDecision, ReviewQueue, ReviewTask, TaskKind
from annotation.review.queues import queue_definition
from annotation.review.statistics import annotator_figures, queue_agreement
from annotation.review.task_creation import HardNegativeCandidate, hard_negative_tasks_create
from annotation.services.catalog_import import catalog_import
from tests.factories import ProductFactory, ResearcherFactory

SOURCE = "demo-generated"
ELSEWHERE = "elsewhere"
IV, DM, HN, SV = (kind.value for kind in TaskKind)
SIMULATED = {annotator.username for annotator in NOISY_ANNOTATORS}
Status = ReviewTask.Status


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoCatalog:
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("agreement") / "catalog", instances=12, seed=3, image_size=96
    )


@pytest.fixture(autouse=True)
def decisive_annotators(monkeypatch) -> None:
    """The mistakes are seeded by task id, and ids differ from run to run on PostgreSQL (its sequences go on
    across tests): on a catalog this small the demo's 5% and 12% could miss every task or hit none. A careful
    annotator who never errs and one who errs on half the tasks disagree on some tasks and agree on others
    whatever the ids."""
    annotators = (NoisyAnnotator("annotator-sim-a", 0.0, 1), NoisyAnnotator("annotator-sim-b", 0.5, 2))
    monkeypatch.setattr("annotation.demo_catalog.oracle.NOISY_ANNOTATORS", annotators)
    monkeypatch.setattr("annotation.management.commands.answer_demo_tasks.NOISY_ANNOTATORS", annotators)


@pytest.fixture
def queues(db, demo: DemoCatalog) -> ReviewTask:
    """The demo catalog's queues filled at overlap one, as mining leaves them; the hard-negative queue serves
    gold often (the catalog is small) and has up to six gold tasks, as the demo tops it up. Returns a hard-negative
    task of another source, the kind the human demo annotator works."""
    catalog_import(manifest_path=demo.manifest_path, images_root=demo.images_root, source=SOURCE)
    ReviewQueue.objects.update_or_create(kind=HN, defaults={"gold_rate": 0.3})
    demo_review_tasks_create(ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5)
    demo_gold_tasks_create(
        ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5, gold_per_queue=6, kinds=[HN]
    )
    a, b = ProductFactory(source=ELSEWHERE), ProductFactory(source=ELSEWHERE)
    (foreign,) = hard_negative_tasks_create(
        candidates=[HardNegativeCandidate(instance_id=a.instance_id, candidate_instance_id=b.instance_id)]
    )
    return ReviewTask.objects.get(pk=foreign)


def _answer(demo: DemoCatalog) -> str:
    out = io.StringIO()
    call_command(
        "answer_demo_tasks",
        "--source",
        SOURCE,
        "--ground-truth",
        str(demo.ground_truth_path),
        "--seed",
        "7",
        "--overlap-queue",
        HN,
        stdout=out,
    )
    return out.getvalue()


def test_two_noisy_annotators_answer_the_overlap_queue_and_disagree_on_some_tasks(queues, demo):
    foreign = queues
    assert set(ReviewTask.objects.filter(kind=HN).values_list("required_decisions", flat=True)) == {1}

    text = _answer(demo)

    # Every regular hard-negative task of the source took two decisions, one from each simulated annotator.
    tasks = ReviewTask.objects.filter(kind=HN, is_gold=False).exclude(pk=foreign.pk)
    assert tasks.exists()
    for task in tasks:
        assert task.required_decisions == 2 and task.decision_count == 2
        votes = dict(task.decisions.values_list("annotator__username", "verdict"))
        assert set(votes) == SIMULATED
        agreed = len(set(votes.values())) == 1
        # Unanimous tasks are decided with that verdict; the others wait for a researcher.
        assert task.status == (Status.DECIDED if agreed else Status.NEEDS_ADJUDICATION)
        if agreed:
            assert task.outcome == next(iter(votes.values()))
    disputed = tasks.filter(status=Status.NEEDS_ADJUDICATION).count()
    assert 0 < disputed < tasks.count()
    # The oracles answered the other queues alone, and nobody else answered this one.
    assert not ReviewDecision.objects.filter(kind=HN, is_gold=False).exclude(
        annotator__username__in=SIMULATED
    )
    assert set(ReviewDecision.objects.exclude(kind=HN).values_list("annotator__username", flat=True)) == {
        ORACLE_USERNAME.format(number=1)
    }
    # The queue's setting and another source's task (the human annotator's) keep overlap one.
    assert ReviewQueue.objects.get(kind=HN).required_decisions == 1
    foreign.refresh_from_db()
    assert foreign.required_decisions == 1 and foreign.status == Status.OPEN and foreign.decision_count == 0

    # What the statistics page reads: a kappa over every task, disputes, gold accuracy for both.
    agreement = next(row for row in queue_agreement() if row.kind == HN)
    assert agreement.tasks == tasks.count() and agreement.disputed_open == disputed
    assert isinstance(agreement.kappa, float) and -1 <= agreement.kappa < 1
    figures = {person.username: person for person in annotator_figures()}
    for name in SIMULATED:
        queue = figures[name].per_queue[HN]
        assert queue.gold_answered > 0 and queue.gold_accuracy is not None
        assert queue.decisions == tasks.count() + queue.gold_answered
    # ... and what the command printed of it.
    assert f"Fleiss' kappa {agreement.kappa:.3f}, {disputed} waiting for adjudication" in text
    for name in SIMULATED:
        queue = figures[name].per_queue[HN]
        assert re.search(
            rf"{name} .*gold accuracy \d+% \({queue.gold_correct} of {queue.gold_answered}\)", text
        )

    # A rerun answers nothing and raises nothing.
    decisions = ReviewDecision.objects.count()
    again = _answer(demo)
    assert ReviewDecision.objects.count() == decisions
    assert "Hard-negative selection:      0 decisions" in again
    assert f"Fleiss' kappa {agreement.kappa:.3f}" in again


def test_a_rerun_of_the_gold_step_after_merges_adds_nothing(db, demo):
    """The duplicate queue merges instances that hard-negative gold copies name: they still count."""
    catalog_import(manifest_path=demo.manifest_path, images_root=demo.images_root, source=SOURCE)
    ReviewQueue.objects.update_or_create(kind=HN, defaults={"gold_rate": 0.3})
    # Fewer gold copies than answerable tasks, so a rerun that lost sight of some would make new ones.
    made = demo_review_tasks_create(
        ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5, gold_per_queue=2
    )
    assert made[f"{HN}_gold"] == 2
    demo_queues_answer(source=SOURCE, ground_truth_path=demo.ground_truth_path, seed=7, overlap_kind=HN)
    merged = Q(instance__merged_into__isnull=False) | Q(candidate_instance__merged_into__isnull=False)
    assert ReviewTask.objects.filter(merged, kind=HN, is_gold=True).exists()

    again = demo_gold_tasks_create(
        ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5, gold_per_queue=2
    )
    assert set(again.values()) == {0}


def test_the_statistics_and_adjudication_pages_show_the_agreement(queues, demo):
    _answer(demo)
    client = Client()
    client.force_login(ResearcherFactory())
    page = client.get("/review/statistics/").content.decode()
    kappa = next(row for row in queue_agreement() if row.kind == HN).kappa
    assert f"<td>{kappa:.3f}</td>" in page
    for name in SIMULATED:
        assert f"<strong>{name}</strong>" in page
    listed = client.get("/review/adjudication/", {"kind": HN}).content.decode()
    disputed = ReviewTask.objects.filter(kind=HN, status=Status.NEEDS_ADJUDICATION)
    for task in disputed[:20]:
        assert f'id="adjudicate-{task.pk}"' in listed


def test_mistakes_are_seeded_per_annotator_and_task_at_the_annotators_rate():
    verdicts = queue_definition(HN).verdicts
    careful, hasty = NOISY_ANNOTATORS
    assert careful.error_rate < hasty.error_rate
    tasks = [ReviewTask(pk=pk, kind=HN) for pk in range(1, 4001)]
    answers = {
        annotator: [annotator.verdict("hard_negative", task=t, verdicts=verdicts, seed=7) for t in tasks]
        for annotator in NOISY_ANNOTATORS
    }
    for annotator, given in answers.items():
        wrong = Counter(verdict for verdict in given if verdict != "hard_negative")
        assert set(wrong) == {"too_easy", "same_object"}  # a mistake is one of the other verdicts
        assert abs(sum(wrong.values()) / len(tasks) - annotator.error_rate) < 0.02
        # The same task gets the same answer again (a rerun, or an interrupted run's continuation).
        assert given[:50] == [
            annotator.verdict("hard_negative", task=t, verdicts=verdicts, seed=7) for t in tasks[:50]
        ]
    # The two err on different tasks, and another seed moves the mistakes.
    assert answers[careful] != answers[hasty]
    other_seed = [careful.verdict("hard_negative", task=t, verdicts=verdicts, seed=8) for t in tasks]
    assert other_seed != answers[careful]
    never = NoisyAnnotator("perfect", error_rate=0.0, number=9)
    assert {never.verdict("too_easy", task=t, verdicts=verdicts, seed=1) for t in tasks} == {"too_easy"}


def test_raising_the_overlap_leaves_answered_decided_and_gold_tasks_alone(queues):
    hard = ReviewTask.objects.filter(kind=HN)
    regular = list(hard.filter(is_gold=False).order_by("pk"))
    decided, answered = regular[0], regular[1]
    ReviewTask.objects.filter(pk=decided.pk).update(status=Status.DECIDED, decision_count=1)
    ReviewTask.objects.filter(pk=answered.pk).update(decision_count=1)
    untouched = {decided.pk, answered.pk} | set(hard.filter(is_gold=True).values_list("pk", flat=True))

    raised = demo_overlap_raise(tasks=hard)
    assert raised == len(regular) - 2
    for task in hard:
        assert task.required_decisions == (1 if task.pk in untouched else 2)
    assert demo_overlap_raise(tasks=hard) == 0  # idempotent
    assert demo_overlap_raise(tasks=hard, required=3) == raised  # a higher overlap is a raise again
    with pytest.raises(ValueError, match="between 1 and 9"):
        demo_overlap_raise(tasks=hard, required=10)


def test_gold_for_one_queue_and_the_refusals(queues, demo):
    gold = ReviewTask.objects.filter(is_gold=True)
    before = Counter(gold.values_list("kind", flat=True))
    assert before[HN] >= 4  # as many as the small catalog has answers for, up to six
    out = io.StringIO()
    path = str(demo.ground_truth_path)
    arguments = ["--source", SOURCE, "--ground-truth", path, "--seed", "5", "--gold-only"]
    call_command("make_demo_review_tasks", *arguments, "--kinds", DM, "--gold-per-queue", "6", stdout=out)
    after = Counter(gold.values_list("kind", flat=True))
    assert after[DM] > before[DM] and {k: n for k, n in after.items() if k != DM} == {
        k: n for k, n in before.items() if k != DM
    }
    assert "duplicate merge" in out.getvalue() and "image verification" not in out.getvalue()
    call_command("make_demo_review_tasks", *arguments, "--kinds", DM, "--gold-per-queue", "6", stdout=out)
    assert Counter(gold.values_list("kind", flat=True)) == after  # a rerun adds nothing

    with pytest.raises(CommandError, match="--kinds goes with --gold-only"):
        call_command("make_demo_review_tasks", "--source", SOURCE, "--kinds", DM)
    with pytest.raises(DemoReviewTasksError, match="no review queue 'gold'"):
        demo_gold_tasks_create(ground_truth_path=None, source=SOURCE, kinds=["gold"])
    with pytest.raises(DemoReviewTasksError, match="no review queue 'gold' to answer with overlap"):
        demo_queues_answer(source=SOURCE, ground_truth_path=None, overlap_kind="gold")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("answer_demo_tasks", "--source", SOURCE, "--overlap-queue", "gold")
