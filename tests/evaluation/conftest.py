"""Fixtures of the evaluation tests: a snapshot whose eval split is big enough for TWIN-Eval's queries."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotation.dataset.pairs import Split, instance_split
from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models.catalog import Image as CatalogImage
from tests.annotation.dataset.builders import generated, hard_negative, instance_with_images
from tests.conftest import image_bytes
from tests.factories import CategoryFactory

EVAL_INSTANCES = 6
IMAGES_PER_INSTANCE = 4


@pytest.fixture
def eval_snapshot(db):
    """Six instances of four real pictures each, all in the eval split, with hard negatives between
    neighbours (0-1, 1-2, ...) and a kept generated image of instance 0."""
    mug = CategoryFactory(name="mug")
    instances = [instance_with_images(mug, IMAGES_PER_INSTANCE)[0] for _ in range(EVAL_INSTANCES)]
    for left, right in zip(instances, instances[1:], strict=False):
        hard_negative(left, right)
    generated(instances[0])
    for image in CatalogImage.objects.all():
        default_storage.delete(image.file.name)
        default_storage.save(image.file.name, ContentFile(image_bytes(size=(64, 48), seed=image.pk)))
    seed = next(
        seed
        for seed in range(10_000)
        if all(
            instance_split(instance_id=instance.pk, eval_fraction=0.9, seed=seed) == Split.EVAL
            for instance in instances
        )
    )
    snapshot = snapshot_create(
        name="twin-eval-source", parameters=SnapshotParameters(eval_fraction=0.9, seed=seed)
    )
    snapshot.refresh_from_db()
    assert snapshot.is_frozen
    return snapshot
