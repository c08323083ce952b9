"""The Hugging Face export, read back by ``datasets.load_dataset``: as a dataset folder and as parquet files."""

import json

import datasets
import pytest
from PIL import Image

from annotation.dataset.questions import PAIR_QUESTION
from tests.training.exports.conftest import checksums_verify, export_input, unpack
from training.exports.writers import ExportFormat, export_write

# The pictures' sizes once fitted into 512 pixels: 800x600 and 300x900 shrink, the small ones are kept.
FITTED_SIZES = {"wide.jpg": (512, 384), "tall.png": (171, 512), "small.jpg": (40, 30), "small.png": (64, 48)}


@pytest.fixture
def unpacked(tmp_path, split_rows, stored_images):
    archive = export_write(
        format=ExportFormat.HUGGINGFACE,
        input=export_input(split_rows, stored_images),
        out_dir=tmp_path / "out",
    )
    return unpack(archive, tmp_path / "unpacked")


def check_split(dataset: datasets.Dataset, rows) -> None:
    assert len(dataset) == len(rows)
    for record, row in zip(dataset, rows, strict=True):
        assert record["pair_id"] == row.pair_id
        assert record["answer"] == row.answer and record["label"] is (row.answer == "yes")
        assert record["question"] == PAIR_QUESTION
        assert (record["source"], record["split"], record["category"], record["supercategory"]) == (
            row.source,
            row.split,
            row.category,
            row.supercategory,
        )
        assert (record["image_a_id"], record["image_b_id"]) == (row.image_a_id, row.image_b_id)
        assert (record["instance_a_id"], record["instance_b_id"]) == (row.instance_a_id, row.instance_b_id)
        for image, storage_name in (
            (record["image_a"], row.image_a_file),
            (record["image_b"], row.image_b_file),
        ):
            assert isinstance(image, Image.Image)
            assert image.size == FITTED_SIZES[storage_name.rsplit("/", 1)[-1]]


def test_load_dataset_reads_the_unpacked_folder_with_its_splits_and_images(unpacked, split_rows, tmp_path):
    loaded = datasets.load_dataset(str(unpacked), cache_dir=str(tmp_path / "cache"))

    assert set(loaded) == {"train", "test"}
    assert loaded["train"].features["image_a"] == datasets.Image()
    assert loaded["train"].features["label"] == datasets.Value("bool")
    check_split(loaded["train"], split_rows["train"])
    check_split(loaded["test"], split_rows["eval"])


def test_load_dataset_reads_the_parquet_files(unpacked, split_rows, tmp_path):
    loaded = datasets.load_dataset(
        "parquet",
        data_files={
            "train": str(unpacked / "data/train.parquet"),
            "test": str(unpacked / "data/test.parquet"),
        },
        cache_dir=str(tmp_path / "cache"),
    )

    check_split(loaded["train"], split_rows["train"])
    check_split(loaded["test"], split_rows["eval"])


def test_archive_has_a_dataset_card_info_and_checksums(unpacked):
    listed = checksums_verify(unpacked)
    assert set(listed) == {"README.md", "data/train.parquet", "data/test.parquet", "dataset_info.json"}

    card = (unpacked / "README.md").read_text()
    assert "path: data/train.parquet" in card and "path: data/test.parquet" in card
    assert "5 in train, 2 in test" in card
    info = json.loads((unpacked / "dataset_info.json").read_text())
    assert info["format"] == "huggingface" and info["images"] == 4
    assert info["splits"]["eval"] == {"file": "data/test.parquet", "rows": 2}


def test_a_folder_with_an_empty_split_loads_with_the_other_one(tmp_path, split_rows, stored_images):
    only_train = {"train": split_rows["train"], "eval": []}
    archive = export_write(
        format=ExportFormat.HUGGINGFACE,
        input=export_input(only_train, stored_images),
        out_dir=tmp_path / "out",
    )
    folder = unpack(archive, tmp_path / "unpacked")

    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))

    assert set(loaded) == {"train"}
    check_split(loaded["train"], split_rows["train"])
    assert (folder / "data/test.parquet").is_file()
