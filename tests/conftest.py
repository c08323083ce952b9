"""Shared fixtures: an isolated media root per test, users in each role, and image files made on the spot."""

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import AnnotatorFactory, ResearcherFactory, UserFactory


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    settings.CATALOG_UPLOAD_DIR = tmp_path / "uploads"
    return root


@pytest.fixture
def researcher(db):
    return ResearcherFactory(username="researcher")


@pytest.fixture
def annotator(db):
    return AnnotatorFactory(username="annotator")


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
