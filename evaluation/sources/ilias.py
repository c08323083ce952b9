"""ILIAS, the core_db split; identity from the webdataset ``__key__``.

Layout read: the core_db webdataset shards as published on Hugging Face (vrg-prague/ilias), ``*.tar`` files whose
members are ``<key>.<ext>`` (``bold_bimp_000/pos/P000_07.jpg``, ``....bbox.json``, ``....download_url.txt``), or
the same files extracted into a folder (the ILIAS server's ``ilias_core/<instance>/{pos,query}/`` tree has the
same shape). The root may be one shard, a folder of shards, or a folder of extracted files. When a folder holds
shards of several splits, only those with ``core_db`` in their path are read.

Identity rule (confirmed in github.com/ilias-vrg/ilias: ``evaluation/src/dataset.py`` takes an image's instance as
``id.split("/")[0]``; ``download/README.md`` documents ``<instance>/{query,pos}/{Q,P}xxx_yy.jpg`` where ``xxx`` is
the instance number; the Hugging Face viewer shows keys such as ``bold_bimp_000/pos/P000_07``):

- a key with ``/``: the instance is its first part (``bold_bimp_000``);
- a flat key ``P000_07`` or ``Q000_00``: the instance number (``000``);
- another flat key ``<instance>_<n>``: the part before the last ``_<n>``;
- anything else is skipped and counted (logged).

Image queries (keys with a ``query`` part or a ``Q...`` name) belong to the img_queries split, not core_db, and
are left out unless ``include_queries=True``. The key follows webdataset's rule: the member name up to the first
dot of its file name.

Images from shards are returned inline (``data`` holds the encoded bytes, ``path`` is empty): shards are read as a
stream, never extracted to disk. core_db is small (about 4,700 images of at most 500 px, a few hundred MB in
memory); keep that in mind before pointing the reader at distractor shards. Images from an extracted folder keep
their ``path`` and are read when asked.
"""

import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from evaluation.sources import IMAGE_SUFFIXES, SourceError, inside
from evaluation.sources.labelled import LabelledImage

logger = logging.getLogger(__name__)

_FLAT_ILIAS_KEY = re.compile(r"^([PQ])(\d+)_\d+$")
_NUMBERED_KEY = re.compile(r"^(.+)_\d+$")


def labelled_images(root: Path, *, include_queries: bool = False) -> list[LabelledImage]:
    root = Path(root)
    images: list[LabelledImage] = []
    seen: set[str] = set()
    unidentified = 0
    for key, data, path in _samples(root):
        if key in seen:
            continue  # a second picture under one key (a .png beside the .jpg): webdataset keeps one
        seen.add(key)
        if not include_queries and is_query(key):
            continue
        label = instance_of(key)
        if label is None:
            unidentified += 1
            continue
        images.append(LabelledImage(key=key, label=label, data=data, path=path))
    if unidentified:
        logger.warning(
            "ILIAS: %d images under %s have a key without an instance; skipped.", unidentified, root
        )
    if not images:
        raise SourceError(
            f"ILIAS: found no core_db images (webdataset .tar shards or <key>.jpg files) in {root}."
        )
    return images


def instance_of(key: str) -> str | None:
    """The instance a webdataset ``__key__`` belongs to (see the module docstring), or None."""
    if "/" in key:
        return key.split("/", 1)[0]
    flat = _FLAT_ILIAS_KEY.match(key)
    if flat:
        return flat.group(2)
    numbered = _NUMBERED_KEY.match(key)
    return numbered.group(1) if numbered else None


def is_query(key: str) -> bool:
    parts = key.split("/")
    return "query" in parts[:-1] or bool(re.match(r"^Q\d+_\d+$", parts[-1]))


def split_key(name: str) -> tuple[str, str] | None:
    """webdataset's (key, extension) for a member name: up to / after the first dot of the file name."""
    directory, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def _samples(root: Path) -> Iterator[tuple[str, bytes | None, str]]:
    """(key, image bytes, path) for each image: bytes from a shard (path empty), or a file's path (bytes None)."""
    shards = _shards(root)
    if shards:
        for shard in shards:
            yield from _shard_samples(shard)
    elif root.is_dir():
        yield from _folder_samples(_core_folder(root))
    else:
        raise SourceError(f"ILIAS: {root} is neither a .tar shard nor a folder of core_db shards or images.")


def _shards(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix == ".tar" else []
    shards = sorted(root.rglob("*.tar"))
    core = [s for s in shards if "core_db" in s.relative_to(root).as_posix()]
    return core or shards


def _core_folder(root: Path) -> Path:
    core = root / "core_db"
    return core if core.is_dir() else root


def _shard_samples(shard: Path) -> Iterator[tuple[str, bytes | None, str]]:
    try:
        # A stream ("r|"): members are read in order, nothing is extracted, links are never followed.
        with tarfile.open(shard, mode="r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                inside(shard.parent, member.name, listed_in=str(shard))  # refuses absolute and ".." names
                parts = split_key(member.name.removeprefix("./"))
                if parts is None or not _is_picture(*parts):
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    yield parts[0], handle.read(), ""
    except tarfile.TarError as error:
        raise SourceError(f"ILIAS: {shard} is not a readable tar shard ({error}).") from error


def _folder_samples(folder: Path) -> Iterator[tuple[str, bytes | None, str]]:
    for path in sorted(folder.rglob("*")):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        parts = split_key(relative.as_posix())
        if parts is None or not _is_picture(*parts):
            continue
        yield parts[0], None, str(path)  # read lazily: LabelledImage.read() opens the file


def _is_picture(key: str, extension: str) -> bool:
    # The ILIAS server tree keeps bounding-box masks beside the photos (Pxxx_zz_bbox.png): not pictures to ask about.
    return f".{extension}" in IMAGE_SUFFIXES and not key.endswith("_bbox")
