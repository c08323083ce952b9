"""The Met dataset, the mini_MET database; identity = the exhibit id.

Layout read (cmp.felk.cvut.cz/met, as its code in github.com/nikosips/met reads it: ``code/utils/datasets.py``
builds ``<images root>/images/<path>`` from the ground-truth JSON)::

    ground_truth/mini_MET_database.json   [{"id": <exhibit id>, "path": "MET/<id>/<n>.jpg"}, ...]
    ground_truth/MET_database.json        the full database, same shape (read with mini=False)
    images/MET/<id>/<n>.jpg               the exhibit photos

The JSON may also sit in the root itself, and the images may sit directly under the root (``MET/<id>/...``, as the
Kaggle copy has them) or under ``MET/`` (``MET/MET/<id>/...``). Each listed path is looked up under ``images/``,
the root and ``MET/``, in that order; listed images found nowhere are skipped and counted.

Without a database JSON the reader falls back to the folder-per-exhibit form ``MET/<id>/*.jpg`` (under the root
or ``images/``) and reads every exhibit folder there, logging that it could not restrict to mini_MET. MET has no
exhibit titles in its ground truth, so ``name`` is empty.
"""

import json
import logging
from pathlib import Path

from evaluation.sources import IMAGE_SUFFIXES, Scan, SourceError, inside, log_missing
from evaluation.sources.labelled import LabelledImage

logger = logging.getLogger(__name__)


def labelled_images(root: Path, *, mini: bool = True) -> list[LabelledImage]:
    root = Path(root)
    database = database_path(root, mini=mini)
    if database is None:
        return exhibit_folders(root, mini=mini)
    return log_missing(scan(root, database), listing=str(database), root=root)


def database_path(root: Path, *, mini: bool = True) -> Path | None:
    name = "mini_MET_database.json" if mini else "MET_database.json"
    for candidate in (root / "ground_truth" / name, root / name):
        if candidate.is_file():
            return candidate
    return None


def scan(root: Path, database: Path) -> Scan:
    try:
        entries = json.loads(database.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SourceError(f"MET: {database} is not valid JSON ({error}).") from error
    if not isinstance(entries, list):
        raise SourceError(f"MET: {database} should hold a list of {{'id', 'path'}} entries.")
    bases = (root / "images", root, root / "MET")
    images: list[LabelledImage] = []
    missing = 0
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "path" not in entry:
            raise SourceError(f"MET: entry {number} of {database} lacks 'id' or 'path': {entry!r}.")
        relative = str(entry["path"])
        found = next(
            (path for base in bases if (path := inside(base, relative, listed_in=str(database))).is_file()),
            None,
        )
        if found is None:
            missing += 1
            continue
        images.append(LabelledImage(key=relative, label=str(entry["id"]), path=str(found)))
    return Scan(images, missing)


def exhibit_folders(root: Path, *, mini: bool) -> list[LabelledImage]:
    """The folder-per-exhibit form: every MET/<id>/ folder is one exhibit."""
    # MET/MET/ first: the Kaggle copy nests the exhibit folders one level deeper.
    candidates = (root / "MET" / "MET", root / "images" / "MET", root / "MET")
    folder = next((f for f in candidates if f.is_dir()), None)
    wanted = "mini_MET_database.json" if mini else "MET_database.json"
    if folder is None:
        raise SourceError(
            f"MET: found neither ground_truth/{wanted} nor a MET/<exhibit id>/ image folder under {root}."
        )
    logger.warning("MET: no %s under %s; reading every exhibit folder in %s instead.", wanted, root, folder)
    images: list[LabelledImage] = []
    for exhibit in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(exhibit.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                key = f"MET/{exhibit.name}/{path.name}"
                images.append(LabelledImage(key=key, label=exhibit.name, path=str(path)))
    if not images:
        raise SourceError(f"MET: {folder} holds no exhibit images (MET/<exhibit id>/<n>.jpg).")
    return images
