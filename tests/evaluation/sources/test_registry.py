"""The registry: what each source is, reading one by name, and the clear sentences when a root is wrong."""

import sys
from pathlib import Path

import pytest

from evaluation.sources import SOURCES, SourceError, inside, source_labelled_images
from tests.conftest import image_bytes


def test_registry_names_every_source_with_its_domain_split_and_identity():
    assert {name: (info.display_name, info.domain) for name, info in SOURCES.items()} == {
        "cub": ("CUB", "bird"),
        "gldv2": ("Landmarks", "landmark"),
        "met": ("MET", "artwork"),
        "ilias": ("ILIAS", "object"),
        "inquire": ("Inquire", "species"),
        "image_folder": ("Image folder", "object"),
    }
    assert SOURCES["cub"].split == "test"
    assert SOURCES["inquire"].split == "validation"
    assert SOURCES["inquire"].identity == "inat24_species_name"
    assert SOURCES["ilias"].split == "core_db"
    assert all(callable(info.reader) for info in SOURCES.values())


def test_importing_the_registry_loads_no_reader_and_no_heavy_library():
    # Run in a fresh interpreter: this one has already imported everything the other tests needed.
    import subprocess

    code = (
        "import sys, evaluation.sources; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'datasets', 'evaluation.sources.cub') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_reading_by_name(tmp_path: Path):
    (tmp_path / "mug").mkdir()
    (tmp_path / "mug" / "a.jpg").write_bytes(image_bytes())
    images = source_labelled_images("image_folder", tmp_path)
    assert [(image.key, image.label) for image in images] == [("mug/a.jpg", "mug")]


def test_an_unknown_source_or_a_missing_root_is_a_clear_error(tmp_path: Path):
    with pytest.raises(
        SourceError, match="Unknown benchmark source 'imagenet'; known sources are cub, gldv2"
    ):
        source_labelled_images("imagenet", tmp_path)
    with pytest.raises(SourceError, match=r"The CUB root .*nowhere does not exist\."):
        source_labelled_images("cub", tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/etc/passwd", "a/../../b", "C:/Windows/x.jpg", "..\\x.jpg", ""]
)
def test_names_leading_outside_the_root_are_refused(tmp_path: Path, name: str):
    with pytest.raises(SourceError, match="outside the dataset root"):
        inside(tmp_path, name, listed_in="list.txt")


def test_names_inside_the_root_are_joined(tmp_path: Path):
    assert inside(tmp_path, "a/b.jpg", listed_in="list.txt") == tmp_path / "a" / "b.jpg"
    assert inside(tmp_path, "./a/b..jpg", listed_in="list.txt") == tmp_path / "a" / "b..jpg"
