"""Running a catalog import as a job: from the admin page (a Celery task) or the command line (in process)."""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from annotation.importing.archive import ArchiveRejected, remove_tree, zip_extract_safely
from annotation.importing.report import ImportReport
from annotation.services.catalog_import import CatalogImportError, catalog_import
from jobs.dispatch import job_send_on_commit
from jobs.models import Job
from jobs.services import job_advance, job_create, job_finish, job_running

CATALOG_IMPORT = "catalog_import"


def catalog_import_job_create(
    *,
    manifest_path: Path,
    images_root: Path,
    source: str = "default",
    images_zip: Path | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """A queued import job. With ``images_zip``, the job first unpacks it into ``images_root``."""
    parameters = {"manifest_path": str(manifest_path), "images_root": str(images_root), "source": source}
    if images_zip is not None:
        parameters["images_zip"] = str(images_zip)
    return job_create(kind=CATALOG_IMPORT, parameters=parameters, created_by=created_by)


def catalog_import_job_enqueue(*, job: Job) -> None:
    """Sends the job to a worker once the transaction that created it has committed."""
    job_send_on_commit(job)


def catalog_import_job_run(
    *, job: Job, on_progress: Callable[[int, int], None] | None = None
) -> ImportReport | None:
    """Runs the import the job describes, recording progress, and attaches the report. None if cancelled."""
    parameters = job.parameters
    report: ImportReport | None = None
    with job_running(job=job):
        if parameters.get("images_zip"):
            _unpack_images(job)

        def progress(done: int, total: int) -> None:
            job_advance(job=job, done=done, total=total, message=f"Line {done:,} of {total:,}")
            if on_progress:
                on_progress(done, total)

        report = catalog_import(
            manifest_path=Path(parameters["manifest_path"]),
            images_root=Path(parameters["images_root"]),
            source=parameters.get("source", "default"),
            on_progress=progress,
        )
        job_finish(
            job=job,
            result=report.summary(),
            result_file=(f"catalog-import-{job.pk}-report.json", report.to_json().encode("utf-8")),
            message=_summary_line(report),
        )
    return report if job.status == Job.Status.SUCCEEDED else None


def _unpack_images(job: Job) -> None:
    images_root = Path(job.parameters["images_root"])
    job_advance(job=job, done=0, message="Unpacking the images")
    remove_tree(images_root)  # a retried job starts from a clean folder
    try:
        count = zip_extract_safely(
            archive=Path(job.parameters["images_zip"]),
            destination=images_root,
            max_total_bytes=settings.CATALOG_MAX_ZIP_UNCOMPRESSED_BYTES,
            max_entries=settings.CATALOG_MAX_ZIP_ENTRIES,
        )
    except ArchiveRejected as exc:
        raise CatalogImportError(f"the images zip was refused: {exc}") from None
    job_advance(job=job, done=0, message=f"Unpacked {count:,} files")


def _summary_line(report: ImportReport) -> str:
    products, images = report.products, report.images
    return (
        f"{products['imported']} products imported, {products['updated']} updated, "
        f"{products['unchanged']} unchanged, {products['rejected']} rejected; "
        f"{images['imported']} images imported, {images['rejected']} rejected, {images['duplicates']} duplicates."
    )
