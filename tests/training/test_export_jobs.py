"""Exports of a frozen snapshot built by a job: stored, checksummed, downloadable by those who read the dataset,
listed over the API; refused for snapshots that aren't frozen."""

import hashlib
import io
import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import Image
from jobs.models import Job
from tests.conftest import image_bytes
from training.models import DatasetExport
from training.services.exports import ExportError, export_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def snapshot(reviewed_catalog):
    """The reviewed catalog with real pictures in place of the factories' undecodable bytes."""
    for image in Image.objects.all():
        default_storage.delete(image.file.name)
        default_storage.save(image.file.name, ContentFile(image_bytes(size=(640, 480), seed=image.pk)))
    created = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0.4, seed=3))
    created.refresh_from_db()
    return created


def archive_of(export: DatasetExport) -> zipfile.ZipFile:
    with export.file.open("rb") as stream:
        return zipfile.ZipFile(io.BytesIO(stream.read()))


@pytest.mark.parametrize("export_format", ["verl", "huggingface", "plain"])
def test_an_export_job_stores_a_checksummed_archive(snapshot, researcher, export_format):
    export = export_create(snapshot=snapshot, format=export_format, created_by=researcher)
    export.refresh_from_db()
    assert export.status == DatasetExport.Status.READY, export.job.error
    assert export.job.status == Job.Status.SUCCEEDED and export.job.kind == "dataset_export"
    with export.file.open("rb") as stream:
        content = stream.read()
    assert hashlib.sha256(content).hexdigest() == export.sha256 and len(content) == export.size_bytes
    assert export.row_count == snapshot.pair_count
    assert export.file.name.endswith(f"twin-v1-{export_format}.zip")
    archive = archive_of(export)
    info = json.loads(archive.read("dataset_info.json"))
    assert info["metadata"]["snapshot"]["content_hash"] == snapshot.content_hash
    assert "SHA256SUMS" in archive.namelist()


def test_verl_images_fit_the_default_bound_and_plain_keeps_originals(snapshot):
    from PIL import Image as PILImage

    verl = export_create(snapshot=snapshot, format="verl")
    plain = export_create(snapshot=snapshot, format="plain")
    verl.refresh_from_db()
    plain.refresh_from_db()
    assert verl.parameters["max_side"] == 512 and plain.parameters["max_side"] is None
    for export, longest in ((verl, 512), (plain, 640)):
        archive = archive_of(export)
        images = [name for name in archive.namelist() if name.startswith("images/")]
        assert images
        for name in images:
            assert max(PILImage.open(io.BytesIO(archive.read(name))).size) == longest


def test_exports_are_refused_for_a_snapshot_that_is_not_frozen(reviewed_catalog):
    building = snapshot_create(name="twin", parameters=SnapshotParameters(), enqueue=False)
    with pytest.raises(ExportError):
        export_create(snapshot=building, format="plain")
    with pytest.raises(ValueError):
        export_create(snapshot=building, format="csv")


def test_downloads_carry_the_checksum_and_only_dataset_readers_get_them(
    snapshot, client, annotator, api_user
):
    export = export_create(snapshot=snapshot, format="plain")
    export.refresh_from_db()
    client.force_login(api_user)
    response = client.get(reverse("exports:download", args=[export.pk]))
    assert response.status_code == 200 and response["X-Checksum-SHA256"] == export.sha256
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == export.sha256
    assert "twin-v1-plain.zip" in response["Content-Disposition"]

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=api_user).key}")
    listed = api.get(f"/api/v1/snapshots/{snapshot.pk}/exports/").json()
    assert [(e["format"], e["sha256"]) for e in listed] == [("plain", export.sha256)]
    downloaded = api.get(listed[0]["download_url"])
    assert hashlib.sha256(b"".join(downloaded.streaming_content)).hexdigest() == export.sha256

    client.force_login(annotator)
    assert client.get(reverse("exports:download", args=[export.pk])).status_code == 403
    assert client.get(f"/media/{export.file.name}").status_code == 403  # not through the media files either


def test_a_researcher_builds_an_export_from_the_snapshot_page(snapshot, client, researcher):
    client.force_login(researcher)
    panel = client.post(
        reverse("exports:create", args=[snapshot.pk]), {"format": "huggingface", "max_side": "256"}
    )
    assert panel.status_code == 200
    export = DatasetExport.objects.get()
    assert export.status == DatasetExport.Status.READY and export.parameters["max_side"] == 256
    assert export.created_by == researcher
    assert reverse("exports:download", args=[export.pk]) in panel.content.decode()
    refused = client.post(reverse("exports:create", args=[snapshot.pk]), {"format": "verl", "max_side": "2"})
    assert "max_side" in refused.context["form"].errors or refused.context["form"].non_field_errors()


def test_the_command_line_freezes_and_exports(reviewed_catalog, capsys):
    for image in Image.objects.all():
        default_storage.delete(image.file.name)
        default_storage.save(image.file.name, ContentFile(image_bytes(seed=image.pk)))
    call_command("freeze_snapshot", "twin", "--eval-fraction", "0")
    out = capsys.readouterr().out
    assert "twin v1" in out and "19 pairs" in out
    snapshot_id = int(out.split("(#")[1].split(")")[0])
    call_command("export_snapshot", str(snapshot_id), "plain", "verl", "--max-side", "32")
    out = capsys.readouterr().out
    assert out.count("sha256") == 2
    assert DatasetExport.objects.filter(status=DatasetExport.Status.READY).count() == 2
    call_command("freeze_snapshot", "twin", "--unless-frozen")
    assert "frozen already" in capsys.readouterr().out
    call_command("export_snapshot", "twin", "plain")  # by name: the latest version; built already
    assert "built already" in capsys.readouterr().out
    assert DatasetExport.objects.count() == 2


def test_deleting_a_snapshot_in_the_admin_removes_its_pairs_and_archives(snapshot, client, researcher):
    from annotation.models import DatasetSnapshot, SnapshotPair

    export = export_create(snapshot=snapshot, format="plain")
    export.refresh_from_db()
    name = export.file.name
    assert default_storage.exists(name)
    client.force_login(researcher)
    url = reverse("admin:annotation_datasetsnapshot_delete", args=[snapshot.pk])
    confirmation = client.get(url)
    assert confirmation.status_code == 200
    assert f"{snapshot.pair_count} pairs and 1 exports" in confirmation.content.decode()
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not DatasetSnapshot.objects.exists() and not SnapshotPair.objects.exists()
    assert not DatasetExport.objects.exists() and not default_storage.exists(name)
