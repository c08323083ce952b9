"""CUB-200-2011 in its published layout: the test split only, class ids as labels, species names."""

from pathlib import Path

import pytest

from evaluation.sources import SourceError, source_labelled_images
from evaluation.sources.cub import scan, species_name
from tests.conftest import image_bytes

CLASSES = {"1": "001.Black_footed_Albatross", "2": "002.Laysan_Albatross"}
# image id: (class id, is_training)
IMAGES = {"1": ("1", 1), "2": ("1", 0), "3": ("1", 0), "4": ("2", 0), "5": ("2", 1), "6": ("2", 0)}


def make_cub(parent: Path, *, skip_files: tuple[str, ...] = (), images: dict | None = None) -> Path:
    folder = parent / "CUB_200_2011"
    (folder / "images").mkdir(parents=True)
    images = images if images is not None else IMAGES
    paths = {}
    for image_id, (class_id, _) in images.items():
        relative = f"{CLASSES[class_id]}/{CLASSES[class_id].split('.')[1]}_{image_id}.jpg"
        paths[image_id] = relative
        if image_id not in skip_files:
            target = folder / "images" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image_bytes(seed=int(image_id)))
    (folder / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in paths.items()))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, (c, _) in images.items()))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, (_, t) in images.items()))
    (folder / "classes.txt").write_text("".join(f"{c} {name}\n" for c, name in CLASSES.items()))
    return folder


def test_reads_the_test_split_with_class_labels_and_species_names(tmp_path: Path):
    folder = make_cub(tmp_path)
    images = source_labelled_images("cub", folder)
    assert [(image.key.split("/")[1], image.label, image.name) for image in images] == [
        ("Black_footed_Albatross_2.jpg", "1", "Black footed Albatross"),
        ("Black_footed_Albatross_3.jpg", "1", "Black footed Albatross"),
        ("Laysan_Albatross_4.jpg", "2", "Laysan Albatross"),
        ("Laysan_Albatross_6.jpg", "2", "Laysan Albatross"),
    ]
    assert images[0].read() == image_bytes(seed=2)


def test_accepts_the_parent_of_the_cub_folder(tmp_path: Path):
    make_cub(tmp_path)
    assert len(source_labelled_images("cub", tmp_path)) == 4


def test_the_train_split_on_request(tmp_path: Path):
    folder = make_cub(tmp_path)
    assert [image.label for image in scan(folder, split="train").images] == ["1", "2"]


def test_missing_image_files_are_skipped_and_counted(tmp_path: Path):
    folder = make_cub(tmp_path, skip_files=("3",))
    result = scan(folder)
    assert result.missing == 1
    assert len(result.images) == 3


def test_a_root_without_the_lists_names_what_it_looked_for(tmp_path: Path):
    with pytest.raises(SourceError, match=r"CUB: no images.txt in .* expected the CUB_200_2011 folder"):
        source_labelled_images("cub", tmp_path)
    folder = make_cub(tmp_path)
    (folder / "train_test_split.txt").unlink()
    with pytest.raises(SourceError, match=r"train_test_split.txt is missing"):
        source_labelled_images("cub", folder)


def test_no_image_present_at_all_is_an_error(tmp_path: Path):
    folder = make_cub(tmp_path, skip_files=tuple(IMAGES))
    with pytest.raises(SourceError, match="None of the 4 images listed in .*images.txt exists"):
        source_labelled_images("cub", folder)


def test_a_listed_path_outside_the_images_folder_is_refused(tmp_path: Path):
    folder = make_cub(tmp_path)
    (folder / "images.txt").write_text("2 ../../secret.jpg\n")
    with pytest.raises(SourceError, match="outside the dataset root"):
        source_labelled_images("cub", folder)


def test_species_name():
    assert species_name("200.Common_Yellowthroat") == "Common Yellowthroat"
    assert species_name("Plain") == "Plain"
