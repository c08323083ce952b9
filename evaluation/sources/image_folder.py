"""A lab's own data in the ImageFolder layout; identity = the sub-folder an image sits in.

Layout read::

    root/<label>/<image>.{jpg,jpeg,png,webp}

Every visible sub-folder of the root is one identity (an instance, a species, ...); images are the files directly
inside it (extensions compared case-insensitively; hidden files and deeper folders are ignored). The key is
``<label>/<file name>``, the name is the folder's name. Symlinks the lab placed in the folder (a common way to
assemble one) are followed: they are the lab's choice, unlike names read from a listing.
"""

from pathlib import Path

from evaluation.sources import IMAGE_SUFFIXES, SourceError
from evaluation.sources.labelled import LabelledImage


def labelled_images(root: Path) -> list[LabelledImage]:
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"Image folder: {root} is not a folder.")
    images: list[LabelledImage] = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            images.append(
                LabelledImage(
                    key=f"{folder.name}/{path.name}", label=folder.name, path=str(path), name=folder.name
                )
            )
    if not images:
        raise SourceError(
            f"Image folder: {root} holds no images in sub-folders; expected root/<label>/<image>.jpg "
            "(jpg, jpeg, png or webp)."
        )
    return images
