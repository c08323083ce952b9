"""MET: the mini_MET ground truth ({"id", "path"} entries) over the images folder, and the folder fallback."""

import json
import logging
from pathlib import Path

import pytest

from evaluation.sources import SourceError, source_labelled_images
from tests.conftest import image_bytes

ENTRIES = [
    {"id": 34, "path": "MET/34/0.jpg"},
    {"id": 34, "path": "MET/34/1.jpg"},
    {"id": 51, "path": "MET/51/0.jpg"},
]


def make_met(root: Path, *, entries=ENTRIES, image_base: str = "images", skip: tuple[str, ...] = ()) -> Path:
    (root / "ground_truth").mkdir(parents=True)
    (root / "ground_truth" / "mini_MET_database.json").write_text(json.dumps(entries))
    (root / "ground_truth" / "MET_database.json").write_text(
        json.dumps(entries + [{"id": 99, "path": "MET/99/0.jpg"}])
    )
    for number, entry in enumerate([*entries, {"id": 99, "path": "MET/99/0.jpg"}]):
        if entry["path"] in skip:
            continue
        path = root / image_base / entry["path"] if image_base else root / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(seed=number))
    return root


def test_reads_mini_met_with_exhibit_ids_as_labels(tmp_path: Path):
    images = source_labelled_images("met", make_met(tmp_path))
    assert [(image.key, image.label) for image in images] == [
        ("MET/34/0.jpg", "34"),
        ("MET/34/1.jpg", "34"),
        ("MET/51/0.jpg", "51"),
    ]
    assert images[2].read() == image_bytes(seed=2)


def test_the_full_database_on_request(tmp_path: Path):
    from evaluation.sources.met import labelled_images

    assert len(labelled_images(make_met(tmp_path), mini=False)) == 4


@pytest.mark.parametrize("image_base", ["", "MET"])  # MET/<id>/ under the root; Kaggle's MET/MET/<id>/
def test_images_beside_the_ground_truth_are_found_too(tmp_path: Path, image_base: str):
    images = source_labelled_images("met", make_met(tmp_path, image_base=image_base))
    assert len(images) == 3


def test_missing_images_are_skipped_and_logged(tmp_path: Path, caplog):
    make_met(tmp_path, skip=("MET/34/1.jpg",))
    with caplog.at_level(logging.WARNING):
        images = source_labelled_images("met", tmp_path)
    assert [image.key for image in images] == ["MET/34/0.jpg", "MET/51/0.jpg"]
    assert "1 of 3 images listed in" in caplog.text


def test_without_ground_truth_each_exhibit_folder_is_one_identity(tmp_path: Path, caplog):
    for exhibit, count in (("34", 2), ("51", 1)):
        for n in range(count):
            path = tmp_path / "MET" / exhibit / f"{n}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image_bytes(seed=n))
    with caplog.at_level(logging.WARNING):
        images = source_labelled_images("met", tmp_path)
    assert [(image.key, image.label) for image in images] == [
        ("MET/34/0.jpg", "34"),
        ("MET/34/1.jpg", "34"),
        ("MET/51/0.jpg", "51"),
    ]
    assert "no mini_MET_database.json" in caplog.text


def test_an_empty_root_names_what_it_looked_for(tmp_path: Path):
    with pytest.raises(
        SourceError, match=r"MET: found neither ground_truth/mini_MET_database.json nor a MET/"
    ):
        source_labelled_images("met", tmp_path)


def test_entries_leading_outside_the_root_are_refused(tmp_path: Path):
    make_met(tmp_path, entries=[{"id": 1, "path": "../../outside.jpg"}])
    with pytest.raises(SourceError, match="outside the dataset root"):
        source_labelled_images("met", tmp_path)


def test_malformed_entries_are_a_clear_error(tmp_path: Path):
    make_met(tmp_path, entries=[{"path": "MET/34/0.jpg"}])
    with pytest.raises(SourceError, match="entry 0 of .*mini_MET_database.json lacks 'id' or 'path'"):
        source_labelled_images("met", tmp_path)
