"""Starting an import from the admin page: the uploaded manifest, with a zip of images or a server folder."""

import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotation.services.catalog_import_jobs import catalog_import_job_create, catalog_import_job_enqueue
from jobs.models import Job


class UploadRejected(Exception):
    """The upload can't start an import; the message is shown on the form."""


def server_images_root_check(path_text: str) -> Path:
    """The folder, if it lies inside one of the configured import roots; refuses anything else."""
    path = Path(path_text.strip()).expanduser()
    if not path.is_absolute():
        raise UploadRejected("give the server folder as an absolute path")
    resolved = path.resolve()
    allowed = [Path(root).resolve() for root in settings.CATALOG_IMPORT_ROOTS]
    if not any(resolved == root or root in resolved.parents for root in allowed):
        listed = ", ".join(str(root) for root in allowed)
        raise UploadRejected(f"imports may only read folders inside: {listed}")
    if not resolved.is_dir():
        raise UploadRejected(f"{resolved} is not a folder on the server")
    return resolved


@transaction.atomic
def catalog_upload_import_start(
    *,
    manifest: UploadedFile,
    source: str,
    images_zip: UploadedFile | None = None,
    server_images_root: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """Saves the upload where a worker can read it and queues the import job. The zip is unpacked by the job."""
    if bool(images_zip) == bool(server_images_root.strip()):
        raise UploadRejected("give either a zip of the images or a folder on the server, not both")
    images_root = server_images_root_check(server_images_root) if server_images_root.strip() else None

    folder = Path(settings.CATALOG_UPLOAD_DIR) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    manifest_path = folder / "manifest.jsonl"
    _save_upload(manifest, manifest_path)
    zip_path = None
    if images_zip:
        zip_path = folder / "images.zip"
        _save_upload(images_zip, zip_path)
        images_root = folder / "images"

    job = catalog_import_job_create(
        manifest_path=manifest_path,
        images_root=images_root,
        images_zip=zip_path,
        source=source or "default",
        created_by=created_by,
    )
    catalog_import_job_enqueue(job=job)
    return job


def _save_upload(upload: UploadedFile, path: Path) -> None:
    with path.open("wb") as sink:
        for chunk in upload.chunks():
            sink.write(chunk)
