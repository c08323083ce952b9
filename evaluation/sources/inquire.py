"""INQUIRE (the INQUIRE-Rerank release), validation split; identity = ``inat24_species_name``.

Layout read (huggingface.co/datasets/evendrow/INQUIRE-Rerank): parquet shards ``data/validation-*.parquet`` (any
``*.parquet`` whose path under the root mentions the split, so the hub's ``default/validation/0000.parquet``
conversion works too), or a folder written by ``datasets``' ``save_to_disk`` (a DatasetDict with a
``validation`` split). Columns used: ``image`` (a struct {bytes, path}), ``inat24_species_name``, and for the key
``inat24_file_name`` or ``inat24_image_id``.

INQUIRE-Rerank rows are (text query, image) pairs, so one iNat image can come back under several queries: it is
read once (by key). Images come inline (``data``); label and name are both the species name. Rows without image
bytes or species are skipped and counted (logged).
"""

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from evaluation.sources import (
    SourceError,
    dataset_rows,
    is_saved_dataset,
    load_saved_dataset,
    parquet_columns,
    parquet_rows,
)
from evaluation.sources.labelled import LabelledImage

logger = logging.getLogger(__name__)

IDENTITY = "inat24_species_name"
COLUMNS = ("image", IDENTITY, "inat24_file_name", "inat24_image_id")


def labelled_images(root: Path, *, split: str = "validation") -> list[LabelledImage]:
    root = Path(root)
    images: list[LabelledImage] = []
    seen: set[str] = set()
    skipped = 0
    for number, row in enumerate(_rows(root, split)):
        key = _key(row, number)
        if key in seen:
            continue
        seen.add(key)
        image = row.get("image") or {}
        data = image.get("bytes") if isinstance(image, dict) else None
        species = (row.get(IDENTITY) or "").strip()
        if not data or not species:
            skipped += 1
            continue
        images.append(LabelledImage(key=key, label=species, data=data, name=species))
    if skipped:
        logger.warning("Inquire: %d rows under %s lack image bytes or a species; skipped.", skipped, root)
    if not images:
        raise SourceError(f"Inquire: the {split} split under {root} holds no images with a species name.")
    return images


def split_files(root: Path, split: str) -> list[Path]:
    """The parquet files of ``split``: the root itself, or those under it whose path mentions the split."""
    if root.is_file():
        return [root] if root.suffix == ".parquet" else []
    # The split as a whole word of the path ("data/validation-00000-of-00001.parquet", "validation/0000.parquet").
    word = re.compile(rf"(^|[/_.-]){re.escape(split)}([/_.-]|$)")
    return sorted(p for p in root.rglob("*.parquet") if word.search(p.relative_to(root).as_posix().lower()))


def _rows(root: Path, split: str) -> Iterator[dict]:
    if is_saved_dataset(root):
        loaded = load_saved_dataset(root)
        if hasattr(loaded, "keys"):  # a DatasetDict
            if split not in loaded:
                raise SourceError(f"Inquire: {root} has splits {sorted(loaded)}, not {split!r}.")
            loaded = loaded[split]
        _require_columns(loaded.column_names, root)
        return dataset_rows(loaded, COLUMNS)
    files = split_files(root, split)
    if not files:
        raise SourceError(
            f"Inquire: found no {split} parquet files under {root} (looked for data/{split}-*.parquet, "
            f"any *{split}*.parquet, or a datasets save_to_disk folder)."
        )
    for path in files:
        _require_columns(parquet_columns(path), path)
    return parquet_rows(files, COLUMNS)


def _require_columns(columns: list[str], where: Path) -> None:
    missing = [column for column in ("image", IDENTITY) if column not in columns]
    if missing:
        raise SourceError(
            f"Inquire: {where} lacks the column(s) {', '.join(missing)}; it has {sorted(columns)}."
        )


def _key(row: dict, number: int) -> str:
    for column in ("inat24_file_name", "inat24_image_id"):
        if row.get(column) not in (None, ""):
            return str(row[column])
    return f"row-{number}"
