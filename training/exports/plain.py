"""The plain export: JSON Lines and image files, for any tool.

Archive layout::

    train.jsonl  eval.jsonl     one JSON object per pair, named by the snapshot's split names
    images/<sha256>.<ext>       each image once, named by the stored image's sha256; the stored file itself
                                unless the export bounds the size (then larger ones are shrunk to JPEGs)
    dataset_info.json  SHA256SUMS

A line holds the pair's fields as the API gives them (ids, answer, source, split, category, supercategory,
the images' sha256), the ``question``, and ``image_a``/``image_b``: the images' paths inside the archive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotation.dataset.questions import PAIR_QUESTION
from training.exports.archive import SPLITS, RowProgress, jsonl_write, split_archive
from training.exports.images import ArchivedImages

if TYPE_CHECKING:
    from annotation.dataset.selectors import PairRow
    from training.exports.writers import ExportInput

FORMAT = "plain"


def plain_write(input: ExportInput, out_dir: Path) -> Path:
    """Writes the plain archive in out_dir and returns its path."""
    with split_archive(input, out_dir, format=FORMAT) as archive:
        images = ArchivedImages(archive.archive, input.read_image, input.max_side)
        for split in SPLITS:
            records = _records(input.rows(split), images, archive.progress)
            archive.add_split(
                split,
                f"{split}.jsonl",
                lambda path, records=records: jsonl_write(path, records),
                compress=True,
            )
        return archive.finish(images=len(images))


def _records(
    rows: Iterator[PairRow], images: ArchivedImages, progress: RowProgress
) -> Iterator[dict[str, Any]]:
    """The split's lines; each image goes into the archive the first time a line shows it."""
    for row in rows:
        # Storage names mean nothing outside the catalog's media storage: the lines give paths in the archive.
        record = row.to_json(with_files=False)
        record["question"] = PAIR_QUESTION
        record["image_a"] = images.name(row.image_a_sha256, row.image_a_file)
        record["image_b"] = images.name(row.image_b_sha256, row.image_b_file)
        yield record
        progress.row_written()
