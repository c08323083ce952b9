"""The verl export: parquet files that verl 0.9's ``RLHFDataset`` reads for multimodal GRPO, and the images.

Archive layout::

    train.parquet  test.parquet     one row per pair (verl calls the evaluation split "test")
    images/<sha256>.<ext>           each image once, named by the stored image's sha256: a JPEG when it was
                                    shrunk to max_side, the stored file (and its format) when it fitted
    dataset_info.json  SHA256SUMS

Columns, as ``RLHFDataset`` and verl's reward functions use them:

- ``data_source``: the dataset's name, which picks the reward function and groups validation metrics;
- ``prompt``: one user message whose text holds an ``<image>`` placeholder per image, then the pair question;
  ``RLHFDataset._build_messages`` splits the text at the placeholders and puts the images in their places;
- ``images``: the two images' paths, in placeholder order. verl turns a string into the content part
  ``{"type": "image", "image": path}``, which ``qwen_vl_utils.fetch_image`` opens from the local disk. The
  paths are ``<image_root>/images/<sha256>.<ext>`` when the export is given the folder the archive will be
  unpacked into on the training nodes, else ``images/<sha256>.<ext>``, relative to the working directory of
  the processes that read them. The images are already shrunk here, so no per-row resize hints are needed
  (Qwen's processor still fits each image to its 28-pixel grid and pixel budget);
- ``ability``: "vision";
- ``reward_model``: ``{"style": "rule", "ground_truth": "yes" | "no"}``, the answer the reward compares the
  ``<answer>`` span with;
- ``extra_info``: the pair's ids and facts, and ``index``, its position in the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from annotation.dataset.questions import PAIR_QUESTION
from training.exports.archive import SPLIT_NAMES_TRAINING, SPLITS, RowProgress, parquet_write, split_archive
from training.exports.images import ArchivedImages

if TYPE_CHECKING:
    from annotation.dataset.selectors import PairRow
    from training.exports.writers import ExportInput

FORMAT = "verl"
ROW_GROUP_ROWS = 2000
PROMPT_TEXT = "<image>\n<image>\n" + PAIR_QUESTION

SCHEMA = pa.schema(
    [
        pa.field("data_source", pa.string()),
        pa.field(
            "prompt", pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))
        ),
        pa.field("images", pa.list_(pa.string())),
        pa.field("ability", pa.string()),
        pa.field(
            "reward_model", pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.string())])
        ),
        pa.field(
            "extra_info",
            pa.struct(
                [
                    pa.field("pair_id", pa.int64()),
                    pa.field("image_a_id", pa.int64()),
                    pa.field("image_b_id", pa.int64()),
                    pa.field("source", pa.string()),
                    pa.field("split", pa.string()),
                    pa.field("category", pa.string()),
                    pa.field("index", pa.int64()),
                ]
            ),
        ),
    ]
)


def verl_write(input: ExportInput, out_dir: Path) -> Path:
    """Writes the verl archive in out_dir and returns its path."""
    with split_archive(input, out_dir, format=FORMAT) as archive:
        images = ArchivedImages(archive.archive, input.read_image, input.max_side)
        for split in SPLITS:
            records = _records(input, split, images, archive.progress)
            archive.add_split(
                split,
                f"{SPLIT_NAMES_TRAINING[split]}.parquet",
                lambda path, records=records: parquet_write(
                    path, SCHEMA, records, row_group_rows=ROW_GROUP_ROWS
                ),
                compress=False,
            )
        return archive.finish(images=len(images))


def _records(
    input: ExportInput, split: str, images: ArchivedImages, progress: RowProgress
) -> Iterator[dict[str, Any]]:
    """The split's parquet rows; each image goes into the archive the first time a row shows it."""
    root = input.image_root.rstrip("/")
    for index, row in enumerate(input.rows(split)):
        names = (
            images.name(row.image_a_sha256, row.image_a_file),
            images.name(row.image_b_sha256, row.image_b_file),
        )
        paths = [f"{root}/{name}" if root else name for name in names]
        yield _record(input.dataset_name, row, paths, index)
        progress.row_written()


def _record(dataset_name: str, row: PairRow, image_paths: list[str], index: int) -> dict[str, Any]:
    return {
        "data_source": dataset_name,
        "prompt": [{"role": "user", "content": PROMPT_TEXT}],
        "images": image_paths,
        "ability": "vision",
        "reward_model": {"style": "rule", "ground_truth": row.answer},
        "extra_info": {
            "pair_id": row.pair_id,
            "image_a_id": row.image_a_id,
            "image_b_id": row.image_b_id,
            "source": row.source,
            "split": row.split,
            "category": row.category,
            "index": index,
        },
    }
