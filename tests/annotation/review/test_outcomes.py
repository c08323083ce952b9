"""What decided tasks change in the catalog, and how undoing the decision puts it back."""

import pytest

from annotation.models import (
    HardNegativePair,
    Image,
    InstanceMerge,
    Product,
    ProductDistinction,
    ReviewStatus,
    ReviewTask,
)
from annotation.review.decisions import (
    DecisionRejected,
    UndoRejected,
    review_decision_submit,
    review_decision_undo,
)
from annotation.review.leases import review_tasks_claim
from annotation.review.task_creation import DuplicateCandidate, duplicate_merge_tasks_create, gold_task_create
from annotation.services.instances import instance_merge
from tests.annotation.review.conftest import DUPLICATES, HARD_NEGATIVES, IMAGES, SYNTHETIC
from tests.factories import ImageFactory, InstanceFactory, ProductFactory

pytestmark = pytest.mark.django_db


def refreshed(*objects):
    for obj in objects:
        obj.refresh_from_db()
    return objects[0] if len(objects) == 1 else objects


def status_of(image: Image) -> tuple[str, str]:
    image.refresh_from_db()
    return image.review_status, image.rejection_reason


def undo(annotator, kind: str):
    return review_decision_undo(annotator=annotator, kind=kind)


# --- image verification ------------------------------------------------------------------------------------


def test_keep_accepts_the_image_and_its_pending_product_and_undo_puts_both_back(alice, image_tasks, decide):
    (task,) = image_tasks(1)
    image = Image.objects.get(pk=task.image_id)
    decide(alice, task, "keep")
    assert status_of(image) == (ReviewStatus.ACCEPTED, "")
    assert refreshed(image.product).review_status == ReviewStatus.ACCEPTED
    undo(alice, IMAGES)
    assert status_of(image) == (ReviewStatus.PENDING, "")
    assert refreshed(image.product).review_status == ReviewStatus.PENDING


def test_keep_leaves_a_product_that_was_already_reviewed(alice, image_tasks, decide):
    product = ProductFactory(review_status=ReviewStatus.ACCEPTED)
    (task,) = image_tasks(1, product=product)
    decide(alice, task, "keep")
    undo(alice, IMAGES)
    assert refreshed(product).review_status == ReviewStatus.ACCEPTED


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("reject_not_object", "not_object"),
        ("reject_unclear", "unclear"),
        ("reject_wrong_category", "wrong_category"),
        ("reject_inconsistent", "inconsistent"),
    ],
)
def test_rejecting_an_image_records_the_reason_and_undo_clears_it(alice, image_tasks, decide, action, reason):
    (task,) = image_tasks(1)
    image = Image.objects.get(pk=task.image_id)
    decide(alice, task, action)
    assert status_of(image) == (ReviewStatus.REJECTED, reason)
    assert refreshed(image.product).review_status == ReviewStatus.PENDING
    assert refreshed(task).outcome_reason == reason
    undo(alice, IMAGES)
    assert status_of(image) == (ReviewStatus.PENDING, "")


@pytest.fixture
def product_with_tasks(image_tasks):
    """A product with four images and their tasks, plus a gold copy of the second and another product's task."""
    product = ProductFactory()
    tasks = image_tasks(4, product=product)
    gold = gold_task_create(task=tasks[1], answer="keep")
    (elsewhere,) = image_tasks(1)
    return product, tasks, gold, elsewhere


def test_rejecting_the_product_obsoletes_its_other_open_tasks_and_undo_reopens_them(
    alice, bob, decide, product_with_tasks
):
    product, (rejecting, open_one, held, decided), gold, elsewhere = product_with_tasks
    decide(bob, decided, "keep")  # accepts the product too
    alice_held = review_tasks_claim(annotator=alice, kind=IMAGES, hold=2)
    assert [task.pk for task in alice_held] == [rejecting.pk, open_one.pk]
    assert [task.pk for task in review_tasks_claim(annotator=bob, kind=IMAGES, hold=1)] == [held.pk]
    review_decision_submit(
        annotator=alice,
        task_id=rejecting.pk,
        submission_key=alice_held[0].lease_token,
        action="reject_product_wrong_category",
    )
    product.refresh_from_db()
    assert (product.review_status, product.rejection_reason) == (ReviewStatus.REJECTED, "wrong_category")
    assert status_of(Image.objects.get(pk=rejecting.image_id)) == (ReviewStatus.PENDING, "")
    open_one, held, decided, gold, elsewhere = refreshed(open_one, held, decided, gold, elsewhere)
    for obsolete in (open_one, held):
        assert (obsolete.status, obsolete.obsoleted_by_id, obsolete.leased_by) == (
            ReviewTask.Status.OBSOLETE,
            rejecting.pk,
            None,
        )
        assert obsolete.resolved_at is not None
    assert decided.status == ReviewTask.Status.DECIDED
    assert gold.status == elsewhere.status == ReviewTask.Status.OPEN
    assert sorted(refreshed(rejecting).outcome_effects["obsoleted"]) == sorted([open_one.pk, held.pk])
    # A card of an obsoleted task can't be answered any more: the task was closed.
    with pytest.raises(DecisionRejected) as rejected:
        review_decision_submit(
            annotator=alice, task_id=open_one.pk, submission_key=alice_held[1].lease_token, action="keep"
        )
    assert rejected.value.code == "closed"

    undo(alice, IMAGES)
    product.refresh_from_db()
    assert (product.review_status, product.rejection_reason) == (ReviewStatus.ACCEPTED, "")
    for reopened in refreshed(open_one, held):
        assert (reopened.status, reopened.obsoleted_by_id, reopened.resolved_at) == (
            ReviewTask.Status.OPEN,
            None,
            None,
        )
    assert refreshed(decided).status == ReviewTask.Status.DECIDED


def test_a_decision_on_a_task_obsoleted_since_cant_be_undone(alice, bob, carol, image_tasks, decide):
    product = ProductFactory()
    first, second = image_tasks(2, product=product, required_decisions=2)
    decide(bob, second, "keep")
    decide(alice, first, "reject_product_inconsistent")
    decide(carol, first, "reject_product_inconsistent")
    assert refreshed(second).status == ReviewTask.Status.OBSOLETE
    with pytest.raises(UndoRejected, match=f"closed by task #{first.pk}"):
        undo(bob, IMAGES)
    assert refreshed(product).review_status == ReviewStatus.REJECTED


# --- duplicate merge ---------------------------------------------------------------------------------------


@pytest.fixture
def catalog():
    """Products a (instance 1), b and c (instance 2), d (instance 3)."""
    first, second, third = InstanceFactory(), InstanceFactory(), InstanceFactory()
    return {
        "a": ProductFactory(instance=first),
        "b": ProductFactory(instance=second),
        "c": ProductFactory(instance=second),
        "d": ProductFactory(instance=third),
    }


def test_same_merges_the_instances_with_an_audit_row_and_undo_unmerges(
    alice, catalog, duplicate_task, decide
):
    a, b, c, d = catalog["a"], catalog["b"], catalog["c"], catalog["d"]
    older, newer = a.instance, b.instance
    task = duplicate_task(b, a)  # the newer instance's product first: the older instance survives anyway
    decide(alice, task, "same")
    merge = InstanceMerge.objects.get()
    assert (merge.source, merge.target, merge.merged_by) == (newer, older, alice)
    assert merge.reason == f"review task #{task.pk}"
    assert set(merge.moved_products.all()) == {b, c}
    assert set(Product.objects.filter(instance=older)) == {a, b, c}
    assert refreshed(newer).merged_into == older
    assert refreshed(task).outcome_effects["merge"] == merge.pk

    undo(alice, DUPLICATES)
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == alice
    assert set(Product.objects.filter(instance=older)) == {a}
    assert set(Product.objects.filter(instance=newer)) == {b, c}
    assert refreshed(newer).is_active
    assert refreshed(d).instance_id == catalog["d"].instance_id


def test_a_merge_obsoletes_the_other_open_duplicate_tasks_inside_the_merged_instance(
    alice, bob, catalog, duplicate_task, decide
):
    a, b, c, d = catalog["a"], catalog["b"], catalog["c"], catalog["d"]
    merging = duplicate_task(a, b)
    inside = duplicate_task(a, c)
    outside = duplicate_task(c, d)
    gold = gold_task_create(task=inside, answer="same")
    decide(alice, merging, "same")
    inside, outside, gold = refreshed(inside, outside, gold)
    assert (inside.status, inside.obsoleted_by_id) == (ReviewTask.Status.OBSOLETE, merging.pk)
    assert outside.status == gold.status == ReviewTask.Status.OPEN
    assert refreshed(merging).outcome_effects["obsoleted"] == [inside.pk]
    # Nobody is asked about it any more.
    assert [task.pk for task in review_tasks_claim(annotator=bob, kind=DUPLICATES, hold=5)] == [outside.pk]

    undo(alice, DUPLICATES)
    inside = refreshed(inside)
    assert (inside.status, inside.obsoleted_by_id) == (ReviewTask.Status.OPEN, None)


def test_same_on_products_already_one_instance_changes_nothing(alice, catalog, duplicate_task, decide):
    a, b = catalog["a"], catalog["b"]
    task = duplicate_task(a, b)
    instance_merge(source=b.instance, target=a.instance)
    decide(alice, task, "same")
    assert InstanceMerge.objects.count() == 1
    assert refreshed(task).outcome_effects == {}
    undo(alice, DUPLICATES)
    assert refreshed(b).instance_id == a.instance_id


def test_a_merge_that_was_merged_on_since_cant_be_undone(alice, catalog, duplicate_task, decide):
    a, b = catalog["a"], catalog["b"]
    task = duplicate_task(a, b)
    decide(alice, task, "same")
    elder = InstanceFactory()
    instance_merge(source=a.instance, target=elder)
    with pytest.raises(UndoRejected, match="merge"):
        undo(alice, DUPLICATES)
    task = refreshed(task)
    assert (task.status, task.outcome) == (ReviewTask.Status.DECIDED, "same")
    assert task.decisions.get().undone_at is None
    assert InstanceMerge.objects.filter(undone_at=None).count() == 2


def test_different_records_a_distinction_so_the_pair_is_never_proposed_again(
    alice, catalog, duplicate_task, decide
):
    a, b = catalog["a"], catalog["b"]
    task = duplicate_task(b, a)
    decide(alice, task, "different")
    distinction = ProductDistinction.objects.get()
    assert (distinction.product_a, distinction.product_b, distinction.task_id) == (a, b, task.pk)
    assert refreshed(task).outcome_effects == {"distinction": distinction.pk}
    assert Product.objects.filter(instance=a.instance).count() == 1  # nothing merged
    # Proposed again, in either order, even after the task row itself is gone: nothing new.
    ReviewTask.objects.filter(pk=task.pk).delete()
    again = [
        DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk),
        DuplicateCandidate(product_a_id=b.pk, product_b_id=a.pk),
    ]
    assert duplicate_merge_tasks_create(candidates=again) == []
    assert not ReviewTask.objects.filter(kind=DUPLICATES).exists()


def test_undoing_different_forgets_the_distinction(alice, catalog, duplicate_task, decide):
    task = duplicate_task(catalog["a"], catalog["b"])
    decide(alice, task, "different")
    undo(alice, DUPLICATES)
    assert not ProductDistinction.objects.exists()
    assert refreshed(task).status == ReviewTask.Status.OPEN


# --- hard negatives ----------------------------------------------------------------------------------------


def test_hard_negative_approves_the_pair_and_undo_withdraws_it(alice, hard_negative_task, decide):
    first, second = InstanceFactory(), InstanceFactory()
    task = hard_negative_task(second, first)
    decide(alice, task, "hard_negative")
    pair = HardNegativePair.objects.get()
    assert (pair.instance_a, pair.instance_b, pair.task_id) == (first, second, task.pk)
    undo(alice, HARD_NEGATIVES)
    assert not HardNegativePair.objects.exists()


def test_too_easy_changes_nothing(alice, hard_negative_task, decide):
    task = hard_negative_task(InstanceFactory(), InstanceFactory())
    decide(alice, task, "too_easy")
    task = refreshed(task)
    assert (task.status, task.outcome, task.outcome_effects) == (ReviewTask.Status.DECIDED, "too_easy", {})
    assert not HardNegativePair.objects.exists()
    assert not ReviewTask.objects.filter(kind=DUPLICATES).exists()


@pytest.fixture
def look_alikes():
    """Two instances; the candidate's product is older, so the pair's products come in swapped order."""
    candidate_product = ProductFactory()
    instance = InstanceFactory()
    products = [ProductFactory(instance=instance), ProductFactory(instance=instance)]
    image = ImageFactory(product=products[0])
    candidate_image = ImageFactory(product=candidate_product)
    return instance, products, image, candidate_product, candidate_image


def test_same_object_sends_the_pair_to_the_duplicate_queue_and_undo_withdraws_it(
    alice, bob, look_alikes, hard_negative_task, duplicate_task, decide
):
    instance, products, image, candidate_product, candidate_image = look_alikes
    earlier = duplicate_task(ProductFactory(), ProductFactory())
    task = hard_negative_task(
        instance, candidate_product.instance, flagged_pairs=[(image.pk, candidate_image.pk, 0.93)]
    )
    decide(alice, task, "same_object")
    sent = ReviewTask.objects.get(kind=DUPLICATES, payload__sent_by_task=task.pk)
    assert (sent.product_a, sent.product_b) == (candidate_product, products[0])
    assert sent.payload["flagged_pairs"] == [[candidate_image.pk, image.pk, 0.93]]
    assert (sent.similarity, sent.priority, sent.status) == (0.93, -1, ReviewTask.Status.OPEN)
    assert refreshed(task).outcome_effects == {"duplicate_task": sent.pk}
    assert not HardNegativePair.objects.exists()
    # It is asked before the duplicates mining found.
    served = review_tasks_claim(annotator=bob, kind=DUPLICATES, hold=2)
    assert [t.pk for t in served] == [sent.pk, earlier.pk]

    undo(alice, HARD_NEGATIVES)  # bob only holds it: it is withdrawn all the same
    assert not ReviewTask.objects.filter(pk=sent.pk).exists()
    with pytest.raises(DecisionRejected) as rejected:
        review_decision_submit(
            annotator=bob, task_id=sent.pk, submission_key=served[0].lease_token, action="same"
        )
    assert rejected.value.code == "closed"
    assert refreshed(task).status == ReviewTask.Status.OPEN


def test_same_object_cant_be_undone_once_its_duplicate_task_was_answered(
    alice, bob, look_alikes, hard_negative_task, decide
):
    instance, _, _, candidate_product, _ = look_alikes
    task = hard_negative_task(instance, candidate_product.instance)
    decide(alice, task, "same_object")
    sent = ReviewTask.objects.get(kind=DUPLICATES)
    decide(bob, sent, "different")
    with pytest.raises(UndoRejected, match="answered"):
        undo(alice, HARD_NEGATIVES)
    assert refreshed(task).status == ReviewTask.Status.DECIDED
    assert task.decisions.get().undone_at is None
    assert ReviewTask.objects.filter(pk=sent.pk).exists()


def test_same_object_on_a_pair_already_in_the_duplicate_queue_adds_and_withdraws_nothing(
    alice, look_alikes, hard_negative_task, duplicate_task, decide
):
    instance, products, _, candidate_product, _ = look_alikes
    existing = duplicate_task(products[0], candidate_product)
    task = hard_negative_task(instance, candidate_product.instance)
    decide(alice, task, "same_object")
    assert list(ReviewTask.objects.filter(kind=DUPLICATES)) == [existing]
    assert refreshed(task).outcome_effects == {}
    undo(alice, HARD_NEGATIVES)
    assert refreshed(existing).status == ReviewTask.Status.OPEN


# --- synthetic validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("keep", (ReviewStatus.ACCEPTED, "")),
        ("drop_dissimilar", (ReviewStatus.REJECTED, "dissimilar")),
        ("drop_indistinguishable", (ReviewStatus.REJECTED, "indistinguishable")),
    ],
)
def test_synthetic_verdicts_set_the_generated_images_status_and_undo_resets_it(
    alice, synthetic_task, decide, action, expected
):
    instance = InstanceFactory()
    task = synthetic_task(instance)
    generated = Image.objects.get(pk=task.image_id)
    assert (generated.origin, generated.product, generated.generated_for) == ("generated", None, instance)
    assert task.instance_id == instance.pk
    decide(alice, task, action)
    assert status_of(generated) == expected
    assert refreshed(task).outcome == action
    undo(alice, SYNTHETIC)
    assert status_of(generated) == (ReviewStatus.PENDING, "")
