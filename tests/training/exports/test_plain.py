"""The plain export: JSON Lines and the image files they name."""

import json

from annotation.dataset.questions import PAIR_QUESTION
from tests.training.exports.conftest import (
    PICTURES,
    checksums_verify,
    export_input,
    longest_side_fits,
    sha256_of,
    unpack,
)
from training.exports.writers import ExportFormat, export_write

EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}


def plain_export(tmp_path, split_rows, stored_images, max_side):
    archive = export_write(
        format=ExportFormat.PLAIN,
        input=export_input(split_rows, stored_images, max_side=max_side),
        out_dir=tmp_path / "out",
    )
    return unpack(archive, tmp_path / "unpacked")


def test_lines_are_the_rows_with_the_question_and_the_images_paths(tmp_path, split_rows, stored_images):
    folder = plain_export(tmp_path, split_rows, stored_images, max_side=None)

    for file, split in (("train.jsonl", "train"), ("eval.jsonl", "eval")):
        lines = [json.loads(line) for line in (folder / file).read_text().splitlines()]
        assert len(lines) == len(split_rows[split])
        for line, row in zip(lines, split_rows[split], strict=True):
            expected = row.to_json()
            del expected["image_a_file"], expected["image_b_file"]
            extension_a = EXTENSIONS[PICTURES[row.image_a_file][2]]
            extension_b = EXTENSIONS[PICTURES[row.image_b_file][2]]
            assert line == {
                **expected,
                "question": PAIR_QUESTION,
                "image_a": f"images/{row.image_a_sha256}.{extension_a}",
                "image_b": f"images/{row.image_b_sha256}.{extension_b}",
            }
            # Without a bound the images are the stored files themselves.
            assert sha256_of((folder / line["image_a"]).read_bytes()) == row.image_a_sha256
            assert sha256_of((folder / line["image_b"]).read_bytes()) == row.image_b_sha256

    assert len(list((folder / "images").iterdir())) == len(PICTURES)
    listed = checksums_verify(folder)
    assert {"train.jsonl", "eval.jsonl", "dataset_info.json"} <= set(listed)
    info = json.loads((folder / "dataset_info.json").read_text())
    assert info["format"] == "plain" and info["max_side"] is None
    assert info["splits"] == {
        "train": {"file": "train.jsonl", "rows": 5},
        "eval": {"file": "eval.jsonl", "rows": 2},
    }


def test_a_bound_shrinks_the_large_images(tmp_path, split_rows, stored_images):
    folder = plain_export(tmp_path, split_rows, stored_images, max_side=100)

    lines = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    named = {line["image_a"] for line in lines} | {line["image_b"] for line in lines}
    assert all((folder / name).is_file() for name in named)
    images = list((folder / "images").iterdir())
    assert len(images) == len(PICTURES)
    assert all(longest_side_fits(path.read_bytes(), 100) for path in images)
