"""Google Landmarks v2, train split: both CSV shapes, the nested image path, missing files, category names."""

import logging
from pathlib import Path

import pytest

from evaluation.sources import SourceError, source_labelled_images
from evaluation.sources.gldv2 import category_name, scan
from tests.conftest import image_bytes

IDS = {"abc0000000000001": "7", "abd0000000000002": "7", "f010000000000003": "9", "00a0000000000004": "9"}


def write_image(root: Path, image_id: str) -> None:
    path = root / "train" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(seed=len(image_id) + ord(image_id[-1])))


def make_gldv2(root: Path, *, missing: tuple[str, ...] = ()) -> Path:
    lines = ["id,url,landmark_id"] + [f"{i},http://example.org/{i}.jpg,{label}" for i, label in IDS.items()]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    for image_id in IDS:
        if image_id not in missing:
            write_image(root, image_id)
    return root


def test_reads_train_csv_with_landmark_ids_as_labels(tmp_path: Path):
    images = source_labelled_images("gldv2", make_gldv2(tmp_path))
    assert [(image.key, image.label) for image in images] == list(IDS.items())
    assert images[0].path.endswith("train/a/b/c/abc0000000000001.jpg")
    assert images[0].read().startswith(b"\xff\xd8")


def test_prefers_the_clean_list_and_takes_names_from_the_categories(tmp_path: Path):
    make_gldv2(tmp_path)
    (tmp_path / "train_clean.csv").write_text("landmark_id,images\n7,abc0000000000001 abd0000000000002\n")
    (tmp_path / "train_label_to_category.csv").write_text(
        "landmark_id,category\n7,http://commons.wikimedia.org/wiki/Category:Caf%C3%A9_de_Flore\n"
    )
    images = source_labelled_images("gldv2", tmp_path)
    assert [(image.key, image.label, image.name) for image in images] == [
        ("abc0000000000001", "7", "Café de Flore"),
        ("abd0000000000002", "7", "Café de Flore"),
    ]
    assert len(scan(tmp_path, listing="train").images) == 4


def test_missing_files_are_skipped_counted_and_logged(tmp_path: Path, caplog):
    make_gldv2(tmp_path, missing=("f010000000000003",))
    assert scan(tmp_path).missing == 1
    with caplog.at_level(logging.WARNING):
        images = source_labelled_images("gldv2", tmp_path)
    assert len(images) == 3
    assert "1 of 4 images listed in" in caplog.text


def test_a_root_without_the_csv_says_so(tmp_path: Path):
    with pytest.raises(SourceError, match="Landmarks: neither train_clean.csv nor train.csv is in"):
        source_labelled_images("gldv2", tmp_path)


def test_a_csv_of_another_shape_says_which_columns_it_expected(tmp_path: Path):
    (tmp_path / "train.csv").write_text("image,label\nx,1\n")
    with pytest.raises(SourceError, match="expected id,url,landmark_id"):
        source_labelled_images("gldv2", tmp_path)


@pytest.mark.parametrize("image_id", ["../../../etc/passwd", "ab/cdef", ".hidden"])
def test_path_like_ids_are_refused(tmp_path: Path, image_id: str):
    (tmp_path / "train.csv").write_text(f"id,url,landmark_id\n{image_id},x,1\n")
    with pytest.raises(SourceError, match="refused"):
        source_labelled_images("gldv2", tmp_path)


def test_category_name():
    assert category_name("http://commons.wikimedia.org/wiki/Category:Happy_Valley,_Hong_Kong") == (
        "Happy Valley, Hong Kong"
    )
    assert category_name("") == ""
