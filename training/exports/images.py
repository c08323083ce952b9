"""Images as the exports write them: the stored file as it is when it fits, else a smaller JPEG.

Training takes images far smaller than catalog photos (the paper trains at 512 pixels on the longest side), so
the verl and Hugging Face exports shrink them and keep the archives small. An image that already fits, or an
export without a bound, keeps the stored file byte for byte: nothing is lost to a second JPEG encoding, and
the file still matches the catalog's sha256.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from training.exports.archive import ExportArchive

JPEG_QUALITY = 95
# What transparent pixels become; the import flattens images onto the same white.
TRANSPARENT_BACKGROUND = (255, 255, 255)
_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
}


@dataclass(frozen=True)
class FittedImage:
    content: bytes
    extension: str  # from the encoded format, without the dot: "jpg", "png", ...
    width: int
    height: int


def image_fit(content: bytes, *, max_side: int | None) -> FittedImage:
    """The image with its longest side at most ``max_side`` pixels (None: any size).

    A larger image is scaled down, keeping its aspect ratio (LANCZOS), flattened to RGB and encoded as a JPEG
    of quality 95; otherwise the bytes are returned unchanged (only the header is read).
    """
    with Image.open(io.BytesIO(content)) as picture:
        width, height = picture.size
        extension = _EXTENSIONS.get(picture.format or "", (picture.format or "bin").lower())
        if max_side is None or max(width, height) <= max_side:
            return FittedImage(content=content, extension=extension, width=width, height=height)
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale, no smaller than asked: much faster for big photos.
        picture.draft("RGB", size)
        smaller = _rgb(picture).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return FittedImage(content=buffer.getvalue(), extension="jpg", width=size[0], height=size[1])


def _rgb(picture: Image.Image) -> Image.Image:
    """The picture in RGB, with any transparency flattened onto the background colour."""
    has_alpha = picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        picture.mode == "P" and "transparency" in picture.info
    )
    if not has_alpha:
        return picture.convert("RGB")
    rgba = picture.convert("RGBA")
    flat = Image.new("RGB", rgba.size, TRANSPARENT_BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


class ArchivedImages:
    """Writes each image into an archive once, the first time a row shows it, under ``images/<sha256>.<ext>``.

    Only the names of the images written are kept (a few hundred bytes each), never their content.
    """

    def __init__(
        self, archive: ExportArchive, read_image: Callable[[str], bytes], max_side: int | None
    ) -> None:
        self._archive = archive
        self._read_image = read_image
        self._max_side = max_side
        self._names: dict[str, str] = {}  # sha256 -> archive name

    def name(self, sha256: str, storage_name: str) -> str:
        """The image's name in the archive; reads, fits and adds it first if it is not there yet."""
        if sha256 not in self._names:
            image = image_fit(self._read_image(storage_name), max_side=self._max_side)
            name = f"images/{sha256}.{image.extension}"
            self._archive.add_bytes(name, image.content, compress=False)
            self._names[sha256] = name
        return self._names[sha256]

    def __len__(self) -> int:
        return len(self._names)
