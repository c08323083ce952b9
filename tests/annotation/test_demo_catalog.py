"""The procedural demo catalog: determinism, manifest/ground-truth consistency, proportions, near-twins."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from annotation.demo_catalog.generator import (
    CATEGORIES,
    DemoCatalog,
    catalog_plan,
    demo_catalog_make,
    instance_draw,
    view_render,
    view_sample,
)

INSTANCES = 60
SIZE = 128


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> DemoCatalog:
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("demo"), instances=INSTANCES, seed=11, image_size=SIZE
    )


@pytest.fixture(scope="module")
def manifest(catalog) -> list[dict]:
    return [json.loads(line) for line in catalog.manifest_path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def truth(catalog) -> dict:
    return json.loads(catalog.ground_truth_path.read_text(encoding="utf-8"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def test_same_seed_gives_identical_bytes_and_another_seed_another_catalog(tmp_path):
    first = demo_catalog_make(output_dir=tmp_path / "a", instances=12, seed=3, image_size=96)
    second = demo_catalog_make(output_dir=tmp_path / "b", instances=12, seed=3, image_size=96)
    other = demo_catalog_make(output_dir=tmp_path / "c", instances=12, seed=4, image_size=96)

    files = _all_files(tmp_path / "a")
    assert {"manifest.jsonl", "ground_truth.json"} <= files.keys() and len(files) > 12 * 3
    assert files == _all_files(tmp_path / "b")
    assert first.manifest_path.read_bytes() == second.manifest_path.read_bytes()

    assert other.manifest_path.read_bytes() != first.manifest_path.read_bytes()
    assert other.ground_truth_path.read_bytes() != first.ground_truth_path.read_bytes()
    first_image = first.images_root / "DEMO-000001" / "0.jpg"
    assert (other.images_root / "DEMO-000001" / "0.jpg").read_bytes() != first_image.read_bytes()


def test_paths_are_the_documented_ones(catalog):
    root = catalog.manifest_path.parent
    assert catalog.manifest_path == root / "manifest.jsonl"
    assert catalog.images_root == root / "images"
    assert catalog.ground_truth_path == root / "ground_truth.json"


def test_manifest_lines_have_the_exact_shape_and_every_image_opens(catalog, manifest):
    ids = [record["product_id"] for record in manifest]
    assert len(ids) == len(set(ids))
    for record in manifest:
        assert list(record) == ["product_id", "title", "category", "supercategory", "images"]
        assert record["product_id"].startswith("DEMO-") and record["title"].strip()
        assert record["category"] in CATEGORIES
        assert record["supercategory"] == CATEGORIES[record["category"]].supercategory
        assert 3 <= len(record["images"]) <= 7
        for name in record["images"]:
            assert name.startswith(record["product_id"] + "/") and name.endswith(".jpg")
            with Image.open(catalog.images_root / name) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE, SIZE))
    assert len({record["category"] for record in manifest}) >= 8  # 60 objects spread over the categories


def test_categories_are_many_with_amazon_like_supercategories():
    assert 12 <= len(CATEGORIES) <= 16
    supercategories = {category.supercategory for category in CATEGORIES.values()}
    assert {"Home & Kitchen", "Electronics", "Clothing, Shoes & Jewelry", "Toys & Games"} <= supercategories


def test_ground_truth_agrees_with_the_manifest(catalog, manifest, truth):
    assert list(truth) == [
        "seed",
        "instances",
        "image_size",
        "products",
        "duplicate_listings",
        "twin_pairs",
        "bad_images",
    ]
    assert (truth["seed"], truth["instances"], truth["image_size"]) == (11, INSTANCES, SIZE)
    by_id = {record["product_id"]: record for record in manifest}
    products = truth["products"]
    assert products.keys() == by_id.keys()
    for product_id, entry in products.items():
        assert entry["category"] == by_id[product_id]["category"]
    instances = {entry["instance"] for entry in products.values()}
    assert instances == {f"I{i:04d}" for i in range(1, INSTANCES + 1)}

    for original, duplicate in truth["duplicate_listings"]:
        assert original != duplicate
        assert products[original]["instance"] == products[duplicate]["instance"]
        assert set(by_id[original]["images"]).isdisjoint(by_id[duplicate]["images"])
    # Apart from the duplicate listings, every instance is listed exactly once.
    assert len(products) == INSTANCES + len(truth["duplicate_listings"])

    category_of = {entry["instance"]: entry["category"] for entry in products.values()}
    in_pairs = [key for pair in truth["twin_pairs"] for key in (pair["instance_a"], pair["instance_b"])]
    assert len(in_pairs) == len(set(in_pairs))
    for pair in truth["twin_pairs"]:
        assert pair["instance_a"] != pair["instance_b"]
        assert category_of[pair["instance_a"]] == category_of[pair["instance_b"]]
        assert pair["difference"].split()[-1] in ("removed", "recoloured", "reshaped", "changed")

    for bad in truth["bad_images"]:
        assert bad["reason"] in ("blank", "off_category")
        assert bad["image"] in by_id[bad["product_id"]]["images"]
        pixels = np.asarray(Image.open(catalog.images_root / bad["image"]), dtype=np.float32)
        if bad["reason"] == "blank":
            assert pixels.std() < 6
        else:
            assert pixels.std() > 10


def test_proportions_are_roughly_as_specified(manifest, truth):
    assert 0.15 * INSTANCES <= len(truth["twin_pairs"]) <= 0.25 * INSTANCES
    assert 0.05 * INSTANCES <= len(truth["duplicate_listings"]) <= 0.15 * INSTANCES
    assert 1 <= len(truth["bad_images"]) <= 0.1 * len(manifest)
    bad_per_product = {bad["product_id"] for bad in truth["bad_images"]}
    assert len(bad_per_product) == len(truth["bad_images"])  # at most one bad image per product
    views = [len(r["images"]) - (r["product_id"] in bad_per_product) for r in manifest]
    assert min(views) == 3 and max(views) == 6


def test_duplicate_listings_are_fresh_photos_of_the_same_object(catalog, manifest, truth):
    by_id = {record["product_id"]: record for record in manifest}
    original, duplicate = truth["duplicate_listings"][0]
    original_bytes = {(catalog.images_root / n).read_bytes() for n in by_id[original]["images"]}
    assert all(
        (catalog.images_root / n).read_bytes() not in original_bytes for n in by_id[duplicate]["images"]
    )


def test_twins_differ_from_their_original_in_one_small_region():
    plan = catalog_plan(instances=INSTANCES, seed=11)
    assert plan.twin_pairs
    for number, (a, b, difference) in enumerate(plan.twin_pairs):
        view = view_sample(np.random.default_rng(number))
        images = [
            np.asarray(
                view_render(instance_draw(plan.specs[i], size=256, flipped=view.flip), view, size=256),
                dtype=np.int16,
            )
            for i in (a, b)
        ]
        changed = np.abs(images[0] - images[1]).max(axis=2) > 40
        fraction = changed.mean()
        assert 0 < fraction < 0.12, (plan.specs[a].category, difference, fraction)
        # Same silhouette colours elsewhere: the change stays in one part of the frame.
        rows, cols = np.nonzero(changed)
        assert (rows.max() - rows.min()) * (cols.max() - cols.min()) < 0.5 * 256 * 256, difference


def test_a_previous_demo_catalog_is_replaced_but_foreign_folders_are_not_touched(tmp_path):
    demo_catalog_make(output_dir=tmp_path / "out", instances=6, seed=1, image_size=64)
    (tmp_path / "out" / "ground_truth.json").unlink()  # as if interrupted before the end
    demo_catalog_make(output_dir=tmp_path / "out", instances=2, seed=1, image_size=64)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["DEMO-000001", "DEMO-000002"]

    (tmp_path / "mine" / "images").mkdir(parents=True)
    (tmp_path / "mine" / "images" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        demo_catalog_make(output_dir=tmp_path / "mine", instances=2, seed=1)
    assert (tmp_path / "mine" / "images" / "holiday.jpg").read_bytes() == b"precious"


def test_nonsense_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="instances"):
        demo_catalog_make(output_dir=tmp_path, instances=0, seed=1)
    with pytest.raises(ValueError, match="seed"):
        demo_catalog_make(output_dir=tmp_path, instances=3, seed=-1)


def test_the_management_command_writes_a_catalog_and_reports_counts(tmp_path):
    out = io.StringIO()
    call_command(
        "make_demo_catalog", instances=5, seed=2, output=str(tmp_path / "demo"), image_size=64, stdout=out
    )
    report = out.getvalue()
    truth = json.loads((tmp_path / "demo" / "ground_truth.json").read_text())
    assert str(tmp_path / "demo" / "manifest.jsonl") in report
    assert f"Products: {len(truth['products'])}," in report
    assert f"twin pairs: {len(truth['twin_pairs'])}," in report and "bad images: " in report
    assert (tmp_path / "demo" / "images" / "DEMO-000001" / "0.jpg").is_file()
