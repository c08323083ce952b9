"""Unpacking an uploaded zip of images without trusting it: no entry may land outside the destination,
links are skipped, and the sizes are checked before anything is written (zip bombs)."""

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath


class ArchiveRejected(Exception):
    """The archive can't be unpacked safely; the message says why."""


def zip_extract_safely(*, archive: Path, destination: Path, max_total_bytes: int, max_entries: int) -> int:
    """Extracts regular files only; returns how many. Refuses the whole archive if any entry is unsafe."""
    destination = destination.resolve()
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRejected(f"not a readable zip file ({exc})") from None
    with bundle:
        members = bundle.infolist()
        if len(members) > max_entries:
            raise ArchiveRejected(f"the zip has {len(members):,} entries, over the limit of {max_entries:,}")
        total = sum(member.file_size for member in members)
        if total > max_total_bytes:
            raise ArchiveRejected(
                f"the zip would unpack to {total / 1e9:.1f} GB, over the limit of {max_total_bytes / 1e9:.1f} GB"
            )
        planned: dict[tuple[str, ...], zipfile.ZipInfo] = {}
        for member in members:
            if member.is_dir() or _is_link(member):
                continue
            name = member.filename.replace("\\", "/")
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
                raise ArchiveRejected(
                    f"the zip entry {member.filename!r} would be written outside its folder"
                )
            if not pure.parts:
                raise ArchiveRejected(f"the zip entry {member.filename!r} names no file")
            planned[pure.parts] = member  # a repeated name: the last copy wins, as unzip would leave it
        folders = {parts[:depth] for parts in planned for depth in range(1, len(parts))}
        for parts in planned.keys() & folders:
            raise ArchiveRejected(f"the zip holds {'/'.join(parts)!r} both as a file and as a folder")

        destination.mkdir(parents=True, exist_ok=True)
        written = 0
        for parts, member in planned.items():
            target = destination.joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Counts the bytes really written: a lying header can't make us write more than the limit.
                with bundle.open(member) as source, target.open("wb") as sink:
                    written += _copy_limited(source, sink, max_total_bytes - written)
            except OSError as exc:
                raise ArchiveRejected(
                    f"the zip entry {member.filename!r} can't be written ({exc.strerror or exc})"
                ) from None
        return len(planned)


def _is_link(member: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


def _copy_limited(source, sink, budget: int) -> int:
    copied = 0
    while chunk := source.read(1 << 20):
        copied += len(chunk)
        if copied > budget:
            raise ArchiveRejected("the zip unpacks to more bytes than its headers say; refusing it")
        sink.write(chunk)
    return copied


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
