"""Downscaled copies of catalog images, made once on first request and kept in media storage.

Review pages show many photos at a time; sending each original (often several megapixels) would make the
next card wait on the network. A thumbnail's name is derived from the image's content hash and width, so it
never goes stale and browsers may cache it for good.
"""

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from annotation.models import Image

THUMBNAIL_WIDTHS = (320, 640, 1280)
JPEG_QUALITY = 85


def thumbnail_width_fit(width: int) -> int:
    """The smallest offered width that is at least ``width`` (or the largest one)."""
    return next((w for w in THUMBNAIL_WIDTHS if w >= width), THUMBNAIL_WIDTHS[-1])


def thumbnail_name(image: Image, width: int) -> str:
    return f"thumbs/{width}/{image.sha256[:2]}/{image.sha256}.jpg"


def thumbnail_get_or_create(*, image: Image, width: int) -> str | None:
    """The storage name of ``image`` scaled to ``width`` pixels wide, or None when the original is already
    that small (then the original is the right file to send)."""
    width = thumbnail_width_fit(width)
    if image.width <= width:
        return None
    name = thumbnail_name(image, width)
    if default_storage.exists(name):
        return name
    with image.file.open("rb") as handle:
        picture = PILImage.open(handle)
        picture.draft(
            "RGB", (width, width * 4)
        )  # JPEG decodes at a reduced scale: much faster for big photos
        picture = picture.convert("RGB")
        height = max(1, round(picture.height * width / picture.width))
        picture = picture.resize((width, height), PILImage.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    if default_storage.exists(name):  # another request made it meanwhile
        return name
    return default_storage.save(name, ContentFile(buffer.getvalue()))
