"""Creating review tasks: one per subject, idempotent, with the queue's overlap; gold copies."""

import pytest

from annotation.models import Image, ProductDistinction, ReviewStatus, ReviewTask
from annotation.review import task_creation
from annotation.review.task_creation import (
    DuplicateCandidate,
    HardNegativeCandidate,
    duplicate_merge_tasks_create,
    gold_task_create,
    hard_negative_tasks_create,
    image_verification_tasks_create,
    synthetic_validation_tasks_create,
)
from annotation.services.instances import instance_merge
from tests.annotation.review.conftest import DUPLICATES, HARD_NEGATIVES, IMAGES, SYNTHETIC
from tests.factories import ImageFactory, InstanceFactory, ProductFactory

pytestmark = pytest.mark.django_db


def tasks_of(kind: str) -> list[ReviewTask]:
    return list(ReviewTask.objects.filter(kind=kind).order_by("pk"))


def generated_image(instance, **fields) -> Image:
    return ImageFactory(product=None, generated_for=instance, origin=Image.Origin.GENERATED, **fields)


# --- image verification -----------------------------------------------------------------------------------


def test_image_tasks_cover_the_pending_listed_real_images_of_products_not_rejected():
    product = ProductFactory()
    wanted = [ImageFactory(product=product, position=1), ImageFactory(product=product, position=0)]
    ImageFactory(product=product, review_status=ReviewStatus.ACCEPTED)
    ImageFactory(product=product, review_status=ReviewStatus.REJECTED)
    ImageFactory(product=product, is_listed=False)
    generated_image(product.instance)
    ImageFactory(product=ProductFactory(review_status=ReviewStatus.REJECTED))
    accepted_product_image = ImageFactory(product=ProductFactory(review_status=ReviewStatus.ACCEPTED))

    created = image_verification_tasks_create(priority=3)
    tasks = tasks_of(IMAGES)
    assert created == [task.pk for task in tasks]
    # In listing order: product, then position.
    assert [task.image_id for task in tasks] == [wanted[1].pk, wanted[0].pk, accepted_product_image.pk]
    assert [task.subject_key for task in tasks] == [f"image:{task.image_id}" for task in tasks]
    assert {(task.priority, task.status, task.is_gold, task.decision_count) for task in tasks} == {
        (3, ReviewTask.Status.OPEN, False, 0)
    }


def test_image_tasks_are_created_once(configure_queue):
    first = ImageFactory()
    assert len(image_verification_tasks_create()) == 1
    assert image_verification_tasks_create() == []
    second = ImageFactory()
    created = image_verification_tasks_create()
    assert [ReviewTask.objects.get(pk=pk).image_id for pk in created] == [second.pk]
    assert image_verification_tasks_create(images=Image.objects.filter(pk=first.pk)) == []
    assert ReviewTask.objects.count() == 2


def test_only_the_given_images_get_tasks():
    chosen, _ = ImageFactory(), ImageFactory()
    created = image_verification_tasks_create(images=Image.objects.filter(pk=chosen.pk))
    assert [ReviewTask.objects.get(pk=pk).image_id for pk in created] == [chosen.pk]


# --- required decisions come from the queue ------------------------------------------------------------------


def make_one(kind: str) -> list[int]:
    if kind == IMAGES:
        image = ImageFactory()
        return image_verification_tasks_create(images=Image.objects.filter(pk=image.pk))
    if kind == DUPLICATES:
        candidate = DuplicateCandidate(product_a_id=ProductFactory().pk, product_b_id=ProductFactory().pk)
        return duplicate_merge_tasks_create(candidates=[candidate])
    if kind == HARD_NEGATIVES:
        candidate = HardNegativeCandidate(
            instance_id=InstanceFactory().pk, candidate_instance_id=InstanceFactory().pk
        )
        return hard_negative_tasks_create(candidates=[candidate])
    image = generated_image(InstanceFactory())
    return synthetic_validation_tasks_create(images=Image.objects.filter(pk=image.pk))


@pytest.mark.parametrize("kind", [IMAGES, DUPLICATES, HARD_NEGATIVES, SYNTHETIC])
def test_new_tasks_copy_the_queues_required_decisions(configure_queue, kind):
    configure_queue(kind, required_decisions=3)
    (first,) = make_one(kind)
    configure_queue(kind, required_decisions=2)
    (second,) = make_one(kind)
    assert ReviewTask.objects.get(pk=first).required_decisions == 3  # unchanged by the later setting
    assert ReviewTask.objects.get(pk=second).required_decisions == 2


# --- duplicate merge ---------------------------------------------------------------------------------------


def test_a_duplicate_pair_is_one_task_whichever_way_it_is_proposed():
    a, b = ProductFactory(), ProductFactory()
    created = duplicate_merge_tasks_create(
        candidates=[
            DuplicateCandidate(
                product_a_id=b.pk, product_b_id=a.pk, flagged_pairs=[(20, 10, 0.8), (21, 11, 0.9)]
            ),
            DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk),
        ]
    )
    (task,) = tasks_of(DUPLICATES)
    assert created == [task.pk]
    assert (task.subject_key, task.product_a, task.product_b) == (f"products:{a.pk}:{b.pk}", a, b)
    # The flagged pairs follow the swap, so each image stays with its product; similarity is the highest.
    assert task.payload == {"flagged_pairs": [[10, 20, 0.8], [11, 21, 0.9]]}
    assert task.similarity == 0.9
    assert (
        duplicate_merge_tasks_create(candidates=[DuplicateCandidate(product_a_id=b.pk, product_b_id=a.pk)])
        == []
    )


def test_duplicate_candidates_keep_their_given_similarity_priority_and_sender():
    a, b = ProductFactory(), ProductFactory()
    candidate = DuplicateCandidate(
        product_a_id=a.pk,
        product_b_id=b.pk,
        flagged_pairs=[(1, 2, 0.5)],
        similarity=0.7,
        priority=-1,
        sent_by_task_id=42,
    )
    (pk,) = duplicate_merge_tasks_create(candidates=[candidate])
    task = ReviewTask.objects.get(pk=pk)
    assert (task.similarity, task.priority) == (0.7, -1)
    assert task.payload == {"flagged_pairs": [[1, 2, 0.5]], "sent_by_task": 42}
    c, d = ProductFactory(), ProductFactory()
    (pk,) = duplicate_merge_tasks_create(
        candidates=[DuplicateCandidate(product_a_id=c.pk, product_b_id=d.pk)]
    )
    assert ReviewTask.objects.get(pk=pk).similarity is None


def test_duplicate_pairs_within_one_instance_or_judged_different_or_unknown_are_left_out():
    instance = InstanceFactory()
    same_a, same_b = ProductFactory(instance=instance), ProductFactory(instance=instance)
    merged_a, merged_b = ProductFactory(), ProductFactory()
    instance_merge(source=merged_b.instance, target=merged_a.instance)
    different_a, different_b = ProductFactory(), ProductFactory()
    ProductDistinction.objects.create(product_a=different_a, product_b=different_b)
    fine_a, fine_b = ProductFactory(), ProductFactory()
    created = duplicate_merge_tasks_create(
        candidates=[
            DuplicateCandidate(product_a_id=same_a.pk, product_b_id=same_b.pk),
            DuplicateCandidate(product_a_id=merged_b.pk, product_b_id=merged_a.pk),
            DuplicateCandidate(product_a_id=different_b.pk, product_b_id=different_a.pk),
            DuplicateCandidate(product_a_id=fine_a.pk, product_b_id=fine_a.pk),
            DuplicateCandidate(product_a_id=fine_a.pk, product_b_id=999_999),
            DuplicateCandidate(product_a_id=fine_a.pk, product_b_id=fine_b.pk),
        ]
    )
    assert [(task.product_a, task.product_b) for task in tasks_of(DUPLICATES)] == [(fine_a, fine_b)]
    assert len(created) == 1


def test_duplicate_candidates_across_batches_are_deduplicated(monkeypatch):
    monkeypatch.setattr(task_creation, "BATCH_SIZE", 3)
    products = [ProductFactory() for _ in range(5)]
    pairs = [(a, b) for a in products for b in products if a.pk != b.pk]  # every pair, both ways
    created = duplicate_merge_tasks_create(
        candidates=[DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk) for a, b in pairs]
    )
    tasks = tasks_of(DUPLICATES)
    assert len(created) == len(tasks) == 10
    assert all(task.product_a_id < task.product_b_id for task in tasks)


# --- hard negatives ----------------------------------------------------------------------------------------


def test_a_hard_negative_pair_is_one_task_whichever_side_shortlisted_the_other():
    first, second = InstanceFactory(), InstanceFactory()
    created = hard_negative_tasks_create(
        candidates=[
            HardNegativeCandidate(
                instance_id=second.pk, candidate_instance_id=first.pk, flagged_pairs=[(5, 6, 0.6)]
            ),
            HardNegativeCandidate(instance_id=first.pk, candidate_instance_id=second.pk),
        ]
    )
    (task,) = tasks_of(HARD_NEGATIVES)
    assert created == [task.pk]
    assert task.subject_key == f"instances:{first.pk}:{second.pk}"
    # The instance that shortlisted is kept as the task's own instance.
    assert (task.instance, task.candidate_instance) == (second, first)
    assert (task.payload, task.similarity) == ({"flagged_pairs": [[5, 6, 0.6]]}, 0.6)
    again = HardNegativeCandidate(instance_id=first.pk, candidate_instance_id=second.pk)
    assert hard_negative_tasks_create(candidates=[again]) == []


def test_hard_negative_pairs_of_one_instance_merged_or_unknown_are_left_out():
    alive, other, merged = InstanceFactory(), InstanceFactory(), InstanceFactory()
    instance_merge(source=merged, target=other)
    created = hard_negative_tasks_create(
        candidates=[
            HardNegativeCandidate(instance_id=alive.pk, candidate_instance_id=alive.pk),
            HardNegativeCandidate(instance_id=alive.pk, candidate_instance_id=merged.pk),
            HardNegativeCandidate(instance_id=merged.pk, candidate_instance_id=alive.pk),
            HardNegativeCandidate(instance_id=alive.pk, candidate_instance_id=999_999),
            HardNegativeCandidate(instance_id=alive.pk, candidate_instance_id=other.pk, priority=2),
        ]
    )
    (task,) = tasks_of(HARD_NEGATIVES)
    assert created == [task.pk]
    assert (task.instance, task.candidate_instance, task.priority) == (alive, other, 2)


# --- synthetic validation -----------------------------------------------------------------------------------


def test_synthetic_tasks_cover_the_pending_generated_images():
    instance = InstanceFactory()
    wanted = [generated_image(instance), generated_image(instance)]
    generated_image(instance, review_status=ReviewStatus.REJECTED)
    ImageFactory()  # a real photo
    created = synthetic_validation_tasks_create(priority=1)
    tasks = tasks_of(SYNTHETIC)
    assert created == [task.pk for task in tasks]
    assert [(task.image_id, task.instance_id, task.priority) for task in tasks] == [
        (image.pk, instance.pk, 1) for image in wanted
    ]
    assert [task.subject_key for task in tasks] == [f"image:{image.pk}" for image in wanted]
    assert synthetic_validation_tasks_create() == []


# --- gold -----------------------------------------------------------------------------------------------------


def test_a_gold_copy_asks_the_same_question_with_a_known_answer(configure_queue):
    configure_queue(DUPLICATES, required_decisions=3)
    a, b = ProductFactory(), ProductFactory()
    (pk,) = duplicate_merge_tasks_create(
        candidates=[DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk, flagged_pairs=[(1, 2, 0.9)])]
    )
    task = ReviewTask.objects.get(pk=pk)
    gold = gold_task_create(task=task, answer="different")
    assert gold.pk != task.pk
    assert (gold.kind, gold.subject_key, gold.is_gold, gold.gold_answer) == (
        DUPLICATES,
        f"gold:{task.subject_key}",
        True,
        "different",
    )
    assert (gold.product_a, gold.product_b, gold.payload, gold.similarity) == (a, b, task.payload, 0.9)
    assert (gold.required_decisions, gold.status) == (1, ReviewTask.Status.OPEN)
    # Creating it again returns the same row; a new answer replaces the old one.
    assert gold_task_create(task=task, answer="different").pk == gold.pk
    assert gold_task_create(task=task, answer="same").gold_answer == "same"
    gold.refresh_from_db()
    assert gold.gold_answer == "same"
    assert ReviewTask.objects.filter(is_gold=True).count() == 1


def test_gold_answers_must_be_verdicts_of_the_queue():
    image = ImageFactory()
    (pk,) = image_verification_tasks_create(images=Image.objects.filter(pk=image.pk))
    task = ReviewTask.objects.get(pk=pk)
    for answer in ("same", "reject_unclear", ""):  # another queue's verdict; an action, not a verdict
        with pytest.raises(ValueError, match="not a verdict"):
            gold_task_create(task=task, answer=answer)
    gold = gold_task_create(task=task, answer="reject_image")
    assert gold.image_id == image.pk
    with pytest.raises(ValueError, match="gold task already"):
        gold_task_create(task=gold, answer="keep")
    assert ReviewTask.objects.count() == 2
    # Creating the regular tasks again leaves the gold copy alone.
    assert image_verification_tasks_create() == []
