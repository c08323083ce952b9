"""Review tasks made from the demo catalogs: every queue filled, gold answers from ground truth, reruns."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from annotation.demo_catalog.generator import DemoCatalog, demo_catalog_make
from annotation.demo_catalog.review_tasks import (
    FLAGGED_PAIRS_MAX,
    DemoReviewTasksError,
    demo_review_tasks_create,
    image_features,
    stand_in_verdict,
)
from annotation.importing.folder_manifest import folder_manifest_build
from annotation.models import Image, Instance, Product, ReviewTask, TaskKind
from annotation.review.queues import queue_definition
from annotation.services.catalog_import import catalog_import

DREAMBOOTH = Path(__file__).resolve().parents[2] / "annotation" / "demo_data" / "dreambooth_subset"
SOURCE = "demo-generated"
SIZE = 96
QUEUES = [kind.value for kind in TaskKind]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoCatalog:
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("review") / "catalog", instances=12, seed=3, image_size=SIZE
    )


@pytest.fixture
def truth(db, demo) -> dict:
    """The demo catalog imported (into this test's database and media root); its ground truth."""
    catalog_import(manifest_path=demo.manifest_path, images_root=demo.images_root, source=SOURCE)
    return json.loads(demo.ground_truth_path.read_text(encoding="utf-8"))


@pytest.fixture
def made(truth, demo) -> dict[str, int]:
    return demo_review_tasks_create(ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5)


def _key_of_instance(truth: dict) -> dict[int, str]:
    return {
        instance_id: truth["products"][external_id]["instance"]
        for instance_id, external_id in Product.objects.filter(source=SOURCE).values_list(
            "instance_id", "external_id"
        )
    }


def _tasks(kind: str, *, gold: bool) -> list[ReviewTask]:
    return list(ReviewTask.objects.filter(kind=kind, is_gold=gold).order_by("pk"))


def test_every_queue_gets_tasks_and_gold_and_a_second_run_creates_nothing(made, demo):
    for kind in QUEUES:
        assert made[kind] == len(_tasks(kind, gold=False)) > 0, kind
        assert made[f"{kind}_gold"] == len(_tasks(kind, gold=True)) > 0, kind
    assert made["generated_images"] == Image.objects.filter(origin=Image.Origin.GENERATED).count() > 0
    # Every gold answer is a verdict of its queue, and gold copies are about subjects that have a task.
    for gold in ReviewTask.objects.filter(is_gold=True):
        assert gold.gold_answer in queue_definition(gold.kind).verdicts
        assert ReviewTask.objects.filter(kind=gold.kind, subject_key=gold.subject_key.removeprefix("gold:"))

    tasks, images = ReviewTask.objects.count(), Image.objects.count()
    again = demo_review_tasks_create(ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5)
    assert set(again.values()) == {0}
    assert (ReviewTask.objects.count(), Image.objects.count()) == (tasks, images)


def test_image_verification_covers_every_photo_and_its_gold_follows_the_bad_images(made, truth):
    photos = set(Image.objects.filter(product__source=SOURCE).values_list("pk", flat=True))
    assert {task.image_id for task in _tasks(TaskKind.IMAGE_VERIFICATION, gold=False)} == photos

    bad = {bad["image"] for bad in truth["bad_images"]}
    golds = _tasks(TaskKind.IMAGE_VERIFICATION, gold=True)
    assert {gold.gold_answer for gold in golds} == {"keep", "reject_image"}
    for gold in golds:
        assert gold.gold_answer == ("reject_image" if gold.image.source_path in bad else "keep")


def test_duplicate_queue_holds_the_listed_duplicates_and_same_category_distractors(made, truth):
    product = {p.external_id: p for p in Product.objects.filter(source=SOURCE)}
    key_of = {p.pk: truth["products"][p.external_id]["instance"] for p in product.values()}
    tasks = {(t.product_a_id, t.product_b_id): t for t in _tasks(TaskKind.DUPLICATE_MERGE, gold=False)}
    listed = {tuple(sorted((product[a].pk, product[b].pk))) for a, b in truth["duplicate_listings"]}
    assert listed and listed <= set(tasks)
    assert len(tasks) > len(listed)  # distractors too

    for (a, b), task in tasks.items():
        flagged = task.payload["flagged_pairs"]
        assert 1 <= len(flagged) <= FLAGGED_PAIRS_MAX
        sims = [sim for _, _, sim in flagged]
        assert sims == sorted(sims, reverse=True) and task.similarity == pytest.approx(sims[0])
        for image_a, image_b, _ in flagged:
            assert Image.objects.get(pk=image_a).product_id == a
            assert Image.objects.get(pk=image_b).product_id == b

    golds = {
        (g.product_a_id, g.product_b_id): g.gold_answer for g in _tasks(TaskKind.DUPLICATE_MERGE, gold=True)
    }
    assert any(golds.get(pair) == "same" for pair in listed)  # the duplicate listing is a gold "same"
    assert "different" in golds.values()
    for (a, b), answer in golds.items():
        assert answer == ("same" if key_of[a] == key_of[b] else "different")


def test_hard_negative_queue_pairs_instances_of_a_category_and_always_the_twins(made, truth):
    key_of = _key_of_instance(truth)
    category = dict(Instance.objects.values_list("pk", "category__name"))
    pairs = {}
    for task in _tasks(TaskKind.HARD_NEGATIVE, gold=False):
        assert category[task.instance_id] == category[task.candidate_instance_id]
        assert task.payload["flagged_pairs"] and task.similarity is not None
        pairs[frozenset((key_of[task.instance_id], key_of[task.candidate_instance_id]))] = task
    twins = {frozenset((t["instance_a"], t["instance_b"])) for t in truth["twin_pairs"]}
    assert twins and twins <= set(pairs)

    golds = _tasks(TaskKind.HARD_NEGATIVE, gold=True)
    assert "hard_negative" in {gold.gold_answer for gold in golds}
    for gold in golds:
        a, b = key_of[gold.instance_id], key_of[gold.candidate_instance_id]
        if gold.gold_answer == "same_object":
            assert a == b  # the two listings of one object
        else:
            assert gold.gold_answer == "hard_negative" and frozenset((a, b)) in twins


def test_synthetic_stand_ins_are_generated_images_stored_by_content(made, truth):
    instances = set(Product.objects.filter(source=SOURCE).values_list("instance_id", flat=True))
    generated = list(Image.objects.filter(origin=Image.Origin.GENERATED))
    # Near-twins to keep, and the two ways a generation fails: too close, or not like the object at all.
    assert {stand_in_verdict(image.source_path) for image in generated} == set(
        queue_definition(TaskKind.SYNTHETIC_VALIDATION).verdicts
    )
    for image in generated:
        assert image.product_id is None and image.generated_for_id in instances
        assert image.file.name == f"images/{image.sha256[:2]}/{image.sha256}.jpg"
        with default_storage.open(image.file.name, "rb") as handle:
            content = handle.read()
        assert hashlib.sha256(content).hexdigest() == image.sha256
        assert PILImage.open(io.BytesIO(content)).size == (image.width, image.height) == (SIZE, SIZE)

    tasks = _tasks(TaskKind.SYNTHETIC_VALIDATION, gold=False)
    assert {(t.image_id, t.instance_id) for t in tasks} == {(i.pk, i.generated_for_id) for i in generated}
    for gold in _tasks(TaskKind.SYNTHETIC_VALIDATION, gold=True):
        assert gold.gold_answer == stand_in_verdict(gold.image.source_path)
    # Stand-ins never count as photos of a product: verification doesn't ask about them.
    verified = {t.image_id for t in ReviewTask.objects.filter(kind=TaskKind.IMAGE_VERIFICATION)}
    assert not verified & {image.pk for image in generated}


def test_the_stand_in_similarity_ranks_photos_of_one_object_above_photos_of_others(made, truth):
    """Not CLIP, but it must order the queues sensibly: same object above different objects on average."""
    key_of = _key_of_instance(truth)
    images = list(Image.objects.filter(product__source=SOURCE).select_related("product"))
    features = []
    for image in images:
        with default_storage.open(image.file.name, "rb") as handle, PILImage.open(handle) as picture:
            features.append(image_features(picture))
    similarity = np.array(features) @ np.array(features).T
    keys = np.array([key_of[image.product.instance_id] for image in images])
    same = keys[:, None] == keys[None, :]
    np.fill_diagonal(same, False)
    different = keys[:, None] != keys[None, :]
    assert similarity[same].mean() > similarity[different].mean() + 0.05


def test_the_dreambooth_subset_gets_class_mates_as_hard_negatives_and_no_invented_answers(db, tmp_path):
    subjects = {
        "dog": "dog",
        "dog2": "dog",
        "dog3": "dog",
        "backpack": "backpack",
        "backpack_dog": "backpack",
    }
    subjects |= {"cat": "cat", "can": "can"}
    classes = tmp_path / "classes.csv"
    classes.write_text(
        "subject,class\n" + "".join(f"{s},{c}\n" for s, c in subjects.items()), encoding="utf-8"
    )
    folder_manifest_build(root=DREAMBOOTH, output=tmp_path / "m.jsonl", classes_csv=classes)
    catalog_import(manifest_path=tmp_path / "m.jsonl", images_root=DREAMBOOTH, source="dreambooth")

    made = demo_review_tasks_create(ground_truth_path=None, source="dreambooth")
    subject = dict(Product.objects.values_list("instance_id", "external_id"))
    assert made[TaskKind.IMAGE_VERIFICATION] == Image.objects.count()
    hard = {
        frozenset((subject[t.instance_id], subject[t.candidate_instance_id]))
        for t in _tasks(TaskKind.HARD_NEGATIVE, gold=False)
    }
    # Every subject has more photos than class mates, so k covers them all: exactly the same-class pairs.
    assert hard == {
        frozenset(pair)
        for pair in [("dog", "dog2"), ("dog", "dog3"), ("dog2", "dog3"), ("backpack", "backpack_dog")]
    }
    assert made[TaskKind.DUPLICATE_MERGE] > 0
    assert made[TaskKind.SYNTHETIC_VALIDATION] == made["generated_images"] == 0
    # Gold only where the layout is the answer: two subject folders are two objects.
    assert made[f"{TaskKind.DUPLICATE_MERGE}_gold"] > 0
    assert {g.gold_answer for g in ReviewTask.objects.filter(is_gold=True)} == {"different"}
    assert {g.kind for g in ReviewTask.objects.filter(is_gold=True)} == {TaskKind.DUPLICATE_MERGE}

    assert set(demo_review_tasks_create(ground_truth_path=None, source="dreambooth").values()) == {0}


def test_command_prints_the_counts_and_refuses_what_it_cant_use(truth, demo, tmp_path):
    out = io.StringIO()
    call_command(
        "make_demo_review_tasks",
        "--source",
        SOURCE,
        "--ground-truth",
        str(demo.ground_truth_path),
        stdout=out,
    )
    text = out.getvalue()
    assert "Duplicate merge:" in text and "Generated stand-in images:" in text
    assert ReviewTask.objects.filter(kind=TaskKind.SYNTHETIC_VALIDATION).exists()

    with pytest.raises(CommandError, match="import the catalog first"):
        call_command("make_demo_review_tasks", "--source", "nothing-here", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no ground truth file"):
        call_command(
            "make_demo_review_tasks", "--source", SOURCE, "--ground-truth", str(tmp_path / "none.json")
        )


def test_ground_truth_of_another_catalog_or_no_ground_truth_at_all_is_refused(truth, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({**truth, "products": {"ELSEWHERE-1": {"instance": "I0001"}}}), encoding="utf-8"
    )
    with pytest.raises(DemoReviewTasksError, match="none of the source's products"):
        demo_review_tasks_create(ground_truth_path=other, source=SOURCE)
    other.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DemoReviewTasksError, match="not a demo catalog's ground truth"):
        demo_review_tasks_create(ground_truth_path=other, source=SOURCE)
    assert not ReviewTask.objects.exists()


def test_gold_only_adds_gold_copies_of_the_tasks_already_queued_and_nothing_twice(truth, demo, capsys):
    made = demo_review_tasks_create(
        ground_truth_path=demo.ground_truth_path, source=SOURCE, seed=5, gold_per_queue=0
    )
    assert not ReviewTask.objects.filter(is_gold=True).exists()
    regular = ReviewTask.objects.filter(is_gold=False).count()

    arguments = ["make_demo_review_tasks", "--source", SOURCE, "--ground-truth", str(demo.ground_truth_path)]
    call_command(*arguments, "--gold-only", "--gold-per-queue", "3")
    out = capsys.readouterr().out
    assert out.startswith(f"Gold tasks added for '{SOURCE}': 3 image verification")
    gold = ReviewTask.objects.filter(is_gold=True)
    assert gold.count() == sum(min(3, made[queue]) for queue in QUEUES) and gold.count() >= 9
    assert ReviewTask.objects.filter(is_gold=False).count() == regular  # no new regular task

    call_command(*arguments, "--gold-only", "--gold-per-queue", "3")
    assert ReviewTask.objects.filter(is_gold=True).count() == gold.count()
