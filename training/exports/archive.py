"""What every export format shares: the zip archive it is written into, the splits, streamed parquet tables and
progress reports.

An archive is written member by member and never read back: each member's sha256 is computed as it goes in,
and ``finish`` adds ``dataset_info.json`` and ``SHA256SUMS`` (in ``sha256sum -c`` format) last. Images and
parquet files, already compressed, are stored; text is deflated.

Tables are streamed: rows go to a parquet (or JSONL) file in a scratch folder as they are produced, a row
group at a time, and the finished file is copied into the archive. A zip takes one member at a time, and the
images go in while the table is still being written.
"""

import hashlib
import json
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotation.dataset.questions import ANSWERS, PAIR_QUESTION
from annotation.iterables import batched

if TYPE_CHECKING:
    from training.exports.writers import ExportInput

# The splits of a snapshot, in the order they are written, and the name verl and Hugging Face give each.
SPLITS = ("train", "eval")
SPLIT_NAMES_TRAINING = {"train": "train", "eval": "test"}

DATASET_INFO_NAME = "dataset_info.json"
CHECKSUMS_NAME = "SHA256SUMS"
PROGRESS_EVERY_ROWS = 500
_COPY_BLOCK_BYTES = 1 << 20
_MEMBER_PERMISSIONS = 0o644 << 16  # rw-r--r-- once unpacked


class ExportArchive:
    """One zip archive being written; it records the sha256 of every member for ``SHA256SUMS``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", allowZip64=True)
        self._sha256: dict[str, str] = {}

    def add_bytes(self, name: str, content: bytes, *, compress: bool) -> None:
        with self._zip.open(self._member(name, compress, len(content)), "w") as member:
            member.write(content)
        self._sha256[name] = hashlib.sha256(content).hexdigest()

    def add_file(self, name: str, path: Path, *, compress: bool) -> None:
        """Copies a finished file in, a block at a time."""
        digest = hashlib.sha256()
        with (
            path.open("rb") as source,
            self._zip.open(self._member(name, compress, path.stat().st_size), "w") as member,
        ):
            while block := source.read(_COPY_BLOCK_BYTES):
                digest.update(block)
                member.write(block)
        self._sha256[name] = digest.hexdigest()

    def finish(self, dataset_info: dict[str, Any]) -> None:
        """Adds ``dataset_info.json`` and the checksums of every member, then closes the archive."""
        info_text = json.dumps(dataset_info, indent=2, ensure_ascii=False) + "\n"
        self.add_bytes(DATASET_INFO_NAME, info_text.encode("utf-8"), compress=True)
        # Two spaces between hash and name: sha256sum's text mode, which ``sha256sum -c`` reads.
        checksums = "".join(f"{digest}  {name}\n" for name, digest in self._sha256.items())
        self.add_bytes(CHECKSUMS_NAME, checksums.encode("utf-8"), compress=True)
        self._zip.close()

    def abort(self) -> None:
        """Closes the archive unfinished and deletes it."""
        self._zip.close()
        self.path.unlink(missing_ok=True)

    def _member(self, name: str, compress: bool, size: int) -> zipfile.ZipInfo:
        if name in self._sha256:
            raise ValueError(f"The archive already holds {name}.")
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = _MEMBER_PERMISSIONS
        info.file_size = size  # lets zipfile decide on ZIP64 for members over 2 GiB
        return info


@contextmanager
def export_archive(out_dir: Path, *, dataset_name: str, format: str) -> Iterator[ExportArchive]:
    """A new archive ``<dataset name>-<format>.zip`` in out_dir; a failed export leaves no partial file."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset_name).strip("-.") or "dataset"
    archive = ExportArchive(out_dir / f"{safe_name}-{format}.zip")
    try:
        yield archive
    except BaseException:
        archive.abort()
        raise


class SplitArchive:
    """An export archive filled one split file at a time (each written to a scratch file, then copied in),
    and finished with ``dataset_info.json`` saying how many rows each split holds."""

    def __init__(self, archive: ExportArchive, scratch: Path, input: "ExportInput", format: str) -> None:
        self.archive = archive
        self.progress = RowProgress(input.on_progress)
        self.split_files: dict[str, str] = {}
        self.split_rows: dict[str, int] = {}
        self._scratch = scratch
        self._input = input
        self._format = format

    def add_split(
        self, split: str, member_name: str, write: Callable[[Path], int], *, compress: bool
    ) -> None:
        """``write(path)`` writes the split's file at path and returns its row count."""
        path = self._scratch / Path(member_name).name
        self.split_rows[split] = write(path)
        self.split_files[split] = member_name
        self.archive.add_file(member_name, path, compress=compress)
        path.unlink()

    def finish(self, *, images: int) -> Path:
        self.progress.finish()
        self.archive.finish(
            dataset_info_make(
                format=self._format,
                dataset_name=self._input.dataset_name,
                max_side=self._input.max_side,
                metadata=self._input.metadata,
                split_files=self.split_files,
                split_rows=self.split_rows,
                images=images,
            )
        )
        return self.archive.path


@contextmanager
def split_archive(input: "ExportInput", out_dir: Path, *, format: str) -> Iterator[SplitArchive]:
    """A new export archive in out_dir, with a scratch folder beside it for the split files."""
    with (
        export_archive(out_dir, dataset_name=input.dataset_name, format=format) as archive,
        tempfile.TemporaryDirectory(dir=out_dir) as scratch,
    ):
        yield SplitArchive(archive, Path(scratch), input, format)


class RowProgress:
    """Counts the rows written across all splits and reports the running total every few hundred rows."""

    def __init__(self, on_progress: Callable[[int], None], every: int = PROGRESS_EVERY_ROWS) -> None:
        self.rows = 0
        self._on_progress = on_progress
        self._every = every
        self._reported = -1

    def row_written(self) -> None:
        self.rows += 1
        if self.rows % self._every == 0:
            self._report()

    def finish(self) -> None:
        """Reports the final total (once), so the last call always says how many rows the export holds."""
        if self._reported != self.rows:
            self._report()

    def _report(self) -> None:
        self._on_progress(self.rows)
        self._reported = self.rows


def parquet_write(
    path: Path, schema: pa.Schema, records: Iterable[dict[str, Any]], *, row_group_rows: int
) -> int:
    """Writes records (dicts keyed by the schema's field names) to a parquet file, one row group of
    ``row_group_rows`` at a time, so only one row group is ever in memory. Returns the number of rows.

    The schema is fixed up front: an empty split still gets a readable file with every column, and a column
    that happens to be all null keeps its declared type.
    """
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for group in batched(records, row_group_rows):
            writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=row_group_rows)
            rows += len(group)
    return rows


def jsonl_write(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Writes records to a JSON Lines file, one line at a time. Returns the number of lines."""
    lines = 0
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
            lines += 1
    return lines


def dataset_info_make(
    *,
    format: str,
    dataset_name: str,
    max_side: int | None,
    metadata: dict[str, Any],
    split_files: dict[str, str],
    split_rows: dict[str, int],
    images: int,
) -> dict[str, Any]:
    """The content of ``dataset_info.json``: what the archive holds (rows per split, distinct images) and where
    it comes from (``metadata``: the snapshot, its content hash, the export's parameters)."""
    return {
        "name": dataset_name,
        "format": format,
        "question": PAIR_QUESTION,
        "answers": list(ANSWERS),
        "max_side": max_side,
        "splits": {split: {"file": split_files[split], "rows": split_rows[split]} for split in SPLITS},
        "rows": sum(split_rows.values()),
        "images": images,
        "metadata": metadata,
    }
