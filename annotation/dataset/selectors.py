"""Reading frozen snapshots: listings, filtered pairs, and the rows the downloads and exports stream.

``snapshot_pair_rows`` reads with a server-side cursor in chunks (``QuerySet.iterator``), so a download or an
export of 561K pairs holds one chunk in memory, never the whole snapshot.
"""

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from django.db.models import Q, QuerySet

from annotation.dataset.questions import pair_answer
from annotation.models import DatasetSnapshot, Image, Instance, SnapshotPair

ROW_CHUNK_SIZE = 2000


def snapshots_frozen() -> QuerySet[DatasetSnapshot]:
    return DatasetSnapshot.objects.filter(status=DatasetSnapshot.Status.FROZEN).select_related("created_by")


def snapshot_frozen_named(given: str) -> DatasetSnapshot | None:
    """The frozen snapshot a command line names: its id, or its name for the latest frozen version."""
    frozen = DatasetSnapshot.objects.filter(status=DatasetSnapshot.Status.FROZEN)
    if given.isdigit():
        return frozen.filter(pk=int(given)).first()
    return frozen.filter(name=given).order_by("-version").first()


def snapshot_pairs(
    *,
    snapshot: DatasetSnapshot,
    label: str | None = None,
    source: str | None = None,
    category: str | None = None,
    split: str | None = None,
) -> QuerySet[SnapshotPair]:
    """The snapshot's pairs in order, filtered: label "yes"/"no", source, category name, split."""
    pairs = SnapshotPair.objects.filter(snapshot=snapshot)
    if label is not None:
        pairs = pairs.filter(same=(label == "yes"))
    if source:
        pairs = pairs.filter(source=source)
    if category:
        pairs = pairs.filter(category__name=category)
    if split:
        pairs = pairs.filter(split=split)
    return pairs.order_by("id")


def snapshot_instances(*, snapshot: DatasetSnapshot) -> QuerySet[Instance]:
    """The instances the snapshot's pairs show."""
    pairs = SnapshotPair.objects.filter(snapshot=snapshot)
    shown = Q(pk__in=pairs.values("instance_a")) | Q(pk__in=pairs.values("instance_b"))
    return Instance.objects.filter(shown).select_related("category").order_by("pk")


def snapshot_images(*, snapshot: DatasetSnapshot) -> QuerySet[Image]:
    """The images the snapshot's pairs show."""
    pairs = SnapshotPair.objects.filter(snapshot=snapshot)
    shown = Q(pk__in=pairs.values("image_a")) | Q(pk__in=pairs.values("image_b"))
    return Image.objects.filter(shown).order_by("pk")


@dataclass(frozen=True)
class PairRow:
    """One pair as the downloads and exports write it."""

    pair_id: int
    image_a_id: int
    image_b_id: int
    answer: str  # "yes" or "no"
    source: str
    split: str
    category: str
    supercategory: str
    instance_a_id: int
    instance_b_id: int
    image_a_sha256: str
    image_b_sha256: str
    image_a_file: str  # the name in the media storage
    image_b_file: str

    def to_json(self, *, with_files: bool = True) -> dict[str, Any]:
        """The row as a dict (``with_files=False`` leaves out the names in the media storage). Built field by
        field: ``dataclasses.asdict`` deep-copies and was most of a 561K-row download's time."""
        names = _JSON_FIELDS if with_files else _JSON_FIELDS_WITHOUT_FILES
        return {name: getattr(self, name) for name in names}


_JSON_FIELDS = tuple(field.name for field in fields(PairRow))
_JSON_FIELDS_WITHOUT_FILES = tuple(
    name for name in _JSON_FIELDS if name not in ("image_a_file", "image_b_file")
)


_ROW_FIELDS = (
    "pk",
    "image_a_id",
    "image_b_id",
    "same",
    "source",
    "split",
    "category__name",
    "category__supercategory",
    "instance_a_id",
    "instance_b_id",
    "image_a__sha256",
    "image_b__sha256",
    "image_a__file",
    "image_b__file",
)


def snapshot_pair_rows(
    *,
    snapshot: DatasetSnapshot,
    label: str | None = None,
    source: str | None = None,
    category: str | None = None,
    split: str | None = None,
) -> Iterator[PairRow]:
    """The snapshot's pairs in order, as rows, streamed in chunks."""
    pairs = snapshot_pairs(snapshot=snapshot, label=label, source=source, category=category, split=split)
    for values in pairs.values_list(*_ROW_FIELDS).iterator(chunk_size=ROW_CHUNK_SIZE):
        (pk, a, b, same, pair_source, pair_split, name, supercategory, instance_a, instance_b,
         sha_a, sha_b, file_a, file_b) = values  # fmt: skip
        yield PairRow(
            pair_id=pk,
            image_a_id=a,
            image_b_id=b,
            answer=pair_answer(same),
            source=pair_source,
            split=pair_split,
            category=name,
            supercategory=supercategory,
            instance_a_id=instance_a,
            instance_b_id=instance_b,
            image_a_sha256=sha_a,
            image_b_sha256=sha_b,
            image_a_file=file_a,
            image_b_file=file_b,
        )
