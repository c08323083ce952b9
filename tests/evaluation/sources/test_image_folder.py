"""The generic ImageFolder layout: one identity per sub-folder."""

from pathlib import Path

import pytest

from evaluation.sources import SourceError, source_labelled_images
from tests.conftest import image_bytes


def test_each_sub_folder_is_one_label(tmp_path: Path):
    for relative, fmt in (
        ("mug/a.jpg", "JPEG"),
        ("mug/B.PNG", "PNG"),
        ("vase/c.webp", "WEBP"),
        ("vase/d.jpeg", "JPEG"),
    ):
        path = tmp_path / relative
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(image_bytes(format=fmt))
    (tmp_path / "mug" / "notes.txt").write_text("not a picture")
    (tmp_path / "mug" / ".hidden.jpg").write_bytes(image_bytes())
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.jpg").write_bytes(image_bytes())
    (tmp_path / "loose.jpg").write_bytes(image_bytes())  # not in a label folder
    (tmp_path / "mug" / "deeper").mkdir()
    (tmp_path / "mug" / "deeper" / "e.jpg").write_bytes(image_bytes())

    images = source_labelled_images("image_folder", tmp_path)
    assert [(image.key, image.label, image.name) for image in images] == [
        ("mug/B.PNG", "mug", "mug"),
        ("mug/a.jpg", "mug", "mug"),
        ("vase/c.webp", "vase", "vase"),
        ("vase/d.jpeg", "vase", "vase"),
    ]


def test_a_folder_without_labelled_images_says_what_it_expected(tmp_path: Path):
    (tmp_path / "loose.jpg").write_bytes(image_bytes())
    with pytest.raises(SourceError, match=r"expected root/<label>/<image>.jpg"):
        source_labelled_images("image_folder", tmp_path)
