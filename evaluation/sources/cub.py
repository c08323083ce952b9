"""CUB-200-2011, test split; identity = the bird species (class id).

Layout read (the archive as published, ``CUB_200_2011/``; the root may be that folder or its parent)::

    CUB_200_2011/
        images.txt               "<image_id> <relative path>"    e.g. "1 001.Black_footed_Albatross/Black_..._18.jpg"
        image_class_labels.txt   "<image_id> <class_id>"
        train_test_split.txt     "<image_id> <is_training_image>" (1 train, 0 test)
        classes.txt              "<class_id> <class folder>"     e.g. "1 001.Black_footed_Albatross"
        images/<relative path>

Only test images (is_training_image == 0) are read, as the paper does. The label is the class id; the name is
the class folder without its number, underscores as spaces ("Black footed Albatross"). Listed images whose file
is absent are skipped and counted.
"""

from pathlib import Path

from evaluation.sources import Scan, SourceError, inside, log_missing
from evaluation.sources.labelled import LabelledImage

FOLDER = "CUB_200_2011"
LISTS = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


def labelled_images(root: Path, *, split: str = "test") -> list[LabelledImage]:
    folder = dataset_folder(Path(root))
    return log_missing(scan(folder, split=split), listing=str(folder / "images.txt"), root=folder / "images")


def dataset_folder(root: Path) -> Path:
    """The folder holding the lists: ``root`` itself or ``root/CUB_200_2011``."""
    for candidate in (root, root / FOLDER):
        if (candidate / "images.txt").is_file():
            return candidate
    raise SourceError(
        f"CUB: no images.txt in {root} or {root / FOLDER}; expected the CUB_200_2011 folder as published."
    )


def scan(folder: Path, *, split: str = "test") -> Scan:
    """The images of ``split`` ("test" or "train") listed under ``folder`` (the CUB_200_2011 folder)."""
    if split not in ("test", "train"):
        raise SourceError(f"CUB: split must be 'test' or 'train', not {split!r}.")
    for name in LISTS:
        if not (folder / name).is_file():
            raise SourceError(
                f"CUB: {folder / name} is missing; the CUB_200_2011 folder needs {', '.join(LISTS)}."
            )
    paths = _id_table(folder / "images.txt")
    classes = _id_table(folder / "image_class_labels.txt")
    is_training = _id_table(folder / "train_test_split.txt")
    class_names = _id_table(folder / "classes.txt")
    wanted = "0" if split == "test" else "1"

    images: list[LabelledImage] = []
    missing = 0
    for image_id, relative in paths.items():
        if is_training.get(image_id) != wanted:
            continue
        if image_id not in classes:
            raise SourceError(f"CUB: image {image_id} has no class in {folder / 'image_class_labels.txt'}.")
        path = inside(folder / "images", relative, listed_in=str(folder / "images.txt"))
        if not path.is_file():
            missing += 1
            continue
        class_id = classes[image_id]
        images.append(
            LabelledImage(
                key=relative,
                label=class_id,
                path=str(path),
                name=species_name(class_names.get(class_id, "")),
            )
        )
    return Scan(images, missing)


def species_name(class_folder: str) -> str:
    """'001.Black_footed_Albatross' -> 'Black footed Albatross'."""
    _, _, name = class_folder.partition(".")
    return (name or class_folder).replace("_", " ").strip()


def _id_table(path: Path) -> dict[str, str]:
    """A CUB list file as {first column: rest of the line}; blank lines ignored."""
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            key, _, value = line.partition(" ")
            if not value:
                raise SourceError(f"CUB: line {number} of {path} has one column, expected two: {line!r}.")
            table[key] = value.strip()
    return table
