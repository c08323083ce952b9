"""TWIN-Eval's images, read from a frozen snapshot's eval split (unseen instances, paper A.1).

Every image of the split's pairs is labelled with its instance at freezing. A generated image shows a
different object than the instance it was generated for (it is that instance's synthetic negative), so it
gets a label of its own: it can be a non-matching candidate but never a match. The curated negatives
(approved hard negatives and kept generations) are each image's first look-alikes, so TWIN-Eval's negatives
are the hard ones annotators confirmed, as in the paper's collection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotation.models import DatasetSnapshot, SnapshotPair
from annotation.models.catalog import Image
from evaluation.services.image_files import local_image_path
from evaluation.sources.labelled import LabelledImage

CURATED_NEGATIVE_SOURCES = ("hard_negative", "synthetic")


@dataclass(frozen=True)
class TwinEvalImages:
    images: list[LabelledImage]  # key: the catalog image's id; path: its file on this machine
    look_alikes: Callable[[int], Sequence[int]]
    storage_names: dict[str, str]  # key -> the catalog file's name in the media storage (reused, not copied)


def twin_eval_images(snapshot: DatasetSnapshot) -> TwinEvalImages:
    pairs = list(
        SnapshotPair.objects.filter(snapshot=snapshot, split="eval")
        .select_related("image_a", "image_b", "category")
        .order_by("id")
    )
    label_of: dict[int, str] = {}
    name_of: dict[int, str] = {}
    file_of: dict[int, str] = {}

    def remember(image: Image, instance_id: int, category: str) -> None:
        if image.pk in label_of:
            return
        generated = image.origin == Image.Origin.GENERATED
        label_of[image.pk] = f"generated-{image.pk}" if generated else f"instance-{instance_id}"
        name_of[image.pk] = "" if generated else category
        file_of[image.pk] = image.file.name

    for pair in pairs:
        remember(pair.image_a, pair.instance_a_id, pair.category.name)
        remember(pair.image_b, pair.instance_b_id, pair.category.name)

    ids = sorted(label_of)
    index_of = {image_id: index for index, image_id in enumerate(ids)}
    partners: dict[int, list[int]] = defaultdict(list)
    for pair in pairs:
        if pair.source in CURATED_NEGATIVE_SOURCES:
            a, b = index_of[pair.image_a_id], index_of[pair.image_b_id]
            partners[a].append(b)
            partners[b].append(a)
    # An image's look-alikes: its own curated negatives, then those of the other images of its instance.
    by_label: dict[str, list[int]] = defaultdict(list)
    for image_id in ids:
        by_label[label_of[image_id]].append(index_of[image_id])

    def look_alikes(index: int) -> Sequence[int]:
        ordered = dict.fromkeys(partners.get(index, []))
        for sibling in by_label[label_of[ids[index]]]:
            ordered.update(dict.fromkeys(partners.get(sibling, [])))
        return list(ordered)

    images = [
        LabelledImage(
            key=str(image_id),
            label=label_of[image_id],
            path=local_image_path(file_of[image_id]),
            name=name_of[image_id],
        )
        for image_id in ids
    ]
    storage_names = {str(image_id): file_of[image_id] for image_id in ids}
    return TwinEvalImages(images=images, look_alikes=look_alikes, storage_names=storage_names)
