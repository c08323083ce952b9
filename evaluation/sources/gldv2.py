"""Google Landmarks v2, train split; identity = ``landmark_id``.

Layout read (github.com/cvdfoundation/google-landmark, the train set with its metadata CSVs in the root)::

    train.csv                     id,url,landmark_id          one row per image (4.1M rows)
    train_clean.csv               landmark_id,images           images = space-separated ids (the cleaned subset)
    train_label_to_category.csv   landmark_id,category         optional: a Wikimedia Commons category URL
    train/<id[0]>/<id[1]>/<id[2]>/<id>.jpg

The paper draws from the train split so that landmarks have enough images for multi queries. When both lists are
present the clean one is read by default (``listing="train_clean"``): its labels were verified, so fewer "yes"
answers are wrong; ``listing="train"`` reads the full list. Rows whose image file is absent are skipped and
counted (a partial download is the common case). The name comes from the category URL's last part
("http://commons.wikimedia.org/wiki/Category:Eiffel_Tower" -> "Eiffel Tower").

The train split has millions of images: read it once, then ``query_building.pool_sample`` picks the seeded subset
that is embedded and queried.
"""

import csv
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from evaluation.sources import Scan, SourceError, inside, log_missing
from evaluation.sources.labelled import LabelledImage

LISTINGS = {"train_clean": "train_clean.csv", "train": "train.csv"}
CATEGORIES = "train_label_to_category.csv"


def labelled_images(root: Path, *, listing: str | None = None) -> list[LabelledImage]:
    root = Path(root)
    csv_path = listing_path(root, listing)
    return log_missing(scan(root, listing=listing), listing=str(csv_path), root=root / "train")


def listing_path(root: Path, listing: str | None = None) -> Path:
    """The CSV to read: the one named, else train_clean.csv when present, else train.csv."""
    if listing is not None:
        if listing not in LISTINGS:
            raise SourceError(f"Landmarks: listing must be one of {', '.join(LISTINGS)}, not {listing!r}.")
        path = root / LISTINGS[listing]
        if not path.is_file():
            raise SourceError(f"Landmarks: {path} is missing.")
        return path
    for name in LISTINGS.values():
        if (root / name).is_file():
            return root / name
    raise SourceError(f"Landmarks: neither train_clean.csv nor train.csv is in {root}.")


def scan(root: Path, *, listing: str | None = None) -> Scan:
    root = Path(root)
    csv_path = listing_path(root, listing)
    names = category_names(root / CATEGORIES) if (root / CATEGORIES).is_file() else {}
    images: list[LabelledImage] = []
    missing = 0
    seen: set[str] = set()
    for image_id, landmark_id in _rows(csv_path):
        if image_id in seen:
            continue
        seen.add(image_id)
        path = image_path(root, image_id, listed_in=str(csv_path))
        if not path.is_file():
            missing += 1
            continue
        images.append(
            LabelledImage(key=image_id, label=landmark_id, path=str(path), name=names.get(landmark_id, ""))
        )
    return Scan(images, missing)


def image_path(root: Path, image_id: str, *, listed_in: str) -> Path:
    """train/a/b/c/abc....jpg for id 'abc...'; ids are hex strings, anything path-like is refused."""
    if len(image_id) < 3 or "/" in image_id or "\\" in image_id or image_id.startswith("."):
        raise SourceError(
            f"{listed_in} names image id {image_id!r}, which is not a Landmarks image id; refused."
        )
    return inside(
        root, f"train/{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg", listed_in=listed_in
    )


def category_names(path: Path) -> dict[str, str]:
    """{landmark_id: readable name} from train_label_to_category.csv."""
    names: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            landmark_id = (row.get("landmark_id") or "").strip()
            if landmark_id:
                names[landmark_id] = category_name(row.get("category") or "")
    return names


def category_name(url: str) -> str:
    """'http://commons.wikimedia.org/wiki/Category:Happy_Valley,_Hong_Kong' -> 'Happy Valley, Hong Kong'."""
    last = unquote(urlparse(url.strip()).path.rstrip("/").rsplit("/", 1)[-1])
    return last.removeprefix("Category:").replace("_", " ").strip()


def _rows(csv_path: Path) -> Iterator[tuple[str, str]]:
    """(image id, landmark id) pairs from either CSV shape, streamed: train.csv has millions of rows."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if {"id", "landmark_id"} <= columns:
            for row in reader:
                image_id, landmark_id = (row["id"] or "").strip(), (row["landmark_id"] or "").strip()
                if image_id and landmark_id:
                    yield image_id, landmark_id
        elif {"landmark_id", "images"} <= columns:
            for row in reader:
                landmark_id = (row["landmark_id"] or "").strip()
                for image_id in (row["images"] or "").split():
                    if landmark_id:
                        yield image_id, landmark_id
        else:
            raise SourceError(
                f"Landmarks: {csv_path} has columns {sorted(columns)}; expected id,url,landmark_id (train.csv) "
                "or landmark_id,images (train_clean.csv)."
            )
