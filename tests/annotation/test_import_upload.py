"""Importing from the admin page: manifest upload with a zip or a server folder, as a job, with its report."""

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.importing.archive import ArchiveRejected, zip_extract_safely
from annotation.models import Product
from jobs.models import Job
from tests.conftest import image_bytes

MANIFEST = (
    b'{"product_id": "Z1", "title": "Zip vase", "category": "vase", "images": ["z1/0.jpg", "z1/1.jpg"]}\n'
    b'{"product_id": "Z2", "title": "Zip mug", "category": "mug", "images": ["z2/0.jpg", "z2/nope.jpg"]}\n'
)


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, content in entries.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


def images_zip() -> bytes:
    return zip_of(
        {"z1/0.jpg": image_bytes(seed=1), "z1/1.jpg": image_bytes(seed=2), "z2/0.jpg": image_bytes(seed=3)}
    )


IMPORT_URL = reverse("admin:annotation_product_import")


@pytest.mark.django_db(transaction=True)
def test_researcher_uploads_a_manifest_with_a_zip_and_gets_a_report(client, researcher):
    client.force_login(researcher)
    response = client.post(
        IMPORT_URL,
        {
            "source": "upload",
            "manifest": SimpleUploadedFile("catalog.jsonl", MANIFEST),
            "images_zip": SimpleUploadedFile("images.zip", images_zip()),
        },
    )
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    # Eager Celery in the tests: the job ran on commit.
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.created_by == researcher
    assert set(Product.objects.filter(source="upload").values_list("external_id", flat=True)) == {"Z1", "Z2"}

    page = client.get(reverse("jobs:detail", args=[job.pk]))
    assert b"Download the report" in page.content
    download = client.get(reverse("jobs:result_file", args=[job.pk]))
    report = json.loads(b"".join(download.streaming_content))
    assert report["images"]["imported"] == 3
    assert report["rejections"] == [
        {
            "line": 2,
            "product_id": "Z2",
            "reason": "file not found under the images root",
            "image": "z2/nope.jpg",
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_researcher_imports_from_a_server_folder_inside_the_allowed_roots(
    client, researcher, settings, tmp_path
):
    root = tmp_path / "incoming" / "shop"
    (root / "z1").mkdir(parents=True)
    (root / "z2").mkdir()
    for name, seed in (("z1/0.jpg", 1), ("z1/1.jpg", 2), ("z2/0.jpg", 3)):
        (root / name).write_bytes(image_bytes(seed=seed))
    settings.CATALOG_IMPORT_ROOTS = [tmp_path / "incoming"]
    client.force_login(researcher)
    client.post(
        IMPORT_URL,
        {"source": "s", "manifest": SimpleUploadedFile("m.jsonl", MANIFEST), "server_images_root": str(root)},
    )
    assert Job.objects.get().status == Job.Status.SUCCEEDED
    assert Product.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "folder, message",
    [("/etc", "imports may only read folders inside"), ("relative/path", "absolute path")],
)
def test_server_folders_outside_the_roots_are_refused(
    client, researcher, settings, tmp_path, folder, message
):
    settings.CATALOG_IMPORT_ROOTS = [tmp_path]
    client.force_login(researcher)
    response = client.post(
        IMPORT_URL,
        {"source": "s", "manifest": SimpleUploadedFile("m.jsonl", MANIFEST), "server_images_root": folder},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_zip_and_folder_together_or_neither_are_refused(client, researcher):
    client.force_login(researcher)
    response = client.post(IMPORT_URL, {"source": "s", "manifest": SimpleUploadedFile("m.jsonl", MANIFEST)})
    assert "either a zip of the images or a folder" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_zip_that_escapes_its_folder_fails_the_job_with_a_clear_error(client, researcher):
    client.force_login(researcher)
    evil = zip_of({"../../escaped.jpg": image_bytes()})
    client.post(
        IMPORT_URL,
        {
            "source": "s",
            "manifest": SimpleUploadedFile("m.jsonl", MANIFEST),
            "images_zip": SimpleUploadedFile("i.zip", evil),
        },
    )
    job = Job.objects.get()
    assert job.status == Job.Status.FAILED
    assert "outside its folder" in job.error
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_only_researchers_reach_the_import_page(client, annotator, researcher):
    assert client.get(IMPORT_URL).status_code == 302  # anonymous: to the login page
    client.force_login(annotator)
    assert client.get(IMPORT_URL).status_code == 302  # not staff: the admin's login page
    client.force_login(researcher)
    page = client.get(IMPORT_URL)
    assert page.status_code == 200 and b"Start the import" in page.content


class TestZipExtraction:
    def extract(self, tmp_path: Path, content: bytes, **limits) -> Path:
        archive = tmp_path / "a.zip"
        archive.write_bytes(content)
        destination = tmp_path / "out"
        zip_extract_safely(
            archive=archive,
            destination=destination,
            max_total_bytes=limits.get("max_total_bytes", 10_000_000),
            max_entries=limits.get("max_entries", 100),
        )
        return destination

    def test_extracts_nested_files(self, tmp_path):
        out = self.extract(tmp_path, zip_of({"a/b/c.jpg": b"x", "d.jpg": b"yy"}))
        assert (out / "a/b/c.jpg").read_bytes() == b"x" and (out / "d.jpg").read_bytes() == b"yy"

    @pytest.mark.parametrize("name", ["../x.jpg", "/abs/x.jpg", "a/../../x.jpg", "..\\x.jpg", "C:/x.jpg"])
    def test_refuses_entries_that_escape(self, tmp_path, name):
        with pytest.raises(ArchiveRejected, match="outside its folder"):
            self.extract(tmp_path, zip_of({name: b"x"}))
        assert not (tmp_path / "x.jpg").exists()

    def test_skips_symlinks(self, tmp_path):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            link = zipfile.ZipInfo("link.jpg")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(link, "/etc/passwd")
            bundle.writestr("real.jpg", b"x")
        out = self.extract(tmp_path, buffer.getvalue())
        assert sorted(path.name for path in out.iterdir()) == ["real.jpg"]

    def test_refuses_too_large_or_too_many(self, tmp_path):
        bomb = zip_of({"zeros.bin": b"\0" * 5_000_000})
        assert len(bomb) < 50_000
        with pytest.raises(ArchiveRejected, match="would unpack to"):
            self.extract(tmp_path, bomb, max_total_bytes=1_000_000)
        with pytest.raises(ArchiveRejected, match="entries"):
            self.extract(tmp_path, zip_of({f"{n}.jpg": b"x" for n in range(5)}), max_entries=4)

    def test_refuses_a_file_that_is_not_a_zip(self, tmp_path):
        with pytest.raises(ArchiveRejected, match="not a readable zip"):
            self.extract(tmp_path, b"PK but not really")
