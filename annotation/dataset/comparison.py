"""Comparing two snapshots: which pairs the newer one added, which it removed, and which changed answer.

A pair is the same pair in both when it shows the same two images, in either order. Counts come from the
database (an indexed lookup per pair), so two 561K-pair snapshots compare without loading either.
"""

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from annotation.models import DatasetSnapshot, SnapshotPair


@dataclass(frozen=True)
class SnapshotComparison:
    old: DatasetSnapshot
    new: DatasetSnapshot
    added: QuerySet[SnapshotPair]  # in new, not in old
    removed: QuerySet[SnapshotPair]  # in old, not in new
    answer_changed: QuerySet[SnapshotPair]  # in both, with the other answer (e.g. two instances merged)
    added_by_source: dict[str, int]
    removed_by_source: dict[str, int]

    @property
    def added_count(self) -> int:
        return sum(self.added_by_source.values())

    @property
    def removed_count(self) -> int:
        return sum(self.removed_by_source.values())

    @property
    def kept_count(self) -> int:
        return self.new.pair_count - self.added_count


def _same_images_in(snapshot: DatasetSnapshot) -> Q:
    pairs = SnapshotPair.objects.filter(snapshot=snapshot)
    same_order = pairs.filter(image_a=OuterRef("image_a"), image_b=OuterRef("image_b"))
    swapped = pairs.filter(image_a=OuterRef("image_b"), image_b=OuterRef("image_a"))
    return Q(Exists(same_order)) | Q(Exists(swapped))


def _counts_by_source(pairs: QuerySet[SnapshotPair]) -> dict[str, int]:
    grouped = pairs.order_by().values("source").annotate(count=Count("id"))
    return {row["source"]: row["count"] for row in sorted(grouped, key=lambda row: row["source"])}


def snapshot_compare(*, old: DatasetSnapshot, new: DatasetSnapshot) -> SnapshotComparison:
    added = SnapshotPair.objects.filter(snapshot=new).exclude(_same_images_in(old)).order_by("id")
    removed = SnapshotPair.objects.filter(snapshot=old).exclude(_same_images_in(new)).order_by("id")
    in_old = SnapshotPair.objects.filter(snapshot=old)
    answer_flipped = Exists(
        in_old.filter(image_a=OuterRef("image_a"), image_b=OuterRef("image_b")).exclude(same=OuterRef("same"))
    ) | Exists(
        in_old.filter(image_a=OuterRef("image_b"), image_b=OuterRef("image_a")).exclude(same=OuterRef("same"))
    )
    answer_changed = SnapshotPair.objects.filter(snapshot=new).filter(answer_flipped).order_by("id")
    return SnapshotComparison(
        old=old,
        new=new,
        added=added,
        removed=removed,
        answer_changed=answer_changed,
        added_by_source=_counts_by_source(added),
        removed_by_source=_counts_by_source(removed),
    )
