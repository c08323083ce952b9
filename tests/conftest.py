"""Shared fixtures: an isolated media root per test, users in each role, and image files made on the spot."""

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from hypothesis import settings as hypothesis_settings
from PIL import Image

from annotation.dataset.pairs import Split, instance_split
from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import Image as CatalogImage
from annotation.models import ReviewStatus
from tests.annotation.dataset.builders import generated, hard_negative, instance_with_images
from tests.factories import (
    AnnotatorFactory,
    ApiUserFactory,
    CategoryFactory,
    ImageFactory,
    ResearcherFactory,
    UserFactory,
)

# The suite's property tests draw the same examples on every run ("default": derandomized), so a submission
# passes or fails on its code, not on the draw. HYPOTHESIS_PROFILE=explore draws new random examples, and many
# more of them: run it when changing a parser, the reward or the Hydra quoting; pin what it finds with @example.
hypothesis_settings.register_profile("default", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", max_examples=5000, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    settings.CATALOG_UPLOAD_DIR = tmp_path / "uploads"
    settings.TRAINING_ROOT = tmp_path / "training"
    return root


@pytest.fixture
def researcher(db):
    return ResearcherFactory(username="researcher")


@pytest.fixture(autouse=True)
def cache_cleared():
    """Rate-limit counters, cached permissions and queue settings don't leak from one test into the next."""
    from django.core.cache import cache

    from annotation.review.leases import review_queue_settings_forget

    cache.clear()
    review_queue_settings_forget()


@pytest.fixture
def admin_client(client, researcher):
    """A researcher signed in, with the admin's staff flag."""
    researcher.is_staff = True
    researcher.save()
    client.force_login(researcher)
    return client


@pytest.fixture
def annotator(db):
    return AnnotatorFactory(username="annotator")


@pytest.fixture
def api_user(db):
    return ApiUserFactory(username="engineer")


@pytest.fixture
def plain_user(db):
    return UserFactory(username="nobody")


def image_bytes(
    *,
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    format: str = "JPEG",
    seed: int = 0,
    **save_options,
) -> bytes:
    """A small noisy picture (distinct per seed) encoded in the given mode and format."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")
    if mode == "RGB":
        picture = rgb
    elif mode in ("I;16", "I"):
        values = rng.integers(0, 65536, size=(size[1], size[0]), dtype=np.uint16)
        picture = Image.fromarray(values) if mode == "I;16" else Image.fromarray(values.astype(np.int32))
    else:
        picture = rgb.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **save_options)
    return buffer.getvalue()


@pytest.fixture
def write_image(tmp_path: Path) -> Callable[..., Path]:
    """Writes an image under tmp_path/images/<relative path> and returns its path."""

    def write(relative: str, content: bytes | None = None, **options) -> Path:
        path = tmp_path / "images" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if content is not None else image_bytes(**options))
        return path

    return write


@pytest.fixture
def images_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def reviewed_catalog(db):
    """Instances a (3 verified images, 1 pending, 1 rejected), b (2) and c (4) of one category; a hard negative
    a-b; one approved and one rejected generated image of a."""
    vase = CategoryFactory(name="vase")
    a, a_images = instance_with_images(vase, 3)
    b, b_images = instance_with_images(vase, 2)
    c, c_images = instance_with_images(vase, 4)
    ImageFactory(product=a_images[0].product, review_status=ReviewStatus.PENDING)  # not verified yet
    ImageFactory(product=a_images[0].product, review_status=ReviewStatus.REJECTED)
    hard_negative(a, b)
    kept = generated(a)
    generated(a, status=ReviewStatus.REJECTED)
    return {"a": a, "b": b, "c": c, "a_images": a_images, "b_images": b_images, "generated": kept}


@pytest.fixture
def frozen_snapshot(reviewed_catalog):
    """The reviewed catalog with real pictures in place of the factories' undecodable bytes, frozen with both
    answers in the training split (instances a and b, their hard negative and a's generated image) and c held
    out: the split's seed is picked for the instances' ids, which differ from run to run."""
    for image in CatalogImage.objects.all():
        default_storage.delete(image.file.name)
        default_storage.save(image.file.name, ContentFile(image_bytes(size=(96, 64), seed=image.pk)))
    wanted = {"a": Split.TRAIN, "b": Split.TRAIN, "c": Split.EVAL}
    seed = next(
        seed
        for seed in range(10_000)
        if all(
            instance_split(instance_id=reviewed_catalog[name].pk, eval_fraction=0.4, seed=seed) == split
            for name, split in wanted.items()
        )
    )
    snapshot = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0.4, seed=seed))
    snapshot.refresh_from_db()
    assert snapshot.is_frozen
    return snapshot


@pytest.fixture
def eval_snapshot(db):
    """Six instances of four real pictures each, all in the eval split, with hard negatives between
    neighbours (0-1, 1-2, ...) and a kept generated image of instance 0."""
    mug = CategoryFactory(name="mug")
    instances = [instance_with_images(mug, 4)[0] for _ in range(6)]
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
