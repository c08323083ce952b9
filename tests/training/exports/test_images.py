"""Fitting images for export: kept byte for byte when they fit, else shrunk to an RGB JPEG."""

import io

from PIL import Image

from tests.training.exports.conftest import picture_bytes
from training.exports.images import image_fit


def test_an_image_that_fits_is_kept_byte_for_byte():
    for format, extension in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")):
        content = picture_bytes((64, 48), "RGB", format, seed=1)
        fitted = image_fit(content, max_side=64)
        assert fitted.content == content
        assert (fitted.extension, fitted.width, fitted.height) == (extension, 64, 48)


def test_without_a_bound_even_a_large_image_is_kept():
    content = picture_bytes((800, 600), "RGB", "PNG", seed=2)
    fitted = image_fit(content, max_side=None)
    assert fitted.content == content
    assert (fitted.extension, fitted.width, fitted.height) == ("png", 800, 600)


def test_a_larger_image_is_shrunk_to_a_jpeg_keeping_its_aspect_ratio():
    fitted = image_fit(picture_bytes((800, 600), "RGB", "JPEG", seed=3), max_side=512)
    assert (fitted.extension, fitted.width, fitted.height) == ("jpg", 512, 384)
    with Image.open(io.BytesIO(fitted.content)) as picture:
        assert (picture.format, picture.mode, picture.size) == ("JPEG", "RGB", (512, 384))

    tall = image_fit(picture_bytes((300, 900), "RGB", "PNG", seed=4), max_side=512)
    assert (tall.extension, tall.width, tall.height) == ("jpg", 171, 512)  # 300 * 512 / 900 = 170.7


def test_transparency_is_flattened_onto_white():
    picture = Image.new("RGBA", (200, 100), (200, 10, 10, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 100, 100))  # left half: fully transparent black
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")

    fitted = image_fit(buffer.getvalue(), max_side=50)

    with Image.open(io.BytesIO(fitted.content)) as shrunk:
        assert shrunk.size == (50, 25)
        left, right = shrunk.convert("RGB").getpixel((5, 12)), shrunk.convert("RGB").getpixel((45, 12))
    assert min(left) > 240  # white, not the black under the transparent pixels
    assert right[0] > 180 and right[1] < 40
