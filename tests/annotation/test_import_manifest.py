"""The manifest reader: every bad line becomes an error for that line alone."""

import json
from pathlib import Path

import pytest

from annotation.importing.manifest import (
    ManifestLineError,
    ManifestRow,
    ManifestUnreadable,
    manifest_line_count,
    manifest_read,
)

GOOD = {"product_id": "B00X1", "title": "Blue vase", "category": "vase", "images": ["b/1.jpg"]}


def read(tmp_path: Path, content: bytes) -> list:
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(content)
    return list(manifest_read(path))


def line(record: object) -> bytes:
    return json.dumps(record).encode() + b"\n"


def only_error(tmp_path: Path, content: bytes) -> ManifestLineError:
    (entry,) = read(tmp_path, content)
    assert isinstance(entry, ManifestLineError)
    return entry


def test_a_good_line(tmp_path):
    (row,) = read(tmp_path, line({**GOOD, "supercategory": " Home &  Kitchen ", "title": "  Blue\tvase "}))
    assert row == ManifestRow(1, "B00X1", "Blue vase", "vase", "Home & Kitchen", ("b/1.jpg",))


@pytest.mark.parametrize(
    "record, expected",
    [
        ({k: v for k, v in GOOD.items() if k != "product_id"}, "missing field 'product_id'"),
        ({**GOOD, "product_id": ""}, "'product_id' is empty"),
        ({**GOOD, "product_id": None}, "'product_id' must be text, not null"),
        ({**GOOD, "title": "   "}, "'title' is empty"),
        ({k: v for k, v in GOOD.items() if k != "title"}, "missing field 'title'"),
        ({**GOOD, "category": 5}, "'category' must be text, not a number"),
        ({k: v for k, v in GOOD.items() if k != "images"}, "missing field 'images'"),
        ({**GOOD, "images": []}, "'images' is empty"),
        ({**GOOD, "images": "b/1.jpg"}, "'images' must be a list"),
        ({**GOOD, "images": ["b/1.jpg", ""]}, "'images' entry 2 must be a non-empty path"),
        ({**GOOD, "images": [None]}, "'images' entry 1 must be a non-empty path, not null"),
        ({**GOOD, "supercategory": ["x"]}, "'supercategory' must be text"),
        ({**GOOD, "title": "x" * 1001}, "'title' is longer than 1000 characters"),
    ],
)
def test_missing_empty_or_wrong_fields(tmp_path, record, expected):
    error = only_error(tmp_path, line(record))
    assert expected in error.reason
    assert error.line_number == 1


def test_product_id_survives_into_the_error_when_present(tmp_path):
    assert only_error(tmp_path, line({**GOOD, "title": ""})).product_id == "B00X1"


def test_numeric_product_id_is_taken_as_text(tmp_path):
    (row,) = read(tmp_path, line({**GOOD, "product_id": 12345}))
    assert row.product_id == "12345"


def test_bad_json_and_non_objects(tmp_path):
    entries = read(tmp_path, b'{"product_id": "A", "title": \n[1, 2]\n"text"\n' + line(GOOD))
    assert [type(entry) for entry in entries] == [
        ManifestLineError,
        ManifestLineError,
        ManifestLineError,
        ManifestRow,
    ]
    assert "not valid JSON" in entries[0].reason and "column" in entries[0].reason
    assert "JSON object" in entries[1].reason and "a list" in entries[1].reason
    assert entries[3].line_number == 4


def test_invalid_utf8_only_costs_its_line(tmp_path):
    broken = b'{"product_id": "A", "title": "caf\xe9", "category": "mug", "images": ["a.jpg"]}\n'
    entries = read(tmp_path, broken + line(GOOD))
    assert isinstance(entries[0], ManifestLineError)
    assert "not valid UTF-8" in entries[0].reason and "0xe9" in entries[0].reason
    assert isinstance(entries[1], ManifestRow)


def test_utf8_bom_blank_lines_crlf_and_no_final_newline(tmp_path):
    content = (
        b"\xef\xbb\xbf"
        + line(GOOD).replace(b"\n", b"\r\n")
        + b"\n   \n"
        + line({**GOOD, "product_id": "B"})[:-1]
    )
    entries = read(tmp_path, content)
    assert [entry.product_id for entry in entries] == ["B00X1", "B"]
    assert [entry.line_number for entry in entries] == [1, 4]
    assert manifest_line_count(tmp_path / "manifest.jsonl") == 4


def test_non_ascii_text_is_kept(tmp_path):
    (row,) = read(
        tmp_path, json.dumps({**GOOD, "title": "Vase en céramique 花瓶"}, ensure_ascii=False).encode()
    )
    assert row.title == "Vase en céramique 花瓶"


def test_repeated_product_id_is_rejected_after_its_first_line(tmp_path):
    entries = read(
        tmp_path, line(GOOD) + line({**GOOD, "title": "again"}) + line({**GOOD, "product_id": "C"})
    )
    assert isinstance(entries[0], ManifestRow)
    assert isinstance(entries[1], ManifestLineError)
    assert "already appeared on line 1" in entries[1].reason
    assert entries[2].product_id == "C"


def test_missing_manifest_and_folder_are_unreadable(tmp_path):
    with pytest.raises(ManifestUnreadable):
        list(manifest_read(tmp_path / "nope.jsonl"))
    with pytest.raises(ManifestUnreadable, match="folder"):
        list(manifest_read(tmp_path))
