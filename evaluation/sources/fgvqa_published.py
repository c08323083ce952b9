"""The published FGVQA benchmark (huggingface.co/datasets/glab-caltech/FGVQA): its queries as released.

Unlike the other readers this one yields ready-made queries, not labelled images. Format read (the fields the
reference lmms-eval tasks read, github.com/damianomarsili/lmms-eval ``tasks/_task_utils/fgvqa_shared.py`` and
``tasks/fgvqa_*/utils.py``), one row per query:

- ``question``: the prompt text;
- ``answer``: "yes"/"no" for a pair query, "0".."3" (how many candidates match the reference) for a multi query;
- ``question_type``: "pairwise" for a pair query; anything else ("multiple_choice") is a multi query;
- ``images``: a list of {bytes, path} structs (Hugging Face Image features) or of paths;
- ``dataset_source``: "twin", "fgvqa_cub", "fgvqa_ilias", "fgvqa_met", "fgvqa_google_landmarks", "fgvqa_inquire";
- ``extra`` (optional): a JSON string or a dict of per-query details (instance ids, source keys).

The root is a parquet file, a folder of parquet files (searched recursively), or a folder written by
``datasets``' ``save_to_disk`` (a Dataset, or a DatasetDict whose "test" split is read, else its only or first
split). An image given by path only is read from under the root; paths leading outside it are refused.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.sources import (
    SourceError,
    dataset_rows,
    inside,
    is_saved_dataset,
    load_saved_dataset,
    parquet_columns,
    parquet_rows,
)

# The word the prompts use for an instance, per benchmark (dataset_source without its "fgvqa_" prefix).
DOMAINS = {
    "twin": "object",
    "ilias": "object",
    "cub": "bird",
    "met": "artwork",
    "google_landmarks": "landmark",
    "inquire": "species",
}

COLUMNS = ("question", "answer", "question_type", "images", "dataset_source", "extra")
REQUIRED = ("question", "answer", "images", "dataset_source")


@dataclass(frozen=True)
class PublishedQuery:
    dataset_source: str  # as published: "twin", "fgvqa_cub", ...
    question_type: str  # "pair" or "multi"
    question: str
    answer: str  # pair: "yes"/"no"; multi: "0".."3"
    images: list[bytes]  # encoded images; multi: the reference first, then the candidates
    extra: dict = field(default_factory=dict)
    row: int = 0  # the row's position in the published split, for tracing a query back


def short_source(dataset_source: str) -> str:
    """'fgvqa_google_landmarks' -> 'google_landmarks'; 'twin' stays 'twin'."""
    return dataset_source.strip().removeprefix("fgvqa_")


def source_domain(dataset_source: str) -> str | None:
    """The domain a published dataset_source asks about ("bird", "object", ...), None when unknown."""
    return DOMAINS.get(short_source(dataset_source))


def published_queries(root: str | Path, dataset_source: str | None = None) -> Iterator[PublishedQuery]:
    """The published queries, in row order; only those of ``dataset_source`` when given ("fgvqa_cub" or "cub").

    The root is checked at once (SourceError); rows are then read lazily, a batch at a time.
    """
    root = Path(root)
    rows = _rows(root, COLUMNS)
    wanted = short_source(dataset_source) if dataset_source else None
    base = root if root.is_dir() else root.parent

    def generate() -> Iterator[PublishedQuery]:
        for number, row in enumerate(rows):
            source = str(row.get("dataset_source") or "")
            if wanted is not None and short_source(source) != wanted:
                continue
            yield _query(row, number, source, base)

    return generate()


def published_sources(root: str | Path) -> dict[str, int]:
    """How many queries each dataset_source has, in order of first appearance."""
    counts: dict[str, int] = {}
    for row in _rows(Path(root), ("dataset_source",)):
        source = str(row.get("dataset_source") or "")
        counts[source] = counts.get(source, 0) + 1
    return counts


def _query(row: dict, number: int, source: str, base: Path) -> PublishedQuery:
    question_type = (
        "pair" if str(row.get("question_type") or "pairwise").strip() in ("pairwise", "pair") else "multi"
    )
    images = [_image_bytes(entry, number, base) for entry in (row.get("images") or [])]
    return PublishedQuery(
        dataset_source=source,
        question_type=question_type,
        question=str(row.get("question") or ""),
        answer=_answer(row.get("answer"), question_type, len(images), number),
        images=images,
        extra=_extra(row.get("extra")),
        row=number,
    )


def _answer(value, question_type: str, image_count: int, number: int) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if question_type == "pair":
        if isinstance(value, bool):
            return "yes" if value else "no"
        if text in ("yes", "no"):
            return text
        raise SourceError(f"FGVQA row {number}: a pair query's answer must be yes or no, not {value!r}.")
    candidates = max(image_count - 1, 0)
    if text.isdigit() and int(text) <= candidates:
        return str(int(text))
    raise SourceError(
        f"FGVQA row {number}: a multi query with {candidates} candidates needs an answer from 0 to {candidates}, "
        f"not {value!r}."
    )


def _extra(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}  # as the reference does: a malformed extra is no reason to drop the query
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _image_bytes(entry, number: int, base: Path) -> bytes:
    if isinstance(entry, dict):
        if entry.get("bytes"):
            return entry["bytes"]
        entry = entry.get("path") or ""
    if isinstance(entry, bytes):
        return entry
    if isinstance(entry, str) and entry:
        path = inside(base, entry, listed_in=f"FGVQA row {number}")
        if not path.is_file():
            raise SourceError(f"FGVQA row {number}: image {entry!r} is not under {base}.")
        return path.read_bytes()
    raise SourceError(f"FGVQA row {number}: an image entry has neither bytes nor a path: {entry!r}.")


def _rows(root: Path, columns: tuple[str, ...]) -> Iterator[dict]:
    """Rows of the published split holding ``columns``; the layout is checked before the first row is read."""
    if is_saved_dataset(root):
        loaded = load_saved_dataset(root)
        if hasattr(loaded, "keys"):  # a DatasetDict
            if not len(loaded):
                raise SourceError(f"FGVQA: {root} holds no splits.")
            loaded = loaded["test"] if "test" in loaded else loaded[next(iter(loaded))]
        _require(loaded.column_names, root, columns)
        return dataset_rows(loaded, columns)
    if root.is_file():
        files = [root] if root.suffix == ".parquet" else []
    elif root.is_dir():
        files = sorted(root.rglob("*.parquet"))
    else:
        raise SourceError(f"FGVQA: {root} does not exist.")
    if not files:
        raise SourceError(f"FGVQA: found no *.parquet files and no datasets save_to_disk folder at {root}.")
    for path in files:
        _require(parquet_columns(path), path, columns)
    return parquet_rows(files, columns)


def _require(present: list[str], where: Path, columns: tuple[str, ...]) -> None:
    missing = [column for column in REQUIRED if column in columns and column not in present]
    if missing:
        raise SourceError(
            f"FGVQA: {where} lacks the column(s) {', '.join(missing)}; it has {sorted(present)}."
        )
