"""The demo oracle: simulated annotators answer a demo catalog's queues from its ground truth, through the
real lease and decision services."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.demo_catalog.generator import DemoCatalog, demo_catalog_make
from annotation.demo_catalog.oracle import demo_queues_answer
from annotation.demo_catalog.review_tasks import (
    DemoReviewTasksError,
    demo_review_tasks_create,
    stand_in_verdict,
)
from annotation.models import (
    HardNegativePair,
    Image,
    Instance,
    InstanceMerge,
    Product,
    ReviewDecision,
    ReviewQueue,
    ReviewSkip,
    ReviewStatus,
    ReviewTask,
    TaskKind,
)
from annotation.review.task_creation import (
    HardNegativeCandidate,
    hard_negative_tasks_create,
    image_verification_tasks_create,
    synthetic_validation_tasks_create,
)
from annotation.roles import ANNOTATOR
from annotation.services.catalog_import import catalog_import
from tests.annotation.dataset.builders import generated
from tests.factories import ImageFactory, ProductFactory

SOURCE = "demo-generated"
ELSEWHERE = "elsewhere"
OPEN = ReviewTask.Status.OPEN
IV, DM, HN, SV = (kind.value for kind in TaskKind)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoCatalog:
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("oracle") / "catalog", instances=12, seed=3, image_size=96
    )


@pytest.fixture
def truth(db, demo: DemoCatalog) -> dict:
    """The demo catalog imported with its queues filled; hard negatives need two decisions, image
    verification serves gold often, and another source's tasks come first in the image queue."""
    catalog_import(manifest_path=demo.manifest_path, images_root=demo.images_root, source=SOURCE)
    ReviewQueue.objects.update_or_create(kind=HN, defaults={"required_decisions": 2})
    ReviewQueue.objects.update_or_create(kind=IV, defaults={"gold_rate": 0.3})
    demo_review_tasks_create(ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5)
    foreign = ProductFactory(source=ELSEWHERE)
    for _ in range(3):
        ImageFactory(product=foreign)
    image_verification_tasks_create(images=Image.objects.filter(product__source=ELSEWHERE), priority=-1)
    return json.loads(Path(demo.ground_truth_path).read_text(encoding="utf-8"))


def _root(instance_id: int) -> int:
    instance = Instance.objects.get(pk=instance_id)
    while instance.merged_into_id is not None:
        instance = instance.merged_into
    return instance.pk


def _total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def test_the_oracle_resolves_every_queue_as_the_ground_truth_says(truth, demo):
    counts = demo_queues_answer(source=SOURCE, ground_truth_path=demo.ground_truth_path, seed=1)

    # Every regular task of the source is decided (or closed by a merge); the other source is untouched.
    foreign = ReviewTask.objects.filter(image__product__source=ELSEWHERE)
    assert not ReviewTask.objects.filter(is_gold=False, status=OPEN).exclude(pk__in=foreign).exists()
    assert not ReviewTask.objects.filter(status=ReviewTask.Status.NEEDS_ADJUDICATION).exists()
    assert all(task.status == OPEN and task.decision_count == 0 for task in foreign)
    assert not ReviewSkip.objects.exists()  # the passes on the other source's tasks were cleared

    product = {p.external_id: p for p in Product.objects.filter(source=SOURCE)}
    key_of = {p.instance_id: truth["products"][p.external_id]["instance"] for p in product.values()}
    # The duplicate listings of the truth became one instance each, and nothing else was merged.
    assert truth["duplicate_listings"]
    for a, b in truth["duplicate_listings"]:
        assert product[a].instance_id == product[b].instance_id
    assert InstanceMerge.objects.count() == len(truth["duplicate_listings"])
    assert len(set(key_of.values())) == len(set(key_of))

    # The twins are approved hard negatives; a hard-negative task took two oracles' decisions.
    approved = {
        frozenset((key_of[_root(a)], key_of[_root(b)]))
        for a, b in HardNegativePair.objects.values_list("instance_a_id", "instance_b_id")
    }
    twins = {frozenset((t["instance_a"], t["instance_b"])) for t in truth["twin_pairs"]}
    assert twins and twins <= approved
    for task in ReviewTask.objects.filter(kind=HN, is_gold=False, status=ReviewTask.Status.DECIDED):
        names = set(task.decisions.values_list("annotator__username", flat=True))
        assert names == {"demo-oracle-1", "demo-oracle-2"}
    assert (
        _total(counts[HN]) == 2 * ReviewTask.objects.filter(kind=HN, is_gold=False, decision_count=2).count()
    )

    # Stand-ins made to be kept are accepted generated images; the failed ones are rejected.
    stand_ins = Image.objects.filter(origin=Image.Origin.GENERATED)
    assert stand_ins.filter(review_status=ReviewStatus.ACCEPTED).exists()
    for image in stand_ins:
        keep = stand_in_verdict(image.source_path) == "keep"
        assert image.review_status == (ReviewStatus.ACCEPTED if keep else ReviewStatus.REJECTED)
    assert counts[SV] == {
        verdict: sum(stand_in_verdict(i.source_path) == verdict for i in stand_ins)
        for verdict in {stand_in_verdict(i.source_path) for i in stand_ins}
    }

    # The photos the generator spoiled are rejected, every other one accepted.
    bad = {(bad["product_id"], bad["image"]) for bad in truth["bad_images"]}
    assert bad
    for image in Image.objects.filter(product__source=SOURCE).select_related("product"):
        spoiled = (image.product.external_id, image.source_path) in bad
        assert image.review_status == (ReviewStatus.REJECTED if spoiled else ReviewStatus.ACCEPTED)
    assert counts[IV]["reject_image"] == len(bad)

    # The oracles are annotators; they met gold tasks and answered them right; the tallies are the decisions.
    decisions = ReviewDecision.objects.all()
    assert {d.annotator.groups.get().name for d in decisions} == {ANNOTATOR}
    gold = decisions.filter(is_gold=True)
    assert gold.exists() and all(d.is_correct for d in gold)
    assert sum(_total(c) for c in counts.values()) == decisions.count()
    assert sum(_total(counts[f"{kind}_gold"]) for kind in (IV, DM, HN, SV)) == gold.count()

    again = demo_queues_answer(source=SOURCE, ground_truth_path=demo.ground_truth_path, seed=1)
    assert again == {key: {} for key in counts}
    assert ReviewDecision.objects.count() == decisions.count()


def test_a_limited_run_answers_the_first_tasks_of_the_chosen_queues_and_a_later_run_the_rest(truth, demo):
    first = demo_queues_answer(
        source=SOURCE, ground_truth_path=demo.ground_truth_path, kinds=[IV, HN], limit_per_queue=4
    )
    assert set(first) == {IV, f"{IV}_gold", HN, f"{HN}_gold"}
    assert _total(first[IV]) == 4
    assert _total(first[HN]) == 8  # two oracles, the same four tasks: they are decided
    assert ReviewTask.objects.filter(kind=HN, is_gold=False, status=ReviewTask.Status.DECIDED).count() == 4
    assert not ReviewDecision.objects.filter(kind__in=[DM, SV]).exists()

    rest = demo_queues_answer(source=SOURCE, ground_truth_path=demo.ground_truth_path)
    regular = ReviewTask.objects.filter(is_gold=False).exclude(image__product__source=ELSEWHERE)
    assert not regular.filter(status=OPEN).exists()
    assert _total(first[IV]) + _total(rest[IV]) == regular.filter(kind=IV).count()


def test_without_ground_truth_the_fallback_policy_answers(truth):
    """Verification keeps, duplicates stay apart, same-category pairs are hard and others easy, generated
    images that aren't stand-ins are dropped as dissimilar."""
    instances = list(
        Instance.objects.filter(products__source=SOURCE).distinct().order_by("pk").select_related("category")
    )
    a = instances[0]
    b = next(i for i in instances if i.category_id != a.category_id)
    hard_negative_tasks_create(
        candidates=[HardNegativeCandidate(instance_id=a.pk, candidate_instance_id=b.pk)]
    )
    drawn = generated(a, status=ReviewStatus.PENDING)
    synthetic_validation_tasks_create(images=Image.objects.filter(pk=drawn.pk))

    counts = demo_queues_answer(source=SOURCE, ground_truth_path=None)
    assert set(counts[IV]) == {"keep"}
    assert set(counts[DM]) == {"different"} and not InstanceMerge.objects.exists()
    assert counts[HN]["too_easy"] == 2  # the cross-category pair, by both oracles
    assert set(counts[HN]) == {"hard_negative", "too_easy"}
    drawn.refresh_from_db()
    assert drawn.review_status == ReviewStatus.REJECTED and drawn.rejection_reason == "dissimilar"
    assert counts[SV]["drop_dissimilar"] >= 1


def test_command_prints_the_counts_and_refuses_what_it_cant_use(truth, demo, tmp_path):
    out = io.StringIO()
    path = str(demo.ground_truth_path)
    call_command("answer_demo_tasks", "--source", SOURCE, "--ground-truth", path, "--kinds", IV, stdout=out)
    text = out.getvalue()
    assert f"Review tasks answered for '{SOURCE}'" in text and "Image verification:" in text
    assert "reject_image" in text and "Duplicate merge" not in text

    with pytest.raises(CommandError, match="import the catalog first"):
        call_command("answer_demo_tasks", "--source", "nothing-here", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no ground truth file"):
        call_command("answer_demo_tasks", "--source", SOURCE, "--ground-truth", str(tmp_path / "none.json"))
    with pytest.raises(DemoReviewTasksError, match="no review queue 'gold'"):
        demo_queues_answer(source=SOURCE, ground_truth_path=None, kinds=["gold"])
