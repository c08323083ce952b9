"""Writes to jobs: the small API every long-running stage uses to report what it is doing.

State changes are conditional updates (``UPDATE ... WHERE status = ...``) so a cancel from the admin page and a
progress report from a worker can't overwrite each other, whichever lands first.
"""

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs.models import Job, JobLogEntry


class JobCancelled(Exception):
    """Raised inside a running job when someone cancelled it; the job stops at its next progress report."""


class JobStateError(Exception):
    """The job is not in a state that allows the requested change."""


def job_create(
    *,
    kind: str,
    parameters: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
    total: int | None = None,
    parent: Job | None = None,
) -> Job:
    return Job.objects.create(
        kind=kind,
        parameters=parameters or {},
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        progress_total=total,
        parent=parent,
    )


def job_start(*, job: Job, total: int | None = None, message: str = "") -> Job:
    """Marks a queued job running. A job cancelled while it waited in the queue raises JobCancelled."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": Job.Status.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "message": message,
    }
    if total is not None:
        fields["progress_total"] = total
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(**fields)
    job.refresh_from_db()
    if not updated:
        if job.status == Job.Status.CANCELLED:
            raise JobCancelled(f"Job {job.pk} was cancelled before it started.")
        raise JobStateError(f"Job {job.pk} can't start: it is {job.status}.")
    return job


def job_claim_for_worker(
    *, job_id: int, task_id: str = "", stale_after: timedelta | None = None
) -> Job | None:
    """The job a task message names, if that message should run it; None otherwise.

    Queued jobs run. A job left running by a worker that died (no heartbeat for ``stale_after``) is put back in
    the queue and runs again, which is why every stage's work must be safe to repeat. Finished jobs, and jobs a
    live worker is still running (a duplicate delivery), don't run.
    """
    stale_after = stale_after or timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    Job.objects.filter(
        pk=job_id, status=Job.Status.RUNNING, heartbeat_at__lt=timezone.now() - stale_after
    ).update(status=Job.Status.QUEUED, message="Restarted: its worker stopped sending progress.")
    if task_id:
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(celery_task_id=task_id)
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != Job.Status.QUEUED:
        return None
    return job


def job_advance(*, job: Job, done: int, total: int | None = None, message: str | None = None) -> Job:
    """Records progress (absolute count of units done). Raises JobCancelled if the job was cancelled."""
    fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
    if total is not None:
        fields["progress_total"] = total
    if message is not None:
        fields["message"] = message[:500]
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(**fields)
    if not updated:
        job.refresh_from_db(fields=["status"])
        if job.status == Job.Status.CANCELLED:
            raise JobCancelled(f"Job {job.pk} was cancelled.")
        raise JobStateError(f"Job {job.pk} is {job.status}, not running.")
    for name, value in fields.items():
        setattr(job, name, value)
    return job


def job_finish(
    *,
    job: Job,
    result: dict[str, Any] | None = None,
    result_file: tuple[str, bytes] | None = None,
    message: str = "Done.",
) -> Job:
    """Marks a running job succeeded with its summary and, optionally, a file (name, content) to download."""
    saved_name = ""
    if result_file is not None:
        name, content = result_file
        job.result_file.save(name, ContentFile(content), save=False)
        saved_name = job.result_file.name
    fields: dict[str, Any] = {
        "status": Job.Status.SUCCEEDED,
        "finished_at": timezone.now(),
        "result": result or {},
        "result_file": job.result_file.name or "",
        "message": message,
    }
    if job.progress_total is not None:
        fields["progress_done"] = job.progress_total
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(**fields)
    if not updated and saved_name:
        job.result_file.storage.delete(saved_name)  # the job ended some other way: the file belongs to no one
    job.refresh_from_db()
    if not updated and job.status == Job.Status.CANCELLED:
        raise JobCancelled(f"Job {job.pk} was cancelled before it finished.")
    if not updated:
        raise JobStateError(f"Job {job.pk} can't finish: it is {job.status}.")
    return job


def job_fail(*, job: Job, error: str) -> Job:
    """Marks a queued or running job failed with a message a person can act on."""
    Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
        status=Job.Status.FAILED, finished_at=timezone.now(), error=error, message="Failed."
    )
    job.refresh_from_db()
    return job


def job_cancel(*, job: Job) -> Job:
    """Cancels a queued or running job and its unfinished stages; a running one stops at its next progress
    report."""
    active = [Job.Status.QUEUED, Job.Status.RUNNING]
    updated = Job.objects.filter(pk=job.pk, status__in=active).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled."
    )
    job.refresh_from_db()
    if not updated:
        raise JobStateError(f"Job {job.pk} is already {job.status}.")
    children = Job.objects.filter(parent=job, status__in=active)
    while children.exists():  # stages of stages: one level per round
        ids = list(children.values_list("pk", flat=True))
        Job.objects.filter(pk__in=ids, status__in=active).update(
            status=Job.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled with its pipeline."
        )
        children = Job.objects.filter(parent__in=ids, status__in=active)
    return job


def job_log(*, job: Job, message: str, level: str = JobLogEntry.Level.INFO) -> JobLogEntry:
    """Adds a line to the job's log, shown on its page."""
    return JobLogEntry.objects.create(job=job, message=message, level=level)


@contextmanager
def job_running(*, job: Job, total: int | None = None) -> Iterator[Job]:
    """Starts the job, and records a failure (with its traceback) if the body raises.

    A cancelled job ends quietly. The body calls ``job_finish`` itself, with its result.
    """
    job_start(job=job, total=total)
    try:
        yield job
    except JobCancelled:
        return
    except Exception as exc:
        job_fail(job=job, error=job_error_text(exc))
        raise


def job_error_text(exc: BaseException) -> str:
    """The error a failed job shows: the exception first (what a person acts on), then the traceback."""
    return f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"


def job_task_execute(
    *, job_id: int, task_id: str, execute: Callable[[Job], object], logger: logging.Logger
) -> dict:
    """What a job's Celery task does: claims the job (nothing to do for a finished job or a duplicate message),
    runs it, and logs a failure. The job records its failure itself; running the same input again can't help,
    so the task doesn't retry."""
    job = job_claim_for_worker(job_id=job_id, task_id=task_id)
    if job is None:
        return {"job": job_id, "ran": False}
    try:
        execute(job)
    except Exception:
        logger.exception("%s job %s failed", job.kind, job_id)
    job.refresh_from_db()
    return {"job": job_id, "ran": True, "status": job.status}
