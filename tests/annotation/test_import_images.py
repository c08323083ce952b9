"""Every kind of bad or unusual image file, through the import's image checks."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotation.importing.images import ImageLimits, ImageRejected, normalize_image, read_image_file
from tests.conftest import image_bytes

LIMITS = ImageLimits(max_pixels=4_000_000, max_bytes=5_000_000)


def load(images_root: Path, relative: str):
    raw = read_image_file(images_root=images_root.resolve(), manifest_path=relative, limits=LIMITS)
    return normalize_image(raw, limits=LIMITS)


def reason(images_root: Path, relative: str) -> str:
    with pytest.raises(ImageRejected) as caught:
        load(images_root, relative)
    return str(caught.value)


def decoded(content: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(content))
    picture.load()
    return picture


def test_plain_rgb_jpeg_is_kept_byte_for_byte(images_root, write_image):
    path = write_image("a/1.jpg", size=(80, 60))
    result = load(images_root, "a/1.jpg")
    assert result.content == path.read_bytes()
    assert (result.width, result.height, result.extension) == (80, 60, "jpg")
    assert result.sha256 == result.source_sha256


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("../outside.jpg", "'..' is not allowed"),
        ("a/../../outside.jpg", "'..' is not allowed"),
        ("..\\outside.jpg", "'..' is not allowed"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("C:/images/x.jpg", "absolute paths are not allowed"),
        ("missing.jpg", "file not found"),
        ("  ", "empty image path"),
    ],
)
def test_paths_that_leave_the_root_or_do_not_exist(images_root, relative, expected):
    (images_root.parent / "outside.jpg").write_bytes(image_bytes())
    assert expected in reason(images_root, relative)


def test_symlink_pointing_outside_the_root_is_rejected(images_root, tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(image_bytes())
    os.symlink(secret, images_root / "link.jpg")
    assert "symlink" in reason(images_root, "link.jpg")


def test_symlinked_folder_pointing_outside_the_root_is_rejected(images_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(image_bytes())
    os.symlink(elsewhere, images_root / "linked")
    assert "symlink" in reason(images_root, "linked/x.jpg")


def test_symlink_inside_the_root_is_followed(images_root, write_image):
    write_image("real.jpg")
    os.symlink(images_root / "real.jpg", images_root / "alias.jpg")
    assert load(images_root, "alias.jpg").width == 64


def test_empty_file_folder_and_non_image(images_root, write_image):
    write_image("empty.jpg", content=b"")
    (images_root / "folder.jpg").mkdir()
    write_image("notes.jpg", content=b"these are shopping notes, not a photo\n" * 20)
    write_image("page.pdf", content=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    assert "empty" in reason(images_root, "empty.jpg")
    assert "folder" in reason(images_root, "folder.jpg")
    assert "not an image" in reason(images_root, "notes.jpg")
    assert "not an image" in reason(images_root, "page.pdf")


def test_truncated_jpeg_and_png(images_root, write_image):
    jpeg = image_bytes(size=(200, 200))
    png = image_bytes(size=(200, 200), format="PNG")
    write_image("cut.jpg", content=jpeg[: len(jpeg) // 2])
    write_image("cut.png", content=png[: len(png) // 2])
    assert "truncated or corrupt" in reason(images_root, "cut.jpg")
    assert "truncated or corrupt" in reason(images_root, "cut.png")


def test_corrupt_bytes_in_the_middle(images_root, write_image):
    png = bytearray(image_bytes(size=(100, 100), format="PNG"))
    png[200:260] = b"\x00" * 60
    write_image("garbled.png", content=bytes(png))
    assert "corrupt" in reason(images_root, "garbled.png")


def test_decompression_bomb_is_rejected_before_decoding(images_root, write_image):
    # A 3000x3000 one-colour PNG is tiny on disk but 9 megapixels, over the 4 MP limit of these tests.
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, format="PNG", optimize=True)
    write_image("bomb.png", content=buffer.getvalue())
    assert len(buffer.getvalue()) < 50_000
    assert "megapixel limit" in reason(images_root, "bomb.png")


def test_huge_declared_size_beyond_pillow_limit_is_rejected(images_root, write_image):
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    write_image("giant.png", content=buffer.getvalue())
    message = reason(images_root, "giant.png")
    assert "decompression bomb" in message


def test_file_over_the_byte_limit(images_root, write_image):
    write_image("big.jpg", content=b"\xff\xd8" + b"\x00" * (LIMITS.max_bytes + 1))
    assert "MB limit" in reason(images_root, "big.jpg")


def test_exif_rotated_photo_is_stored_upright(images_root, write_image):
    # Landscape pixels with orientation 6 ("rotate 90° clockwise to view") are a portrait photo.
    picture = Image.new("RGB", (90, 40), (200, 30, 30))
    picture.paste((30, 30, 200), (0, 0, 10, 40))  # a blue stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif, quality=95)
    write_image("rotated.jpg", content=buffer.getvalue())

    result = load(images_root, "rotated.jpg")
    upright = decoded(result.content)
    assert (result.width, result.height) == (40, 90) == upright.size
    assert upright.getexif().get(0x0112, 1) == 1
    top_row = np.asarray(upright)[2, :, :]
    assert top_row[:, 2].mean() > 150  # the left-edge stripe is now along the top
    assert result.sha256 != result.source_sha256


@pytest.mark.parametrize(
    "mode, format, extension",
    [
        ("CMYK", "JPEG", "jpg"),
        ("P", "PNG", "png"),
        ("RGBA", "PNG", "png"),
        ("LA", "PNG", "png"),
        ("L", "JPEG", "jpg"),
        ("I;16", "PNG", "png"),
        ("1", "BMP", "png"),
        ("RGB", "TIFF", "png"),
        ("RGB", "GIF", "png"),
    ],
)
def test_unusual_modes_are_normalized_to_8_bit_rgb(images_root, write_image, mode, format, extension):
    write_image(f"odd.{format.lower()}", mode=mode, format=format, size=(50, 30))
    result = load(images_root, f"odd.{format.lower()}")
    picture = decoded(result.content)
    assert picture.mode == "RGB"
    assert picture.size == (50, 30) == (result.width, result.height)
    assert result.extension == extension


def test_transparent_pixels_become_white_not_black(images_root, write_image):
    picture = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (0, 0, 10, 20))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_image("alpha.png", content=buffer.getvalue())
    pixels = np.asarray(decoded(load(images_root, "alpha.png").content))
    assert tuple(pixels[5, 15]) == (255, 255, 255)
    assert tuple(pixels[5, 5]) == (255, 0, 0)


def test_sixteen_bit_grey_keeps_its_range(images_root, write_image):
    values = np.full((10, 10), 65535, dtype=np.uint16)
    values[:, :5] = 32768
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    write_image("deep.png", content=buffer.getvalue())
    pixels = np.asarray(decoded(load(images_root, "deep.png").content))
    assert pixels[0, 9, 0] == 255
    assert 120 <= pixels[0, 0, 0] <= 135


def test_same_content_gives_the_same_hash_whatever_the_file_name(images_root, write_image):
    content = image_bytes(seed=3)
    write_image("x/1.jpg", content=content)
    write_image("y/copy.jpg", content=content)
    assert load(images_root, "x/1.jpg").sha256 == load(images_root, "y/copy.jpg").sha256
