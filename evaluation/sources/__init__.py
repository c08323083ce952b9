"""The benchmark sources FGVQA draws its queries from, one reader per published dataset layout.

Each reader module exposes ``labelled_images(root, **options) -> list[LabelledImage]`` over a local copy of
the dataset, using the split and the identity field the TWIN paper's appendix A.1 names. ``SOURCES`` says,
per source, what it is; ``source_labelled_images`` reads one by name.

The registry is cheap to import: reader modules (and pyarrow or datasets inside them) load only when a
source is read. Readers never write to disk and refuse names that would lead outside the root they are given.
"""

import importlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from evaluation.sources.labelled import LabelledImage

logger = logging.getLogger(__name__)

# What the image-folder style readers accept as pictures (compared lower-cased).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})

# A Windows drive ("C:") at the start of a listed name: absolute on that platform, so refused too.
_DRIVE = re.compile(r"^[A-Za-z]:")


class SourceError(Exception):
    """The root given lacks what the source's layout needs, or holds something a reader refuses."""


class Scan(NamedTuple):
    """What a file-list reader found: the images whose files exist, and how many listed files were missing."""

    images: list[LabelledImage]
    missing: int


@dataclass(frozen=True)
class SourceInfo:
    name: str  # the registry key
    display_name: str  # as the paper's tables name it
    domain: str  # the word the prompts use for an instance: bird, landmark, artwork, object, species
    split: str  # the dataset split the paper draws from
    identity: str  # the field that decides "same or not"
    module: str  # the reader module under evaluation.sources, imported on first use

    @property
    def reader(self) -> Callable[..., list[LabelledImage]]:
        return importlib.import_module(f"evaluation.sources.{self.module}").labelled_images


SOURCES: dict[str, SourceInfo] = {
    info.name: info
    for info in (
        SourceInfo("cub", "CUB", "bird", "test", "class id (image_class_labels.txt)", "cub"),
        SourceInfo("gldv2", "Landmarks", "landmark", "train", "landmark_id", "gldv2"),
        SourceInfo("met", "MET", "artwork", "mini_MET", "exhibit id", "met"),
        SourceInfo("ilias", "ILIAS", "object", "core_db", "__key__ (its first path part)", "ilias"),
        SourceInfo("inquire", "Inquire", "species", "validation", "inat24_species_name", "inquire"),
        SourceInfo("image_folder", "Image folder", "object", "all", "sub-folder name", "image_folder"),
    )
}


def source_labelled_images(name: str, root: str | Path, **options) -> list[LabelledImage]:
    """Reads source ``name`` from its local copy at ``root``; SourceError says what is missing or refused."""
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise SourceError(f"Unknown benchmark source {name!r}; known sources are {known}.")
    root = Path(root)
    if not root.exists():
        raise SourceError(f"The {SOURCES[name].display_name} root {root} does not exist.")
    return list(SOURCES[name].reader(root, **options))


def inside(root: Path, relative: str, *, listed_in: str) -> Path:
    """``root / relative`` for a name read from a dataset file, refusing absolute names and ``..`` parts.

    The check is on the name itself (lexical): a name from a listing must not climb out of the root. Symlinks
    the user placed inside the root are theirs to trust and are not resolved.
    """
    normalised = relative.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    if not normalised or normalised.startswith("/") or _DRIVE.match(normalised) or ".." in parts:
        raise SourceError(f"{listed_in} names {relative!r}, a path outside the dataset root {root}; refused.")
    return root.joinpath(*parts)


def log_missing(scan: Scan, *, listing: str, root: Path) -> list[LabelledImage]:
    """Logs how many listed files were missing (readers skip them) and returns the images found."""
    if scan.missing:
        logger.warning(
            "%d of %d images listed in %s are missing under %s; skipped.",
            scan.missing,
            scan.missing + len(scan.images),
            listing,
            root,
        )
    if not scan.images and scan.missing:
        raise SourceError(f"None of the {scan.missing} images listed in {listing} exists under {root}.")
    return scan.images


# Tabular sources (Hugging Face parquet shards, `datasets.save_to_disk` folders) are read in Arrow batches of this
# many rows, so that a split with inline images never sits in memory twice.
BATCH_ROWS = 256


def is_saved_dataset(root: Path) -> bool:
    """Whether ``root`` is a folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return root.is_dir() and ((root / "dataset_dict.json").is_file() or (root / "state.json").is_file())


def load_saved_dataset(root: Path):
    """``datasets.load_from_disk(root)``: a Dataset or a DatasetDict (datasets is imported only here)."""
    from datasets import load_from_disk

    return load_from_disk(str(root))


def dataset_rows(dataset, columns: Sequence[str]) -> Iterator[dict]:
    """The rows of a ``datasets.Dataset`` as plain dicts, images left encoded ({bytes, path}), not decoded."""
    present = [column for column in columns if column in dataset.column_names]
    for table in dataset.select_columns(present).with_format("arrow").iter(batch_size=BATCH_ROWS):
        yield from table.to_pylist()


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def parquet_rows(paths: Sequence[Path], columns: Sequence[str]) -> Iterator[dict]:
    """The rows of parquet files, in order, as plain dicts holding only ``columns`` (those each file has)."""
    import pyarrow.parquet as pq

    for path in paths:
        file = pq.ParquetFile(path)
        present = [column for column in columns if column in file.schema_arrow.names]
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=present):
            yield from batch.to_pylist()
