"""Checking and normalizing one image file named by a manifest, without touching the database.

Reading and normalizing are separate steps so an import can skip decoding files it already holds (same
source bytes). Both are safe to call from worker threads. Every refusal is an ``ImageRejected`` whose message
is meant for the person who wrote the manifest.
"""

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

Image.init()  # registers every format plugin, so naming formats below can't fail on one not loaded yet
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers multi-picture (MPO) files
# Stored as they arrived when already 8-bit RGB, upright and in one of these formats; re-encoded otherwise.
KEPT_AS_IS_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
JPEG_QUALITY = 95
TRANSPARENT_BACKGROUND = (255, 255, 255)


class ImageRejected(Exception):
    """The file can't become a catalog image; the message says why in plain words."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    max_bytes: int


@dataclass(frozen=True)
class RawImage:
    manifest_path: str
    content: bytes
    source_sha256: str


@dataclass(frozen=True)
class NormalizedImage:
    content: bytes
    sha256: str
    source_sha256: str
    extension: str
    width: int
    height: int


def resolve_image_path(images_root: Path, manifest_path: str) -> Path:
    """The file a manifest path names, refusing anything that leaves the images root.

    ``images_root`` must already be resolved. Backslashes count as separators so Windows-written manifests work
    and ``..\\`` can't slip past the check.
    """
    cleaned = manifest_path.strip().replace("\\", "/")
    if not cleaned:
        raise ImageRejected("empty image path")
    if "\x00" in cleaned:
        raise ImageRejected("image path contains a NUL character")
    pure = PurePosixPath(cleaned)
    if pure.is_absolute() or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise ImageRejected("absolute paths are not allowed; give the path relative to the images root")
    if ".." in pure.parts:
        raise ImageRejected("path leaves the images root ('..' is not allowed)")
    candidate = images_root.joinpath(*pure.parts)
    real = Path(os.path.realpath(candidate))
    if real != images_root and images_root not in real.parents:
        raise ImageRejected("path is a symlink (or passes through one) that points outside the images root")
    return real


def read_image_file(*, images_root: Path, manifest_path: str, limits: ImageLimits) -> RawImage:
    path = resolve_image_path(images_root, manifest_path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageRejected("file not found under the images root") from None
    except OSError as exc:
        raise ImageRejected(f"file can't be read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageRejected("is a folder, not an image file")
    if size == 0:
        raise ImageRejected("file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise ImageRejected(f"file is {size / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:.0f} MB limit")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ImageRejected(f"file can't be read ({exc.strerror or exc})") from None
    return RawImage(
        manifest_path=manifest_path, content=content, source_sha256=hashlib.sha256(content).hexdigest()
    )


def normalize_image(raw: RawImage, *, limits: ImageLimits) -> NormalizedImage:
    """Decodes the whole file and returns it as an upright 8-bit RGB image, re-encoded only when needed."""
    with warnings.catch_warnings():
        # Our own pixel cap below is the bomb check; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(raw.content), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise ImageRejected(
                "not an image file (or a format we don't take: use JPEG, PNG, WebP, GIF, BMP or TIFF)"
            ) from None
        except Image.DecompressionBombError:
            raise ImageRejected(
                f"image is too large to decode safely (over {limits.max_pixels:,} pixels; a decompression bomb?)"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageRejected(f"corrupt image header ({exc})") from None

        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageRejected("image has no pixels")
        if width * height > limits.max_pixels:
            raise ImageRejected(
                f"image is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the "
                f"{limits.max_pixels / 1e6:.0f} megapixel limit (a decompression bomb?)"
            )
        source_format = image.format
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageRejected(f"truncated or corrupt image data ({exc})") from None

    rotated = _has_orientation(image)
    upright = ImageOps.exif_transpose(image) if rotated else image
    rgb, converted = _to_rgb(upright)

    extension = KEPT_AS_IS_FORMATS.get(source_format or "")
    if extension and not converted and not rotated:
        content = raw.content
    else:
        buffer = io.BytesIO()
        if source_format == "JPEG" or source_format == "MPO":
            rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
            extension = "jpg"
        else:
            rgb.save(buffer, format="PNG", optimize=False)
            extension = "png"
        content = buffer.getvalue()
    return NormalizedImage(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        source_sha256=raw.source_sha256,
        extension=extension,
        width=rgb.width,
        height=rgb.height,
    )


def _has_orientation(image: Image.Image) -> bool:
    try:
        return image.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # a broken EXIF block is not worth rejecting a good image for
        return False


def _to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """The image as 8-bit RGB, and whether anything had to change (mode, bit depth, colour profile, alpha)."""
    icc = image.info.get("icc_profile")
    if image.mode == "RGB" and not (icc and _is_non_srgb(icc)):
        return image, False
    if image.mode == "CMYK":
        return _cmyk_to_rgb(image, icc), True
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_bit_depth_to_rgb(image), True
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, TRANSPARENT_BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background, True
    if image.mode == "RGB" and icc:
        return _profile_to_srgb(image, icc), True
    return image.convert("RGB"), True


def _is_non_srgb(icc: bytes) -> bool:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile) or ""
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return False
    return "srgb" not in description.lower()


def _profile_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        converted = None
    return converted if converted is not None else image.convert("RGB")


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        return _profile_to_srgb(image, icc)
    return image.convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scales 16-bit (or 32-bit) grey to 8 bits by its nominal range, not by a naive clip to 255."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    if image.mode == "F":
        top = max(1.0, float(values.max(initial=1.0)))
    scaled = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L").convert("RGB")
