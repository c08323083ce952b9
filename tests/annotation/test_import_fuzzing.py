"""Property tests of the import's input handling (hypothesis): the manifest parser never fails on any line, only
turns it into a row or that line's error; rows always satisfy the catalog's limits; image paths never leave the
images root; a zip never writes outside its folder. The examples are the same on every run (the "default"
profile); HYPOTHESIS_PROFILE=explore draws new ones."""

import io
import json
import string
import tempfile
import warnings
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from annotation.importing.archive import ArchiveRejected, zip_extract_safely
from annotation.importing.images import ImageRejected, resolve_image_path
from annotation.importing.manifest import (
    MAX_CATEGORY_LENGTH,
    MAX_PRODUCT_ID_LENGTH,
    MAX_TITLE_LENGTH,
    ManifestLineError,
    ManifestRow,
    manifest_read,
    parse_manifest_line,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)
# Objects that look like products: the known fields, each with any JSON value or missing, plus strays.
fields = st.sampled_from(["product_id", "title", "category", "supercategory", "images"])
product_like = st.dictionaries(
    fields | st.text(max_size=8), json_values | st.lists(st.text(max_size=20)), max_size=7
)


def _assert_within_limits(row: ManifestRow) -> None:
    assert row.product_id and row.product_id == row.product_id.strip()
    assert len(row.product_id) <= MAX_PRODUCT_ID_LENGTH
    assert row.title and len(row.title) <= MAX_TITLE_LENGTH and row.title == " ".join(row.title.split())
    assert row.category and len(row.category) <= MAX_CATEGORY_LENGTH
    assert row.supercategory is None or 0 < len(row.supercategory) <= MAX_CATEGORY_LENGTH
    assert row.images and all(image and image == image.strip() for image in row.images)


@given(raw=st.binary(max_size=300), line_number=st.integers(min_value=1, max_value=10**6))
@example(raw=b'{"product_id": "a", "title": "t", "category": "c", "images": ["x"]}', line_number=1)
@example(raw=b"\xff\xfe{}", line_number=2)
def test_any_bytes_become_a_row_or_that_line_s_error(raw, line_number):
    parsed = parse_manifest_line(raw, line_number)
    assert isinstance(parsed, ManifestRow | ManifestLineError)
    assert parsed.line_number == line_number
    if isinstance(parsed, ManifestRow):
        _assert_within_limits(parsed)
    else:
        assert parsed.reason


@given(record=product_like | json_values)
@example(record={"product_id": True, "title": "t", "category": "c", "images": ["x"]})
@example(record={"product_id": 7, "title": " t\n", "category": "c", "images": [" x "], "supercategory": ""})
def test_any_json_value_becomes_a_row_within_the_limits_or_a_reason(record):
    parsed = parse_manifest_line(json.dumps(record).encode(), 1)
    if isinstance(parsed, ManifestRow):
        _assert_within_limits(parsed)
        assert isinstance(record, dict) and isinstance(record["images"], list)
    else:
        assert parsed.reason and parsed.line_number == 1


printable = st.text(alphabet=string.ascii_letters + string.digits + " -_&/", min_size=1, max_size=60).filter(
    str.strip
)


@given(
    product_id=printable,
    title=printable,
    category=printable,
    images=st.lists(printable, min_size=1, max_size=5),
)
def test_a_valid_product_reads_back_as_written_once_normalized(product_id, title, category, images):
    record = {"product_id": product_id, "title": title, "category": category, "images": images}
    row = parse_manifest_line(json.dumps(record).encode(), 3)
    assert row == ManifestRow(
        3,
        product_id.strip(),
        " ".join(title.split()),
        " ".join(category.split()),
        None,
        tuple(image.strip() for image in images),
    )


def product_line():
    return st.builds(
        lambda pid: json.dumps(
            {"product_id": pid, "title": "t", "category": "c", "images": ["x.jpg"]}
        ).encode(),
        st.sampled_from(["a", "b", "c"]),
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b) | product_line(), max_size=12))
def test_a_manifest_of_any_lines_gives_one_entry_per_non_blank_line(tmp_path, lines):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b"\n".join(lines))
    entries = list(manifest_read(path))
    expected = [number for number, content in enumerate(lines, start=1) if content.strip()]
    if lines and lines[0].startswith(b"\xef\xbb\xbf") and not lines[0][3:].strip():
        expected = expected[1:]  # a BOM alone on the first line is blank
    assert [entry.line_number for entry in entries] == expected
    seen: set[str] = set()
    for entry in entries:
        if isinstance(entry, ManifestRow):
            assert entry.product_id not in seen  # a repeated id is the later line's error
            seen.add(entry.product_id)


path_parts = st.sampled_from(["..", ".", "", "a", "b.jpg", "C:", "\\", "/", "\x00", "..\\..", "%2e%2e", "~"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(path_parts | st.text(max_size=6), min_size=1, max_size=6), separator=st.sampled_from("/\\")
)
@example(parts=["..", "outside.jpg"], separator="/")
@example(parts=["C:", "Windows", "win.ini"], separator="\\")
def test_an_image_path_never_leaves_the_images_root(tmp_path, parts, separator):
    root = (tmp_path / "images").resolve()
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "link").unlink(missing_ok=True)
    (root / "link").symlink_to(tmp_path)  # a symlink out of the root
    manifest_path = separator.join(parts)
    try:
        resolved = resolve_image_path(root, manifest_path)
    except ImageRejected as exc:
        assert str(exc)
        return
    assert resolved == root or root in resolved.parents


names = st.lists(
    path_parts | st.text(alphabet="ab./\\:", min_size=1, max_size=8), min_size=1, max_size=4
).map("/".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(names, min_size=1, max_size=5))
@example(entries=["../../escaped.jpg"])
@example(entries=["/etc/passwd"])
def test_a_zip_writes_nothing_outside_its_folder(tmp_path, entries):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    destination = work / "extracted"
    destination.mkdir(parents=True)
    archive = work / "upload.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the input
        for name in entries:
            entry = zipfile.ZipInfo(name)  # as zipfile stores it: leading slashes and drive letters dropped
            if entry.filename:
                zipped.writestr(entry, b"content")
    archive.write_bytes(buffer.getvalue())
    try:
        zip_extract_safely(archive=archive, destination=destination, max_total_bytes=10_000, max_entries=100)
    except ArchiveRejected as exc:
        assert str(exc)
    outside = [
        path
        for path in work.rglob("*")
        if path != archive and destination not in path.parents and path != destination
    ]
    assert outside == []
    assert not list(tmp_path.parent.glob("escaped*"))
