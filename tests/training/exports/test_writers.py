"""What every export format does: one archive with checksums and dataset_info.json, rows streamed with
progress reports, empty splits, and no leftovers when an export fails."""

import json
import zipfile
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest

from annotation.dataset.questions import PAIR_QUESTION
from annotation.dataset.selectors import PairRow
from tests.training.exports.conftest import (
    checksums_verify,
    export_input,
    pair_row,
    picture_bytes,
    unpack,
)
from training.exports.writers import ExportFormat, ExportInput, export_write

SPLIT_TABLES = {
    ExportFormat.VERL: {"train": "train.parquet", "eval": "test.parquet"},
    ExportFormat.HUGGINGFACE: {"train": "data/train.parquet", "eval": "data/test.parquet"},
    ExportFormat.PLAIN: {"train": "train.jsonl", "eval": "eval.jsonl"},
}


def table_rows(folder, name: str) -> int:
    if name.endswith(".parquet"):
        return pq.read_metadata(folder / name).num_rows
    return len((folder / name).read_text().splitlines())


@pytest.mark.parametrize("format", list(ExportFormat))
def test_one_archive_with_checksums_and_dataset_info(format, tmp_path, split_rows, stored_images):
    out_dir = tmp_path / "out"
    metadata = {"snapshot": 7, "name": "twin", "version": 3, "parameters": {"max_side": 512}}

    archive = export_write(
        format=format, input=export_input(split_rows, stored_images, metadata=metadata), out_dir=out_dir
    )

    assert list(out_dir.iterdir()) == [archive]  # no scratch files left behind
    assert archive.name == f"twin-v3-{format}.zip"
    with zipfile.ZipFile(archive) as opened:
        for member in opened.infolist():
            text = member.filename.endswith((".json", ".jsonl", ".md", "SHA256SUMS"))
            assert member.compress_type == (zipfile.ZIP_DEFLATED if text else zipfile.ZIP_STORED), (
                member.filename
            )
    folder = unpack(archive, tmp_path / "unpacked")
    checksums_verify(folder)
    info = json.loads((folder / "dataset_info.json").read_text())
    assert info["format"] == format and info["name"] == "twin-v3" and info["question"] == PAIR_QUESTION
    assert info["metadata"] == metadata
    assert info["rows"] == 7 and info["images"] == 4
    for split, name in SPLIT_TABLES[format].items():
        assert info["splits"][split] == {"file": name, "rows": len(split_rows[split])}
        assert table_rows(folder, name) == len(split_rows[split])


@pytest.mark.parametrize("format", list(ExportFormat))
def test_rows_are_streamed_with_progress_up_to_the_total(format, tmp_path):
    """20,000 pairs over a few images: progress comes while the rows are still being read, rising to the total."""
    stored = {f"images/{index}.png": picture_bytes((12, 10), "RGB", "PNG", seed=index) for index in range(6)}
    names = list(stored)
    counts = {"train": 15_000, "eval": 5_000}
    reports: list[int] = []
    reported_when_read: dict[int, int] = {}  # rows read so far -> the last progress report at that moment
    read = 0

    def rows(split: str) -> Iterator[PairRow]:
        nonlocal read
        for index in range(counts[split]):
            pair_id = index + (0 if split == "train" else counts["train"]) + 1
            image_a, image_b = names[pair_id % 6], names[(pair_id + 1 + pair_id % 4) % 6]
            yield pair_row(pair_id, image_a, image_b, "yes" if pair_id % 2 else "no", split, stored)
            read += 1
            reported_when_read[read] = reports[-1] if reports else 0

    export_input = ExportInput(
        dataset_name="twin-v9",
        rows=rows,
        read_image=stored.__getitem__,
        max_side=None,
        metadata={},
        on_progress=reports.append,
    )
    archive = export_write(format=format, input=export_input, out_dir=tmp_path / "out")

    assert reports[-1] == 20_000
    assert len(reports) >= 20_000 // 1000 and reports == sorted(set(reports))
    # Rows were written while later ones were still to come: nothing read the whole split first.
    assert reported_when_read[10_000] >= 5_000 and reported_when_read[19_000] >= 15_000
    folder = unpack(archive, tmp_path / "unpacked")
    for split, name in SPLIT_TABLES[format].items():
        assert table_rows(folder, name) == counts[split]
    if format != ExportFormat.HUGGINGFACE:
        assert len(list((folder / "images").iterdir())) == 6


@pytest.mark.parametrize("format", list(ExportFormat))
def test_an_empty_split_is_an_empty_table(format, tmp_path, split_rows, stored_images):
    only_train = {"train": split_rows["train"], "eval": []}
    archive = export_write(
        format=format, input=export_input(only_train, stored_images), out_dir=tmp_path / "out"
    )

    folder = unpack(archive, tmp_path / "unpacked")
    test_table = SPLIT_TABLES[format]["eval"]
    assert table_rows(folder, test_table) == 0
    if test_table.endswith(".parquet"):  # every column is there, with its type
        train_schema = pq.read_schema(folder / SPLIT_TABLES[format]["train"])
        assert pq.read_schema(folder / test_table).equals(train_schema)


@pytest.mark.parametrize("format", list(ExportFormat))
def test_a_failed_export_leaves_nothing_behind(format, tmp_path, split_rows, stored_images):
    def read_image(name: str) -> bytes:
        if name.endswith("small.png"):
            raise FileNotFoundError(name)
        return stored_images[name]

    out_dir = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        export_write(
            format=format,
            input=export_input(split_rows, stored_images, read_image=read_image),
            out_dir=out_dir,
        )
    assert list(out_dir.iterdir()) == []


def test_an_unsafe_dataset_name_makes_a_safe_archive_name(tmp_path):
    archive = export_write(
        format=ExportFormat.PLAIN,
        input=export_input({"train": [], "eval": []}, {}, dataset_name="../Mugs & cups/v2"),
        out_dir=tmp_path / "out",
    )
    assert archive.parent == tmp_path / "out" and archive.name == "Mugs-cups-v2-plain.zip"
