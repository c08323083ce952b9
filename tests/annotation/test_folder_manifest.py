"""The manifest builder for folder-per-instance catalogs, on the real DreamBooth subset shipped in the repo."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.importing.folder_manifest import FolderLayoutError, folder_manifest_build
from annotation.models import Category, Image, Product
from annotation.services.catalog_import import catalog_import

DREAMBOOTH = Path(__file__).resolve().parents[2] / "annotation" / "demo_data" / "dreambooth_subset"


def test_the_real_subset_is_in_the_repository_with_its_credits():
    assert (DREAMBOOTH / "references_and_licenses.txt").is_file()
    assert "CC BY 4.0" in (DREAMBOOTH / "README.md").read_text()
    assert len(list(DREAMBOOTH.glob("*/*.jpg"))) == 105


def test_builds_one_product_per_subject_folder(tmp_path):
    result = folder_manifest_build(root=DREAMBOOTH, output=tmp_path / "m.jsonl", id_prefix="db-")
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert (result.products, result.images) == (20, 105)
    assert len(records) == 20
    dog = next(record for record in records if record["product_id"] == "db-dog2")
    assert dog["category"] == "dog" and dog["title"] == "Dog2"
    assert dog["images"] == sorted(dog["images"]) and all(path.startswith("dog2/") for path in dog["images"])
    assert result.folders_without_class == ()


@pytest.mark.django_db
def test_the_real_catalog_imports_completely(tmp_path):
    call_command("make_folder_manifest", str(DREAMBOOTH), output=str(tmp_path / "m.jsonl"))
    report = catalog_import(manifest_path=tmp_path / "m.jsonl", images_root=DREAMBOOTH, source="dreambooth")
    assert report.products["imported"] == 20 and report.images["imported"] == 105
    assert report.rejections == [] and report.duplicates == []
    assert Category.objects.get(name="dog").products.count() == 4
    assert Product.objects.get(external_id="backpack").images.count() == 6
    assert Image.objects.filter(width__lte=384, height__lte=384).count() == 105


def test_optional_supercategory_column_and_layout_errors(tmp_path):
    (tmp_path / "cup_1").mkdir()
    (tmp_path / "cup_1" / "a.JPG").write_bytes(b"x")
    (tmp_path / "cup_1" / "notes.txt").write_text("not an image")
    (tmp_path / "stray").mkdir()
    (tmp_path / "classes.csv").write_text("subject,class,supercategory\ncup_1,cup,Home & Kitchen\n")
    result = folder_manifest_build(root=tmp_path, output=tmp_path / "out" / "m.jsonl")
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "m.jsonl").read_text().splitlines()]
    assert record == {
        "product_id": "cup_1",
        "title": "Cup 1",
        "category": "cup",
        "images": ["cup_1/a.JPG"],
        "supercategory": "Home & Kitchen",
    }
    assert result.folders_without_class == ("stray",)

    (tmp_path / "classes.csv").write_text("name,kind\n")
    with pytest.raises(FolderLayoutError, match="subject,class"):
        folder_manifest_build(root=tmp_path, output=tmp_path / "m2.jsonl")
    (tmp_path / "classes.csv").write_text("subject,class\nghost,cup\n")
    with pytest.raises(FolderLayoutError, match="not a folder"):
        folder_manifest_build(root=tmp_path, output=tmp_path / "m3.jsonl")
