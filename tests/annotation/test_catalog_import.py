"""The import service and command: good rows import, bad ones are reported, nothing is half-written."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from annotation.models import Category, Image, Instance, Product
from annotation.services.catalog_import import CatalogImportError, catalog_import
from jobs.models import Job
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def write_manifest(path: Path, records: list) -> Path:
    with path.open("wb") as handle:
        for record in records:
            handle.write(record if isinstance(record, bytes) else json.dumps(record).encode() + b"\n")
    return path


def product(product_id: str, images: list[str], category: str = "vase", **fields) -> dict:
    return {
        "product_id": product_id,
        "title": f"Product {product_id}",
        "category": category,
        "images": images,
        **fields,
    }


@pytest.fixture
def catalog(tmp_path, write_image):
    """Two good products with three images each."""
    for product_id in ("A", "B"):
        for n in range(3):
            write_image(f"{product_id}/{n}.jpg", seed=hash((product_id, n)) % 10_000)
    return write_manifest(
        tmp_path / "manifest.jsonl",
        [
            product("A", ["A/0.jpg", "A/1.jpg", "A/2.jpg"], supercategory="Home & Kitchen"),
            product("B", ["B/0.jpg", "B/1.jpg", "B/2.jpg"], category="mug"),
        ],
    )


def run(manifest: Path, images_root: Path, **options):
    return catalog_import(manifest_path=manifest, images_root=images_root, workers=2, **options)


def test_imports_products_instances_categories_and_images(catalog, images_root):
    report = run(catalog, images_root)
    assert report.products["imported"] == 2 and report.images["imported"] == 6
    assert report.categories_created == 2
    a = Product.objects.get(external_id="A")
    assert a.category.name == "vase" and a.category.supercategory == "Home & Kitchen"
    assert a.instance.products.get() == a and a.instance.category == a.category
    assert Instance.objects.count() == 2
    images = list(a.images.order_by("position"))
    assert [image.source_path for image in images] == ["A/0.jpg", "A/1.jpg", "A/2.jpg"]
    assert [image.position for image in images] == [0, 1, 2]
    first = images[0]
    assert default_storage.exists(first.file.name)
    assert first.file.name == f"images/{first.sha256[:2]}/{first.sha256}.jpg"
    assert first.file.read() == (images_root / "A/0.jpg").read_bytes()
    assert (first.width, first.height, first.origin, first.review_status) == (64, 48, "real", "pending")


def test_importing_the_same_manifest_twice_changes_nothing(catalog, images_root):
    run(catalog, images_root)
    before = list(Image.objects.values_list("id", "file", "position", "sha256"))
    products_before = list(Product.objects.values_list("id", "title", "updated_at"))
    report = run(catalog, images_root)
    assert report.products == {"unchanged": 2}
    assert report.images == {"unchanged": 6}
    assert list(Image.objects.values_list("id", "file", "position", "sha256")) == before
    assert list(Product.objects.values_list("id", "title", "updated_at")) == products_before


def test_a_changed_manifest_updates_what_changed(catalog, images_root, write_image, tmp_path):
    run(catalog, images_root)
    write_image("A/3.jpg", seed=999)
    changed = write_manifest(
        tmp_path / "changed.jsonl",
        [
            product("A", ["A/3.jpg", "A/0.jpg", "A/1.jpg"], title="Renamed vase"),  # one added, one dropped
            product("B", ["B/0.jpg", "B/1.jpg", "B/2.jpg"], category="cup"),
        ],
    )
    report = run(changed, images_root)
    assert report.products == {"updated": 2}
    assert report.images["imported"] == 1 and report.images["withdrawn"] == 1
    a = Product.objects.get(external_id="A")
    assert a.title == "Renamed vase"
    listed = a.images.filter(is_listed=True).order_by("position")
    assert [image.source_path for image in listed] == ["A/3.jpg", "A/0.jpg", "A/1.jpg"]
    assert a.images.get(source_path="A/2.jpg").is_listed is False
    b = Product.objects.get(external_id="B")
    assert b.category.name == "cup" and b.instance.category.name == "cup"


def test_exact_duplicates_are_stored_once_and_reported(tmp_path, images_root, write_image):
    same = image_bytes(seed=42)
    write_image("A/0.jpg", content=same)
    write_image("A/1.jpg", content=same)  # twice in one listing
    write_image("B/0.jpg", content=same)  # and in another product
    write_image("B/1.jpg", seed=43)
    write_image("C/0.jpg", content=same)  # a product whose only image is a duplicate
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [
            product("A", ["A/0.jpg", "A/1.jpg"]),
            product("B", ["B/0.jpg", "B/1.jpg"]),
            product("C", ["C/0.jpg"]),
        ],
    )
    report = run(manifest, images_root)
    assert Image.objects.filter(sha256=Image.objects.get(source_path="A/0.jpg").sha256).count() == 1
    assert report.images["imported"] == 2 and report.images["duplicates"] == 3
    original = Image.objects.get(source_path="A/0.jpg")
    assert {
        (d.product_id, d.image, d.duplicate_of_image_id, d.duplicate_of_product_id) for d in report.duplicates
    } == {
        ("A", "A/1.jpg", original.pk, "A"),
        ("B", "B/0.jpg", original.pk, "A"),
        ("C", "C/0.jpg", original.pk, "A"),
    }
    assert not Product.objects.filter(external_id="C").exists()
    (rejection,) = report.rejections
    assert rejection.product_id == "C" and "exact duplicate" in rejection.reason


def test_every_bad_input_is_reported_and_the_good_rows_still_import(tmp_path, images_root, write_image):
    write_image("good/0.jpg", seed=1)
    write_image("good/1.jpg", seed=2)
    write_image("mixed/ok.jpg", seed=3)
    write_image("mixed/cut.jpg", content=image_bytes(seed=4, size=(300, 300))[:900])
    write_image("bad/text.jpg", content=b"hello, not an image")
    (tmp_path / "outside.jpg").write_bytes(image_bytes(seed=5))
    write_image("later/0.jpg", seed=6)
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [
            product("GOOD", ["good/0.jpg", "good/1.jpg"]),
            b"{not json}\n",
            b'{"product_id": "U", "title": "\xff\xfe", "category": "vase", "images": ["good/0.jpg"]}\n',
            product("NOTITLE", ["good/0.jpg"], title=""),
            product(
                "MIXED", ["mixed/ok.jpg", "mixed/cut.jpg", "../outside.jpg", "/etc/hosts", "missing.jpg"]
            ),
            product("ALLBAD", ["bad/text.jpg"]),
            product("GOOD", ["good/0.jpg"]),
            product("LATER", ["later/0.jpg"]),
        ],
    )
    report = run(manifest, images_root)

    assert set(Product.objects.values_list("external_id", flat=True)) == {"GOOD", "MIXED", "LATER"}
    assert report.products == {"imported": 3, "rejected": 5}
    assert list(Product.objects.get(external_id="MIXED").images.values_list("source_path", flat=True)) == [
        "mixed/ok.jpg"
    ]
    by_line = {(problem.line, problem.image): problem for problem in report.rejections}
    assert "not valid JSON" in by_line[(2, None)].reason
    assert "UTF-8" in by_line[(3, None)].reason
    assert "'title' is empty" in by_line[(4, None)].reason and by_line[(4, None)].product_id == "NOTITLE"
    assert "truncated" in by_line[(5, "mixed/cut.jpg")].reason
    assert "'..'" in by_line[(5, "../outside.jpg")].reason
    assert "absolute" in by_line[(5, "/etc/hosts")].reason
    assert "not found" in by_line[(5, "missing.jpg")].reason
    assert "not an image" in by_line[(6, "bad/text.jpg")].reason
    assert "none of the product's 1 image(s)" in by_line[(6, None)].reason
    assert "already appeared on line 1" in by_line[(7, None)].reason
    assert report.images["rejected"] == 5
    assert report.lines_read == 8
    # The report is plain JSON with one entry per rejection.
    data = json.loads(report.to_json())
    assert len(data["rejections"]) == len(report.rejections)
    assert {"line", "product_id", "image", "reason"} <= set(data["rejections"][0])


def test_a_failure_inside_a_row_leaves_nothing_of_that_row(catalog, images_root, monkeypatch):
    real_create = Image.objects.create
    calls = {"n": 0}

    def failing_create(**fields):
        calls["n"] += 1
        if fields["source_path"] == "B/2.jpg":
            raise RuntimeError("disk on fire")
        return real_create(**fields)

    monkeypatch.setattr(Image.objects, "create", failing_create)
    with pytest.raises(RuntimeError):
        run(catalog, images_root)
    assert list(Product.objects.values_list("external_id", flat=True)) == ["A"]
    assert Image.objects.count() == 3
    stored = {path.name for path in Path(default_storage.location).rglob("*.jpg")}
    assert stored == {Path(image.file.name).name for image in Image.objects.all()}


def test_progress_is_reported_and_can_stop_the_import_between_lines(tmp_path, images_root, write_image):
    records = []
    for n in range(150):
        write_image(f"p{n}/0.jpg", seed=n)
        records.append(product(f"P{n}", [f"p{n}/0.jpg"]))
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    seen = []

    class Stop(Exception):
        pass

    def on_progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 64:
            raise Stop

    with pytest.raises(Stop):
        run(manifest, images_root, on_progress=on_progress)
    assert seen == [(64, 150)]
    assert Product.objects.count() == 64


def test_missing_images_root_is_an_error(catalog, tmp_path):
    with pytest.raises(CatalogImportError, match="not a folder"):
        run(catalog, tmp_path / "nope")


def test_categories_match_case_insensitively(tmp_path, images_root, write_image):
    write_image("a.jpg", seed=1)
    write_image("b.jpg", seed=2)
    manifest = write_manifest(
        tmp_path / "m.jsonl", [product("A", ["a.jpg"], "Vase"), product("B", ["b.jpg"], "vase")]
    )
    run(manifest, images_root)
    assert list(Category.objects.values_list("name", flat=True)) == ["Vase"]


def test_same_ids_from_two_sources_are_two_products(catalog, images_root, write_image, tmp_path):
    run(catalog, images_root, source="shop-a")
    write_image("other/0.jpg", seed=77)
    other = write_manifest(tmp_path / "other.jsonl", [product("A", ["other/0.jpg"])])
    run(other, images_root, source="shop-b")
    assert Product.objects.filter(external_id="A").count() == 2


class TestCommand:
    def test_exits_zero_with_rejections_and_writes_the_report(self, catalog, images_root, tmp_path):
        with catalog.open("ab") as handle:
            handle.write(b"{broken\n")
        out, err = StringIO(), StringIO()
        report_path = tmp_path / "report.json"
        call_command(
            "import_catalog",
            str(catalog),
            images_root=str(images_root),
            report=str(report_path),
            stdout=out,
            stderr=err,
        )
        report = json.loads(report_path.read_text())
        assert report["products"]["imported"] == 2 and report["products"]["rejected"] == 1
        assert report["rejections"][0]["line"] == 3
        assert "Importing" in err.getvalue()  # the progress bar
        assert "line 3" in out.getvalue()
        job = Job.objects.get()
        assert job.kind == "catalog_import" and job.status == Job.Status.SUCCEEDED
        assert job.result["products"]["imported"] == 2
        assert json.loads(job.result_file.read())["rejections"][0]["line"] == 3

    def test_unreadable_manifest_exits_non_zero(self, images_root, tmp_path):
        with pytest.raises(CommandError, match="not a readable file"):
            call_command("import_catalog", str(tmp_path / "missing.jsonl"), images_root=str(images_root))

    def test_missing_images_root_exits_non_zero_and_fails_the_job(self, catalog, tmp_path):
        with pytest.raises(CommandError, match="not a folder"):
            call_command("import_catalog", str(catalog), images_root=str(tmp_path / "nope"), no_progress=True)
        assert Job.objects.get().status == Job.Status.FAILED

    def test_runs_as_a_subprocess_with_exit_codes(self, catalog, images_root, tmp_path):
        import subprocess
        import sys

        manage = Path(__file__).resolve().parents[2] / "manage.py"
        unreadable = subprocess.run(
            [sys.executable, str(manage), "import_catalog", str(tmp_path / "x.jsonl"), "--images-root", "."],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "TWIN_DATA_DIR": str(tmp_path / "data")},
        )
        assert unreadable.returncode != 0
        assert "not a readable file" in unreadable.stderr


def test_a_rejected_row_that_created_a_category_does_not_break_the_next_rows(
    tmp_path, images_root, write_image
):
    write_image("bad.jpg", content=b"not an image")
    write_image("good.jpg", seed=5)
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [
            product("BAD", ["bad.jpg"], "teapot", supercategory="Kitchen"),
            product("GOOD", ["good.jpg"], "teapot", supercategory="Home & Kitchen"),
        ],
    )
    report = run(manifest, images_root)
    assert report.products == {"rejected": 1, "imported": 1}
    teapot = Category.objects.get(name="teapot")
    assert teapot.supercategory == "Home & Kitchen"
    assert Product.objects.get(external_id="GOOD").category == teapot


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_catalog_at_once_store_everything_once(tmp_path, images_root, write_image):
    import threading

    from django.db import connection

    records = []
    for n in range(40):
        write_image(f"p{n}/0.jpg", seed=1000 + n)
        write_image(f"p{n}/1.jpg", seed=2000 + n)
        records.append(product(f"P{n}", [f"p{n}/0.jpg", f"p{n}/1.jpg"]))
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    reports, errors = [], []

    def import_in_thread() -> None:
        try:
            reports.append(run(manifest, images_root))
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=import_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert Product.objects.count() == 40 and Image.objects.count() == 80 and Instance.objects.count() == 40
    assert sum(report.products["imported"] for report in reports) == 40
    assert all(report.products["rejected"] == 0 and report.images["rejected"] == 0 for report in reports)
    stored = sorted(path.name for path in Path(default_storage.location).rglob("*.jpg"))
    assert stored == sorted(Path(name).name for name in Image.objects.values_list("file", flat=True))
