"""Manifests for catalogs laid out as one folder per instance with a ``classes.csv`` beside them.

``classes.csv`` has a header and the columns ``subject,class`` (folder name, category), optionally a third,
``supercategory``. This is the layout of the DreamBooth dataset and of most instance-level photo sets.
"""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class FolderLayoutError(Exception):
    """The folder doesn't have the expected layout; the message says what is missing."""


@dataclass(frozen=True)
class FolderManifestResult:
    manifest_path: Path
    products: int
    images: int
    folders_without_class: tuple[str, ...]


def folder_manifest_build(
    *, root: Path, output: Path, classes_csv: Path | None = None, id_prefix: str = ""
) -> FolderManifestResult:
    """Writes a manifest with one product per listed subject folder; paths are relative to ``root``."""
    root, output = Path(root), Path(output)
    classes_csv = Path(classes_csv) if classes_csv else root / "classes.csv"
    classes = _read_classes(classes_csv)
    folders = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    products = images = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for subject, (category, supercategory) in classes.items():
            folder = root / subject
            if not folder.is_dir():
                raise FolderLayoutError(f"classes.csv lists {subject!r} but {folder} is not a folder")
            files = sorted(
                path.name
                for path in folder.iterdir()
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            )
            record = {
                "product_id": f"{id_prefix}{subject}",
                "title": subject.replace("_", " ").replace("-", " ").strip().capitalize(),
                "category": category,
                "images": [f"{subject}/{name}" for name in files],
            }
            if supercategory:
                record["supercategory"] = supercategory
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            products += 1
            images += len(files)
    return FolderManifestResult(
        manifest_path=output,
        products=products,
        images=images,
        folders_without_class=tuple(name for name in folders if name not in classes),
    )


def _read_classes(path: Path) -> dict[str, tuple[str, str | None]]:
    if not path.is_file():
        raise FolderLayoutError(f"no classes file at {path} (expected a CSV with the columns subject,class)")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        if "subject" not in fields or "class" not in fields:
            raise FolderLayoutError(f"{path} must have a header with the columns subject,class")
        classes: dict[str, tuple[str, str | None]] = {}
        for record in reader:
            record = {key.strip().lower(): (value or "").strip() for key, value in record.items() if key}
            if not record.get("subject") or not record.get("class"):
                continue
            classes[record["subject"]] = (record["class"], record.get("supercategory") or None)
    if not classes:
        raise FolderLayoutError(f"{path} lists no subjects")
    return classes
