"""Streaming reader of catalog manifests: one JSON object per line, one product per object.

``{"product_id": "B00X1", "title": "...", "category": "vase", "supercategory": "Home & Kitchen",
"images": ["b00x1/1.jpg", "b00x1/2.jpg"]}`` (``supercategory`` optional). Lines are read one at a time, so a
manifest of any size costs constant memory, and a bad line becomes a ``ManifestLineError`` for that line alone.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_PRODUCT_ID_LENGTH = 255
MAX_TITLE_LENGTH = 1000
MAX_CATEGORY_LENGTH = 200


class ManifestUnreadable(Exception):
    """The manifest as a whole can't be read (missing, a folder, no permission)."""


@dataclass(frozen=True)
class ManifestRow:
    line_number: int
    product_id: str
    title: str
    category: str
    supercategory: str | None
    images: tuple[str, ...]


@dataclass(frozen=True)
class ManifestLineError:
    line_number: int
    product_id: str | None
    reason: str


def manifest_line_count(path: Path) -> int:
    """Lines in the file, counted without decoding it, for progress bars."""
    count = 0
    last = b"\n"
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError as exc:
        raise ManifestUnreadable(f"can't read manifest {path}: {exc.strerror or exc}") from None
    return count + (0 if last == b"\n" else 1)


def manifest_read(path: Path) -> Iterator[ManifestRow | ManifestLineError]:
    """Yields each non-blank line as a row or an error. Repeated product ids after the first are errors."""
    try:
        handle = path.open("rb")
    except IsADirectoryError:
        raise ManifestUnreadable(f"manifest {path} is a folder, not a file") from None
    except OSError as exc:
        raise ManifestUnreadable(f"can't open manifest {path}: {exc.strerror or exc}") from None

    first_line_of_product: dict[str, int] = {}
    with handle:
        for line_number, raw_line in enumerate(handle, start=1):
            if line_number == 1 and raw_line.startswith(b"\xef\xbb\xbf"):
                raw_line = raw_line[3:]
            if not raw_line.strip():
                continue
            parsed = parse_manifest_line(raw_line, line_number)
            if isinstance(parsed, ManifestRow):
                first_line = first_line_of_product.get(parsed.product_id)
                if first_line is not None:
                    yield ManifestLineError(
                        line_number,
                        parsed.product_id,
                        f"product id {parsed.product_id!r} already appeared on line {first_line}; "
                        "each product must be listed once",
                    )
                    continue
                first_line_of_product[parsed.product_id] = line_number
            yield parsed


def parse_manifest_line(raw_line: bytes, line_number: int) -> ManifestRow | ManifestLineError:
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ManifestLineError(
            line_number,
            None,
            f"line is not valid UTF-8 (byte 0x{raw_line[exc.start]:02x} at position {exc.start})",
        )
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return ManifestLineError(
            line_number, None, f"line is not valid JSON: {exc.msg} at column {exc.colno}"
        )
    if not isinstance(record, dict):
        return ManifestLineError(
            line_number,
            None,
            f"line must be a JSON object with the product's fields, not a {_json_type(record)}",
        )

    product_id = record.get("product_id")
    if isinstance(product_id, int) and not isinstance(product_id, bool):
        product_id = str(product_id)
    product_id_for_report = product_id.strip() if isinstance(product_id, str) and product_id.strip() else None

    def error(reason: str) -> ManifestLineError:
        return ManifestLineError(line_number, product_id_for_report, reason)

    problem = _required_text(record, "product_id", product_id, MAX_PRODUCT_ID_LENGTH)
    if problem:
        return error(problem)
    title = record.get("title")
    problem = _required_text(record, "title", title, MAX_TITLE_LENGTH)
    if problem:
        return error(problem)
    category = record.get("category")
    problem = _required_text(record, "category", category, MAX_CATEGORY_LENGTH)
    if problem:
        return error(problem)
    supercategory = record.get("supercategory")
    if supercategory is not None:
        if not isinstance(supercategory, str):
            return error(f"'supercategory' must be text, not {_json_type(supercategory)}")
        if len(supercategory.strip()) > MAX_CATEGORY_LENGTH:
            return error(f"'supercategory' is longer than {MAX_CATEGORY_LENGTH} characters")
        supercategory = supercategory.strip() or None

    images = record.get("images")
    if "images" not in record:
        return error("missing field 'images' (a list of image paths)")
    if not isinstance(images, list):
        return error(f"'images' must be a list of image paths, not {_json_type(images)}")
    if not images:
        return error("'images' is empty; a product needs at least one image")
    for position, image in enumerate(images):
        if not isinstance(image, str) or not image.strip():
            return error(f"'images' entry {position + 1} must be a non-empty path, not {_json_type(image)}")

    return ManifestRow(
        line_number=line_number,
        product_id=product_id.strip(),
        title=" ".join(title.split()),
        category=" ".join(category.split()),
        supercategory=" ".join(supercategory.split()) if supercategory else None,
        images=tuple(image.strip() for image in images),
    )


def _required_text(record: dict, field: str, value: object, max_length: int) -> str | None:
    if field not in record:
        return f"missing field '{field}'"
    if not isinstance(value, str):
        return f"'{field}' must be text, not {_json_type(value)}"
    if not value.strip():
        return f"'{field}' is empty"
    if len(value.strip()) > max_length:
        return f"'{field}' is longer than {max_length} characters"
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text" if value.strip() else "empty text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
