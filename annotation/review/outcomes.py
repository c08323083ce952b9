"""What a decided task changes in the catalog, and how an undo puts it back.

``outcome_apply`` returns a small JSON record of everything it changed (the previous review status of an
image, the merge it made, the tasks it made obsolete...); ``outcome_revert`` reads that record back. Both
run inside the caller's transaction.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotation.models import (
    HardNegativePair,
    Image,
    Instance,
    InstanceMerge,
    Product,
    ProductDistinction,
    ReviewStatus,
    ReviewTask,
    TaskKind,
)
from annotation.review.leases import NO_LEASE
from annotation.services.instances import MergeError, instance_merge, instance_merge_undo


class OutcomeRevertError(Exception):
    """The outcome can't be undone any more; the message says what happened since."""


def outcome_apply(*, task: ReviewTask, verdict: str, reason: str, user: AbstractBaseUser | None) -> dict:
    appliers = {
        TaskKind.IMAGE_VERIFICATION: _verification_apply,
        TaskKind.DUPLICATE_MERGE: _duplicate_apply,
        TaskKind.HARD_NEGATIVE: _hard_negative_apply,
        TaskKind.SYNTHETIC_VALIDATION: _synthetic_apply,
    }
    return appliers[task.kind](task, verdict, reason, user)


def outcome_revert(*, task: ReviewTask, user: AbstractBaseUser | None) -> None:
    effects = task.outcome_effects or {}
    # Order matters: undo the newest kind of change first.
    if "duplicate_task" in effects:
        _duplicate_task_withdraw(effects["duplicate_task"])
    if "obsoleted" in effects:
        ReviewTask.objects.filter(
            pk__in=effects["obsoleted"], status=ReviewTask.Status.OBSOLETE, obsoleted_by=task
        ).update(status=ReviewTask.Status.OPEN, obsoleted_by=None, resolved_at=None)
    if "merge" in effects:
        try:
            instance_merge_undo(merge=InstanceMerge.objects.get(pk=effects["merge"]), undone_by=user)
        except MergeError as exc:
            raise OutcomeRevertError(f"the merge can't be undone: {exc}") from exc
    if "distinction" in effects:
        ProductDistinction.objects.filter(pk=effects["distinction"]).delete()
    if "hard_negative_pair" in effects:
        HardNegativePair.objects.filter(pk=effects["hard_negative_pair"]).delete()
    if "image" in effects:
        pk, status, reason = effects["image"]
        Image.objects.filter(pk=pk).update(review_status=status, rejection_reason=reason)
    if "product" in effects:
        pk, status, reason = effects["product"]
        Product.objects.filter(pk=pk).update(review_status=status, rejection_reason=reason)


# --- image verification ---------------------------------------------------------------------------------


def _verification_apply(task: ReviewTask, verdict: str, reason: str, user) -> dict:
    image = task.image  # the decide path read it with the task (one query less on the busiest queue)
    product = image.product
    effects: dict = {"image": [image.pk, image.review_status, image.rejection_reason]}
    if verdict == "keep":
        Image.objects.filter(pk=image.pk).update(review_status=ReviewStatus.ACCEPTED, rejection_reason="")
        if product.review_status == ReviewStatus.PENDING:
            effects["product"] = [product.pk, product.review_status, product.rejection_reason]
            Product.objects.filter(pk=product.pk).update(review_status=ReviewStatus.ACCEPTED)
    elif verdict == "reject_image":
        Image.objects.filter(pk=image.pk).update(review_status=ReviewStatus.REJECTED, rejection_reason=reason)
    elif verdict == "reject_product":
        del effects["image"]
        # The product's other images need no verdict of their own any more. Their tasks are locked before the
        # product row: a concurrent "keep" on one of them holds its task and then waits for the product, so
        # taking the product first would lock the two rows in opposite orders and deadlock.
        effects["obsoleted"] = _obsolete(
            ReviewTask.objects.filter(kind=TaskKind.IMAGE_VERIFICATION, image__product=product).exclude(
                pk=task.pk
            ),
            by=task,
        )
        effects["product"] = [product.pk, product.review_status, product.rejection_reason]
        Product.objects.filter(pk=product.pk).update(
            review_status=ReviewStatus.REJECTED, rejection_reason=reason
        )
    else:
        raise ValueError(f"unknown image verification verdict {verdict!r}")
    return effects


# --- duplicate merge --------------------------------------------------------------------------------------


def _duplicate_apply(task: ReviewTask, verdict: str, reason: str, user) -> dict:
    if verdict == "different":
        low, high = sorted((task.product_a_id, task.product_b_id))
        distinction, _ = ProductDistinction.objects.get_or_create(
            product_a_id=low, product_b_id=high, defaults={"task": task}
        )
        return {"distinction": distinction.pk} if distinction.task_id == task.pk else {}
    if verdict != "same":
        raise ValueError(f"unknown duplicate verdict {verdict!r}")
    product_a = Product.objects.get(pk=task.product_a_id)
    product_b = Product.objects.get(pk=task.product_b_id)
    if product_a.instance_id == product_b.instance_id:
        return {}
    # The older instance survives, so ids that other tables hold stay valid for most of the catalog.
    target_id, source_id = sorted((product_a.instance_id, product_b.instance_id))
    merge = instance_merge(
        source=Instance.objects.get(pk=source_id),
        target=Instance.objects.get(pk=target_id),
        merged_by=user,
        reason=f"review task #{task.pk}",
    )
    effects: dict = {"merge": merge.pk}
    # Other open duplicate tasks between products that are now one instance have nothing left to ask.
    same_instance = [
        other.pk
        for other in ReviewTask.objects.filter(kind=TaskKind.DUPLICATE_MERGE, status=ReviewTask.Status.OPEN)
        .filter(product_a__instance_id=target_id, product_b__instance_id=target_id)
        .exclude(pk=task.pk)
        .only("pk")
    ]
    obsoleted = _obsolete(ReviewTask.objects.filter(pk__in=same_instance, is_gold=False), by=task)
    if obsoleted:
        effects["obsoleted"] = obsoleted
    return effects


# --- hard negatives ----------------------------------------------------------------------------------------


def _hard_negative_apply(task: ReviewTask, verdict: str, reason: str, user) -> dict:
    if verdict == "hard_negative":
        low, high = sorted((task.instance_id, task.candidate_instance_id))
        pair, _ = HardNegativePair.objects.get_or_create(
            instance_a_id=low, instance_b_id=high, defaults={"task": task}
        )
        return {"hard_negative_pair": pair.pk} if pair.task_id == task.pk else {}
    if verdict == "too_easy":
        return {}
    if verdict == "same_object":
        from annotation.review.task_creation import DuplicateCandidate, duplicate_merge_tasks_create

        product_a = Product.objects.filter(instance_id=task.instance_id).order_by("pk").first()
        product_b = Product.objects.filter(instance_id=task.candidate_instance_id).order_by("pk").first()
        if product_a is None or product_b is None:
            return {}
        flagged = task.payload.get("flagged_pairs", [])
        created = duplicate_merge_tasks_create(
            candidates=[
                DuplicateCandidate(
                    product_a_id=product_a.pk,
                    product_b_id=product_b.pk,
                    flagged_pairs=flagged,
                    similarity=task.similarity,
                    priority=-1,  # a reviewer already thinks they are the same: ask soon
                    sent_by_task_id=task.pk,
                )
            ]
        )
        return {"duplicate_task": created[0]} if created else {}
    raise ValueError(f"unknown hard-negative verdict {verdict!r}")


def _duplicate_task_withdraw(task_id: int) -> None:
    task = ReviewTask.objects.filter(pk=task_id).first()
    if task is None:
        return
    if task.decision_count or task.status != ReviewTask.Status.OPEN:
        raise OutcomeRevertError(f"the duplicate task #{task_id} it sent has been answered since")
    task.delete()


# --- synthetic validation --------------------------------------------------------------------------------


def _synthetic_apply(task: ReviewTask, verdict: str, reason: str, user) -> dict:
    image = task.image
    effects = {"image": [image.pk, image.review_status, image.rejection_reason]}
    if verdict == "keep":
        Image.objects.filter(pk=image.pk).update(review_status=ReviewStatus.ACCEPTED, rejection_reason="")
    elif verdict in ("drop_dissimilar", "drop_indistinguishable"):
        Image.objects.filter(pk=image.pk).update(review_status=ReviewStatus.REJECTED, rejection_reason=reason)
    else:
        raise ValueError(f"unknown synthetic validation verdict {verdict!r}")
    return effects


def _obsolete(tasks, *, by: ReviewTask) -> list[int]:
    """Closes the still-open tasks among ``tasks``. The rows are locked in id order and their status read again
    under the lock, so a task decided meanwhile by someone else keeps its decision."""
    ids = list(
        tasks.filter(status=ReviewTask.Status.OPEN, is_gold=False)
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if ids:
        ReviewTask.objects.filter(pk__in=ids).update(
            status=ReviewTask.Status.OBSOLETE,
            obsoleted_by=by,
            resolved_at=timezone.now(),
            **NO_LEASE,
        )
    return ids
