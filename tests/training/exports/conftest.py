"""Fixtures of the export tests: a few stored pictures of different sizes, modes and formats, pairs that show
them, and helpers that unpack an archive and check its checksums. No database: the writers take plain rows."""

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotation.dataset.selectors import PairRow
from training.exports.writers import ExportInput

# storage name -> (width, height), mode, format
PICTURES = {
    "images/4f/wide.jpg": ((800, 600), "RGB", "JPEG"),
    "images/a0/tall.png": ((300, 900), "RGBA", "PNG"),
    "images/1c/small.jpg": ((40, 30), "RGB", "JPEG"),
    "images/e2/small.png": ((64, 48), "RGB", "PNG"),
}
WIDE, TALL, SMALL_JPEG, SMALL_PNG = PICTURES
# pair id, image a, image b, answer
TRAIN_PAIRS = [
    (1, WIDE, TALL, "yes"),
    (2, TALL, SMALL_JPEG, "no"),
    (3, WIDE, SMALL_PNG, "no"),
    (4, SMALL_JPEG, SMALL_PNG, "yes"),
    (5, TALL, WIDE, "no"),
]
EVAL_PAIRS = [
    (6, TALL, SMALL_PNG, "yes"),
    (7, WIDE, SMALL_JPEG, "no"),
]


def picture_bytes(size: tuple[int, int], mode: str, format: str, seed: int) -> bytes:
    """Smooth colour gradients with some noise (distinct per seed); RGBA gets a left-to-right alpha ramp."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 256, size=3)
    pixels = (base + np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)) % 256
    pixels = np.clip(pixels + rng.normal(0, 12, size=pixels.shape), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, "RGB")
    if mode == "RGBA":
        picture.putalpha(Image.fromarray((x * 255 // max(1, width - 1)).astype(np.uint8), "L"))
    buffer = io.BytesIO()
    picture.save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def stored_images() -> dict[str, bytes]:
    """The media storage: storage name -> file bytes."""
    return {
        name: picture_bytes(size, mode, format, seed)
        for seed, (name, (size, mode, format)) in enumerate(PICTURES.items())
    }


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def pair_row(
    pair_id: int, image_a: str, image_b: str, answer: str, split: str, stored: dict[str, bytes]
) -> PairRow:
    """A pair of two stored images; an image's id is its position in ``stored`` (plus 11)."""
    image_ids = {name: index for index, name in enumerate(stored, start=11)}
    return PairRow(
        pair_id=pair_id,
        image_a_id=image_ids[image_a],
        image_b_id=image_ids[image_b],
        answer=answer,
        source="mined" if pair_id % 2 else "duplicate",
        split=split,
        category="mug" if pair_id % 3 else "earbuds",
        supercategory="kitchen" if pair_id % 3 else "electronics",
        instance_a_id=100 + image_ids[image_a],
        instance_b_id=100 + image_ids[image_b] + (0 if answer == "yes" else 50),
        image_a_sha256=sha256_of(stored[image_a]),
        image_b_sha256=sha256_of(stored[image_b]),
        image_a_file=image_a,
        image_b_file=image_b,
    )


@pytest.fixture(scope="session")
def split_rows(stored_images) -> dict[str, list[PairRow]]:
    return {
        "train": [pair_row(*pair, "train", stored_images) for pair in TRAIN_PAIRS],
        "eval": [pair_row(*pair, "eval", stored_images) for pair in EVAL_PAIRS],
    }


def export_input(
    split_rows: dict[str, list[PairRow]], stored_images: dict[str, bytes], **overrides
) -> ExportInput:
    """An input over the given rows; ``rows`` hands out a fresh iterator on every call, as a query would."""
    settings = {
        "dataset_name": "twin-v3",
        "rows": lambda split: iter(split_rows[split]),
        "read_image": stored_images.__getitem__,
        "max_side": 512,
        "metadata": {"snapshot": 7, "name": "twin", "version": 3, "content_sha256": "ab" * 32},
        **overrides,
    }
    return ExportInput(**settings)


def unpack(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    return folder


def checksums_verify(folder: Path) -> list[str]:
    """Checks SHA256SUMS (sha256sum's format) against the unpacked files; returns the names it lists, which
    must be every file but SHA256SUMS itself."""
    listed = []
    for line in (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        assert len(digest) == 64, line
        assert sha256_of((folder / name).read_bytes()) == digest, name
        listed.append(name)
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert set(listed) == files - {"SHA256SUMS"}
    assert len(listed) == len(set(listed))
    return listed


def longest_side_fits(content: bytes, bound: int) -> bool:
    with Image.open(io.BytesIO(content)) as picture:
        return max(picture.size) <= bound
