"""Merging duplicate instances and undoing merges, with an audit row for each."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Instance, InstanceMerge, Product


class MergeError(Exception):
    """The merge or its undo is not allowed in the current state; the message says why."""


@transaction.atomic
def instance_merge(
    *, source: Instance, target: Instance, merged_by: AbstractBaseUser | None = None, reason: str = ""
) -> InstanceMerge:
    """Moves every product of ``source`` into ``target``; ``source`` stays as a merged, inactive instance."""
    # Lock both rows in id order so two opposite merges can't deadlock or cross each other.
    locked = {
        instance.pk: instance
        for instance in Instance.objects.select_for_update()
        .filter(pk__in=[source.pk, target.pk])
        .order_by("pk")
    }
    source, target = locked[source.pk], locked[target.pk]
    if source.pk == target.pk:
        raise MergeError("an instance can't be merged into itself")
    if not source.is_active:
        raise MergeError(f"instance #{source.pk} was already merged into #{source.merged_into_id}")
    if not target.is_active:
        raise MergeError(
            f"instance #{target.pk} was merged into #{target.merged_into_id}; merge into that one"
        )

    products = list(Product.objects.filter(instance=source))
    merge = InstanceMerge.objects.create(
        source=source, target=target, reason=reason[:500], merged_by=_user_or_none(merged_by)
    )
    merge.moved_products.set(products)
    Product.objects.filter(pk__in=[product.pk for product in products]).update(instance=target)
    source.merged_into = target
    source.save(update_fields=["merged_into"])
    return merge


@transaction.atomic
def instance_merge_undo(*, merge: InstanceMerge, undone_by: AbstractBaseUser | None = None) -> InstanceMerge:
    """Moves the merged products back to their instance. Later merges that involve them must be undone first."""
    merge = InstanceMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise MergeError(f"merge #{merge.pk} was already undone")
    source = Instance.objects.select_for_update().get(pk=merge.source_id)
    target = Instance.objects.select_for_update().get(pk=merge.target_id)
    moved_ids = list(merge.moved_products.values_list("pk", flat=True))
    if not target.is_active:
        raise MergeError(
            f"instance #{target.pk} was merged into #{target.merged_into_id} afterwards; undo that merge first"
        )
    if Product.objects.filter(pk__in=moved_ids).exclude(instance=target).exists():
        raise MergeError("some of the moved products have moved again since; undo the later merge first")
    if source.merged_into_id != target.pk:
        raise MergeError(f"instance #{source.pk} is no longer merged into #{target.pk}")

    Product.objects.filter(pk__in=moved_ids).update(instance=source)
    source.merged_into = None
    source.save(update_fields=["merged_into"])
    merge.undone_at = timezone.now()
    merge.undone_by = _user_or_none(undone_by)
    merge.save(update_fields=["undone_at", "undone_by"])
    return merge


def _user_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None
