"""The entry point of the exports: one format, one input, one zip archive.

Every archive holds the pairs of the ``train`` split and of the ``eval`` split (verl and Hugging Face call it
``test``), the images, ``dataset_info.json`` (the metadata, the rows per split, the format and the question)
and ``SHA256SUMS``. See the format modules for their layouts: :mod:`training.exports.verl`,
:mod:`training.exports.huggingface`, :mod:`training.exports.plain`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from annotation.dataset.selectors import PairRow


class ExportFormat(StrEnum):
    VERL = "verl"
    HUGGINGFACE = "huggingface"
    PLAIN = "plain"


def _ignore_progress(rows_written: int) -> None:
    pass


@dataclass(frozen=True)
class ExportInput:
    """What a writer needs, without Django: the rows, the images' bytes and the archive's metadata."""

    dataset_name: str  # e.g. "twin-v3" (snapshot name and version); verl's data_source, the archive's name
    rows: Callable[[str], Iterator[PairRow]]  # split ("train" or "eval") -> its rows, streamed, in order
    read_image: Callable[[str], bytes]  # storage name -> the stored image file's bytes
    max_side: int | None  # shrink images so their longest side is at most this (None: keep them as stored)
    metadata: dict[str, Any]  # snapshot id, name, version, content hash, parameters: into dataset_info.json
    on_progress: Callable[[int], None] = _ignore_progress  # running total of rows written, every few hundred
    image_root: str = ""  # verl only: where the archive will be unpacked on the training nodes (see verl.py)


def export_write(*, format: ExportFormat, input: ExportInput, out_dir: Path) -> Path:
    """Writes the export as ONE zip archive in out_dir and returns its path.

    The rows are streamed: the memory used does not grow with the number of pairs (only the set of the images
    already written does, by their names). A failed export leaves no archive behind.
    """
    # The writers need pyarrow, which only the workers install (requirements-ml.txt): they are imported here,
    # so that the web process can import ExportFormat and ExportInput.
    from training.exports.huggingface import huggingface_write
    from training.exports.plain import plain_write
    from training.exports.verl import verl_write

    writers: dict[ExportFormat, Callable[[ExportInput, Path], Path]] = {
        ExportFormat.VERL: verl_write,
        ExportFormat.HUGGINGFACE: huggingface_write,
        ExportFormat.PLAIN: plain_write,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return writers[ExportFormat(format)](input, out_dir)
