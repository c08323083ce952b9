"""Merging duplicate instances and undoing it, with the audit trail."""

import pytest

from annotation.models import InstanceMerge
from annotation.services.instances import MergeError, instance_merge, instance_merge_undo
from tests.factories import InstanceFactory, ProductFactory

pytestmark = pytest.mark.django_db


def instance_with_products(count: int):
    instance = InstanceFactory()
    products = [ProductFactory(instance=instance, category=instance.category) for _ in range(count)]
    return instance, products


def test_merge_moves_every_product_and_keeps_the_source_as_merged(researcher):
    source, source_products = instance_with_products(2)
    target, target_products = instance_with_products(1)
    merge = instance_merge(source=source, target=target, merged_by=researcher, reason="same vase")
    source.refresh_from_db()
    assert source.merged_into == target and not source.is_active
    assert set(target.products.all()) == set(source_products + target_products)
    assert set(merge.moved_products.all()) == set(source_products)
    assert (merge.merged_by, merge.reason, merge.undone_at) == (researcher, "same vase", None)


def test_undo_restores_the_products_and_records_who_undid_it(researcher, annotator):
    source, source_products = instance_with_products(2)
    target, target_products = instance_with_products(1)
    merge = instance_merge(source=source, target=target, merged_by=annotator)
    instance_merge_undo(merge=merge, undone_by=researcher)
    source.refresh_from_db()
    merge.refresh_from_db()
    assert source.is_active
    assert set(source.products.all()) == set(source_products)
    assert set(target.products.all()) == set(target_products)
    assert merge.undone_by == researcher and merge.undone_at is not None
    with pytest.raises(MergeError, match="already undone"):
        instance_merge_undo(merge=merge)
    # The source can be merged again after an undo.
    instance_merge(source=source, target=target)
    assert InstanceMerge.objects.count() == 2


def test_products_added_to_the_target_after_the_merge_stay_on_undo():
    source, source_products = instance_with_products(1)
    target, _ = instance_with_products(1)
    merge = instance_merge(source=source, target=target)
    later = ProductFactory(instance=target, category=target.category)
    instance_merge_undo(merge=merge)
    later.refresh_from_db()
    assert later.instance == target


def test_chained_merges_must_be_undone_newest_first():
    a, _ = instance_with_products(1)
    b, _ = instance_with_products(1)
    c, _ = instance_with_products(1)
    first = instance_merge(source=a, target=b)
    second = instance_merge(source=b, target=c)
    with pytest.raises(MergeError, match="undo that merge first"):
        instance_merge_undo(merge=first)
    instance_merge_undo(merge=second)
    instance_merge_undo(merge=first)
    for instance in (a, b, c):
        instance.refresh_from_db()
        assert instance.is_active and instance.products.count() == 1


@pytest.mark.parametrize("case", ["self", "merged source", "merged target"])
def test_invalid_merges_are_refused(case):
    a, _ = instance_with_products(1)
    b, _ = instance_with_products(1)
    c, _ = instance_with_products(1)
    if case == "self":
        with pytest.raises(MergeError, match="into itself"):
            instance_merge(source=a, target=a)
        return
    instance_merge(source=a, target=b)
    a.refresh_from_db()
    with pytest.raises(MergeError, match="merged"):
        if case == "merged source":
            instance_merge(source=a, target=c)
        else:
            instance_merge(source=c, target=a)


def test_admin_action_merges_and_undoes(client, researcher):
    a, _ = instance_with_products(1)
    b, _ = instance_with_products(2)
    client.force_login(researcher)
    client.post(
        "/admin/annotation/instance/",
        {"action": "merge_into_first", "_selected_action": [a.pk, b.pk]},
        follow=True,
    )
    b.refresh_from_db()
    assert b.merged_into == a and a.products.count() == 3
    merge = InstanceMerge.objects.get()
    client.post(
        "/admin/annotation/instancemerge/", {"action": "undo", "_selected_action": [merge.pk]}, follow=True
    )
    b.refresh_from_db()
    assert b.is_active and b.products.count() == 2
