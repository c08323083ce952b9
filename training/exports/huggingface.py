"""The Hugging Face export: a dataset folder that ``datasets.load_dataset`` reads, images embedded in the rows.

Archive layout::

    README.md                           dataset card; its YAML header maps the files to the splits
    data/train.parquet  data/test.parquet
    dataset_info.json  SHA256SUMS

Unpacked, the folder loads with ``load_dataset("<folder>")`` (the card's ``configs`` name the files of each
split, so the other files at the top are not mistaken for data), and a single file with
``load_dataset("parquet", data_files={"train": ".../data/train.parquet", "test": ...})``.

``image_a`` and ``image_b`` are Hugging Face ``Image`` features: a struct of the encoded file's ``bytes``
and a ``path`` (here only a name, ``<sha256>.<ext>``), declared in the parquet's ``huggingface`` schema
metadata, which is how ``datasets`` knows to decode them to PIL images. Every row carries its two images, so
an image shown by many pairs is stored many times: that is what makes the rows self-contained.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from annotation.dataset.questions import PAIR_QUESTION
from training.exports.archive import (
    SPLIT_NAMES_TRAINING,
    SPLITS,
    RowProgress,
    parquet_write,
    split_archive,
)
from training.exports.images import FittedImage, image_fit

if TYPE_CHECKING:
    from annotation.dataset.selectors import PairRow
    from training.exports.writers import ExportInput

FORMAT = "huggingface"
# A row holds two images (tens of kilobytes each at 512 pixels): small row groups keep the memory of a group,
# and of a reader taking one group at a time, to a few tens of megabytes.
ROW_GROUP_ROWS = 256
# Pairs come in id order, and the pairs of an image are often made together: remembering the last few shrunk
# images saves decoding and resizing them again for the next rows, at a few megabytes.
RECENT_IMAGES = 64

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
# (column, arrow type, Hugging Face feature) in column order.
COLUMNS = (
    ("pair_id", pa.int64(), {"dtype": "int64", "_type": "Value"}),
    ("image_a", IMAGE_TYPE, {"_type": "Image"}),
    ("image_b", IMAGE_TYPE, {"_type": "Image"}),
    ("question", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("answer", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("label", pa.bool_(), {"dtype": "bool", "_type": "Value"}),
    ("source", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("split", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("category", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("supercategory", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("image_a_id", pa.int64(), {"dtype": "int64", "_type": "Value"}),
    ("image_b_id", pa.int64(), {"dtype": "int64", "_type": "Value"}),
    ("instance_a_id", pa.int64(), {"dtype": "int64", "_type": "Value"}),
    ("instance_b_id", pa.int64(), {"dtype": "int64", "_type": "Value"}),
)
FEATURES = {name: feature for name, _, feature in COLUMNS}
SCHEMA = pa.schema(
    [pa.field(name, arrow_type) for name, arrow_type, _ in COLUMNS],
    metadata={"huggingface": json.dumps({"info": {"features": FEATURES}})},
)


def huggingface_write(input: ExportInput, out_dir: Path) -> Path:
    """Writes the Hugging Face archive in out_dir and returns its path."""
    fitted = _RecentImages(input.read_image, input.max_side)
    seen_images: set[str] = set()
    with split_archive(input, out_dir, format=FORMAT) as archive:
        for split in SPLITS:
            records = _records(input.rows(split), fitted, seen_images, archive.progress)
            archive.add_split(
                split,
                f"data/{SPLIT_NAMES_TRAINING[split]}.parquet",
                lambda path, records=records: parquet_write(
                    path, SCHEMA, records, row_group_rows=ROW_GROUP_ROWS
                ),
                compress=False,
            )
        card = dataset_card(
            dataset_name=input.dataset_name, split_files=archive.split_files, split_rows=archive.split_rows
        )
        archive.archive.add_bytes("README.md", card.encode("utf-8"), compress=True)
        return archive.finish(images=len(seen_images))


class _RecentImages:
    """Reads and shrinks images, remembering the last few (by sha256)."""

    def __init__(self, read_image: Callable[[str], bytes], max_side: int | None) -> None:
        self._read_image = read_image
        self._max_side = max_side
        self._recent: OrderedDict[str, FittedImage] = OrderedDict()

    def get(self, sha256: str, storage_name: str) -> FittedImage:
        if sha256 in self._recent:
            self._recent.move_to_end(sha256)
            return self._recent[sha256]
        image = image_fit(self._read_image(storage_name), max_side=self._max_side)
        self._recent[sha256] = image
        if len(self._recent) > RECENT_IMAGES:
            self._recent.popitem(last=False)
        return image


def _records(
    rows: Iterator[PairRow], fitted: _RecentImages, seen_images: set[str], progress: RowProgress
) -> Iterator[dict[str, Any]]:
    for row in rows:
        image_a = fitted.get(row.image_a_sha256, row.image_a_file)
        image_b = fitted.get(row.image_b_sha256, row.image_b_file)
        seen_images.update((row.image_a_sha256, row.image_b_sha256))
        yield {
            "pair_id": row.pair_id,
            "image_a": {"bytes": image_a.content, "path": f"{row.image_a_sha256}.{image_a.extension}"},
            "image_b": {"bytes": image_b.content, "path": f"{row.image_b_sha256}.{image_b.extension}"},
            "question": PAIR_QUESTION,
            "answer": row.answer,
            "label": row.answer == "yes",
            "source": row.source,
            "split": row.split,
            "category": row.category,
            "supercategory": row.supercategory,
            "image_a_id": row.image_a_id,
            "image_b_id": row.image_b_id,
            "instance_a_id": row.instance_a_id,
            "instance_b_id": row.instance_b_id,
        }
        progress.row_written()


def dataset_card(*, dataset_name: str, split_files: dict[str, str], split_rows: dict[str, int]) -> str:
    """The README.md: a YAML header that ``datasets`` reads (the files of each split and the features), then a
    short description for people.

    A split without rows is left out of the header, though its (empty) file is in the archive: ``datasets``
    refuses to load a split that has no data, and would then refuse the whole folder.
    """
    listed = [split for split in SPLITS if split_rows[split] > 0] or list(SPLITS)
    yaml_lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in listed:
        yaml_lines += [f"  - split: {SPLIT_NAMES_TRAINING[split]}", f"    path: {split_files[split]}"]
    yaml_lines += ["dataset_info:", "  features:"]
    for name, _, feature in COLUMNS:
        dtype = "image" if feature["_type"] == "Image" else feature["dtype"]
        yaml_lines += [f"  - name: {name}", f"    dtype: {dtype}"]
    yaml_lines += ["---"]
    counts = ", ".join(f"{split_rows[split]:,} in {SPLIT_NAMES_TRAINING[split]}" for split in SPLITS)
    body = f"""
# {dataset_name}

Pairs of images and whether they show the same object instance (one particular physical object, not just
the same kind of object), for training and evaluating vision-language models: {counts}.

Each row shows two images (`image_a`, `image_b`) and asks `question`; `answer` is "yes" or "no" (`label` is
true for "yes"). `source` says how the pair was found, `category` and `supercategory` what the objects are,
and the ids name the images and the instances in the catalog the dataset was built from. The `train` split
holds the snapshot's training pairs, `test` its evaluation pairs (`split` is "eval" there).

The question:

> {PAIR_QUESTION}

`dataset_info.json` records the snapshot this export was made from, and `SHA256SUMS` the checksum of every
file (`sha256sum -c SHA256SUMS`).
"""
    return "\n".join(yaml_lines) + "\n" + body
