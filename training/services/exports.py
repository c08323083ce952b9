"""Building a snapshot's export in a job: the archive is written to a temporary folder by the format's writer
(streaming the pairs), checksummed, and stored in the media storage for download.

Building runs on a worker, never inside a web request: a 561K-pair export takes minutes.
"""

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotation.dataset.selectors import snapshot_pair_rows
from annotation.models import DatasetSnapshot
from jobs.dispatch import job_send_on_commit
from jobs.models import Job
from jobs.services import job_advance, job_create, job_finish, job_running
from training.models import DatasetExport

DATASET_EXPORT_JOB = "dataset_export"
# verl and the Hugging Face parquet files carry images for training, where the paper's 512 bound keeps them
# small (the parquet embeds an image per row); the plain export keeps the originals unless asked.
DEFAULT_MAX_SIDE = {
    DatasetExport.Format.VERL: 512,
    DatasetExport.Format.HUGGINGFACE: 512,
    DatasetExport.Format.PLAIN: None,
}
HASH_BLOCK_BYTES = 1 << 20


class ExportError(Exception):
    pass


def export_create(
    *,
    snapshot: DatasetSnapshot,
    format: str,
    max_side: int | None = None,
    keep_original_size: bool = False,
    image_root: str = "",
    created_by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> DatasetExport:
    """Records an export of a frozen snapshot and its job, and sends the job to a worker.

    ``max_side`` bounds the longest side of the images (the format's default when None, unless
    ``keep_original_size``); ``image_root`` is where the verl images will be unpacked on the training nodes.
    """
    export_format = DatasetExport.Format(format)
    if not snapshot.is_frozen:
        raise ExportError(f"Snapshot {snapshot} is not frozen yet: it is {snapshot.status}.")
    if keep_original_size:
        max_side = None
    elif max_side is None:
        max_side = DEFAULT_MAX_SIDE[export_format]
    if max_side is not None and max_side < 8:
        raise ExportError("max_side must be at least 8 pixels.")
    user = created_by if created_by is not None and created_by.is_authenticated else None
    parameters: dict[str, Any] = {"max_side": max_side, "image_root": image_root.rstrip("/")}
    with transaction.atomic():
        job = job_create(
            kind=DATASET_EXPORT_JOB,
            parameters={"snapshot": snapshot.pk, "format": export_format.value, **parameters},
            created_by=user,
            total=snapshot.pair_count,
        )
        export = DatasetExport.objects.create(
            snapshot=snapshot, format=export_format, parameters=parameters, job=job, created_by=user
        )
        job.parameters["export"] = export.pk
        job.save(update_fields=["parameters"])
        if enqueue:
            job_send_on_commit(job)
    return export


def export_execute(*, job: Job) -> DatasetExport:
    """The job's work: writes the archive, checksums it and stores it. Safe to run again."""
    from training.exports.writers import ExportFormat, ExportInput, export_write

    export = DatasetExport.objects.select_related("snapshot").get(pk=job.parameters["export"])
    snapshot = export.snapshot
    with job_running(job=job, total=snapshot.pair_count):
        try:
            progress = _Progress(job)
            export_input = ExportInput(
                dataset_name=f"{snapshot.name}-v{snapshot.version}",
                rows=lambda split: snapshot_pair_rows(snapshot=snapshot, split=split),
                read_image=_stored_image_bytes,
                max_side=export.parameters.get("max_side"),
                metadata=_metadata(export),
                on_progress=progress,
                image_root=export.parameters.get("image_root", ""),
            )
            with tempfile.TemporaryDirectory(prefix="twin-export-") as folder:
                archive = export_write(
                    format=ExportFormat(export.format), input=export_input, out_dir=Path(folder)
                )
                sha256 = _file_sha256(archive)
                size = archive.stat().st_size
                if export.file:
                    export.file.delete(save=False)  # a dead worker's archive
                with archive.open("rb") as stream:
                    export.file.save(f"{export.pk}/{export.file_name}", File(stream), save=False)
        except BaseException:
            DatasetExport.objects.filter(pk=export.pk).update(
                status=DatasetExport.Status.FAILED, finished_at=timezone.now()
            )
            raise
        export.status = DatasetExport.Status.READY
        export.sha256 = sha256
        export.size_bytes = size
        export.row_count = progress.rows
        export.finished_at = timezone.now()
        export.save()
        job_finish(
            job=job,
            result={"export": export.pk, "sha256": sha256, "size_bytes": size, "rows": progress.rows},
            message=f"Wrote {export.file_name}: {progress.rows:,} pairs, {size / 1e6:,.1f} MB.",
        )
    return export


class _Progress:
    """Passes the writer's running total (it reports every few hundred rows) to the job, which raises
    JobCancelled there when the job was cancelled, stopping the writer."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.rows = 0

    def __call__(self, rows_written: int) -> None:
        self.rows = rows_written
        job_advance(job=self.job, done=rows_written)


def _stored_image_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as stream:
        return stream.read()


def _metadata(export: DatasetExport) -> dict[str, Any]:
    snapshot = export.snapshot
    return {
        "snapshot": {
            "id": snapshot.pk,
            "name": snapshot.name,
            "version": snapshot.version,
            "content_hash": snapshot.content_hash,
            "parameters": snapshot.parameters,
            "frozen_at": snapshot.frozen_at.isoformat() if snapshot.frozen_at else None,
            "pairs": snapshot.pair_count,
        },
        "export": {"id": export.pk, "format": export.format, **export.parameters},
    }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def export_run_inline(*, export: DatasetExport) -> DatasetExport:
    """Builds an export in this process (the management command and the demo), whatever the broker."""
    if export.job is None or export.job.status != Job.Status.QUEUED:
        raise ExportError(f"Export {export} has no queued job to run.")
    return export_execute(job=export.job)
