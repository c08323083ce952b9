"""INQUIRE: validation parquet shards or a datasets folder; species names as identity; repeated images read once."""

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.sources import SourceError, source_labelled_images
from tests.conftest import image_bytes

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def rows(prefix: str, species: list[str | None], *, ids: list[int] | None = None) -> dict:
    ids = ids if ids is not None else list(range(len(species)))
    return {
        "image": [{"bytes": image_bytes(seed=i), "path": f"{i}.jpg"} for i in ids],
        "query": ["a bird on a branch"] * len(species),
        "inat24_image_id": ids,
        "inat24_file_name": [f"{prefix}/{i}.jpg" for i in ids],
        "inat24_species_name": species,
    }


def write_parquet(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("image", IMAGE),
            ("query", pa.string()),
            ("inat24_image_id", pa.int64()),
            ("inat24_file_name", pa.string()),
            ("inat24_species_name", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


def test_reads_the_validation_split_only(tmp_path: Path):
    write_parquet(
        tmp_path / "data" / "validation-00000-of-00001.parquet", rows("val", ["Bufo bufo", "Bufo bufo"])
    )
    write_parquet(tmp_path / "data" / "test-00000-of-00004.parquet", rows("test", ["Pica pica"], ids=[7]))
    images = source_labelled_images("inquire", tmp_path)
    assert [(image.key, image.label, image.name) for image in images] == [
        ("val/0.jpg", "Bufo bufo", "Bufo bufo"),
        ("val/1.jpg", "Bufo bufo", "Bufo bufo"),
    ]
    assert images[1].read() == image_bytes(seed=1)


def test_an_image_returned_for_several_queries_is_read_once(tmp_path: Path):
    write_parquet(tmp_path / "validation" / "0000.parquet", rows("v", ["Bufo bufo"] * 3, ids=[4, 4, 5]))
    assert [image.key for image in source_labelled_images("inquire", tmp_path)] == ["v/4.jpg", "v/5.jpg"]


def test_rows_without_a_species_are_skipped(tmp_path: Path, caplog):
    write_parquet(tmp_path / "validation.parquet", rows("v", ["Bufo bufo", None]))
    with caplog.at_level(logging.WARNING):
        images = source_labelled_images("inquire", tmp_path)
    assert len(images) == 1
    assert "1 rows under" in caplog.text


def test_a_saved_datasets_folder(tmp_path: Path):
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "query": datasets.Value("string"),
            "inat24_image_id": datasets.Value("int64"),
            "inat24_file_name": datasets.Value("string"),
            "inat24_species_name": datasets.Value("string"),
        }
    )
    splits = datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                rows("v", ["Bufo bufo", "Pica pica"]), features=features
            ),
            "test": datasets.Dataset.from_dict(rows("t", ["Vulpes vulpes"], ids=[9]), features=features),
        }
    )
    splits.save_to_disk(str(tmp_path / "inquire"))
    images = source_labelled_images("inquire", tmp_path / "inquire")
    assert [(image.key, image.label) for image in images] == [
        ("v/0.jpg", "Bufo bufo"),
        ("v/1.jpg", "Pica pica"),
    ]
    assert images[0].read() == image_bytes(seed=0)  # the encoded bytes, not a decoded picture

    splits.pop("validation")
    splits.save_to_disk(str(tmp_path / "test_only"))
    with pytest.raises(SourceError, match=r"has splits \['test'\], not 'validation'"):
        source_labelled_images("inquire", tmp_path / "test_only")


def test_a_root_without_validation_files_names_what_it_looked_for(tmp_path: Path):
    write_parquet(tmp_path / "data" / "test-00000-of-00004.parquet", rows("t", ["Pica pica"]))
    with pytest.raises(
        SourceError, match=r"Inquire: found no validation parquet files .*data/validation-\*.parquet"
    ):
        source_labelled_images("inquire", tmp_path)


def test_a_file_without_the_identity_column_is_refused(tmp_path: Path):
    pq.write_table(pa.table({"image": [{"bytes": b"x", "path": "x"}]}), tmp_path / "validation.parquet")
    with pytest.raises(SourceError, match="lacks the column\\(s\\) inat24_species_name"):
        source_labelled_images("inquire", tmp_path)
