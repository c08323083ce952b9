"""Jobs split into chunks that several workers share.

A stage plans its chunks once (``job_chunks_create``), sends one task message per chunk, and each worker
claims a chunk with a conditional update before working on it. Nothing here trusts the broker to deliver a
message exactly once: a redelivered message finds its chunk done or held by a live worker and does nothing;
a chunk whose worker died (no heartbeat for ``stale_after``) is claimed again by the next message for it,
which the stage's watchdog sends (``job_chunks_to_resend``). So every chunk's work must be idempotent.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from jobs.models import Job, JobChunk
from jobs.services import JobCancelled, job_advance


def job_chunks_create(*, job: Job, payloads: Iterable[tuple[dict[str, Any], int]]) -> list[JobChunk]:
    """Plans the job's chunks, each a (payload, units) pair; planning twice keeps the first plan."""
    existing = list(job.chunks.order_by("number"))
    if existing:
        return existing
    chunks = [
        JobChunk(job=job, number=number, payload=payload, units_total=units)
        for number, (payload, units) in enumerate(payloads)
    ]
    try:
        with transaction.atomic():
            JobChunk.objects.bulk_create(chunks, batch_size=1000)
    except IntegrityError:  # a redelivered planning message raced this one: its plan stands
        pass
    return list(job.chunks.order_by("number"))


def job_chunk_claim(*, chunk_id: int, worker: str, stale_after: timedelta) -> JobChunk | None:
    """The chunk, now held by ``worker``; None if it is done, held by a live worker, or its job isn't running."""
    now = timezone.now()
    claimable = Q(status=JobChunk.Status.QUEUED) | Q(
        status=JobChunk.Status.RUNNING, heartbeat_at__lt=now - stale_after
    )
    updated = JobChunk.objects.filter(claimable, pk=chunk_id, job__status=Job.Status.RUNNING).update(
        status=JobChunk.Status.RUNNING, worker=worker[:255], heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not updated:
        return None
    return JobChunk.objects.select_related("job").get(pk=chunk_id)


def job_chunk_advance(*, chunk: JobChunk, units_done: int, message: str | None = None) -> None:
    """Records the chunk's progress and the job's (the sum over its chunks).

    Raises JobCancelled when the job was cancelled, so the worker stops.
    """
    JobChunk.objects.filter(pk=chunk.pk).update(units_done=units_done, heartbeat_at=timezone.now())
    chunk.units_done = units_done
    job = chunk.job
    done = job.chunks.aggregate(done=Sum("units_done"))["done"] or 0
    job_advance(job=job, done=done, message=message)


def job_chunk_finish(*, chunk: JobChunk, result: dict[str, Any] | None = None) -> bool:
    """Marks the chunk done; True when it was the job's last unfinished chunk."""
    JobChunk.objects.filter(pk=chunk.pk).update(
        status=JobChunk.Status.DONE,
        units_done=chunk.units_total,
        result=result or {},
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )
    chunk.status = JobChunk.Status.DONE
    return job_chunks_all_done(job=chunk.job)


def job_chunks_all_done(*, job: Job) -> bool:
    return job.chunks.exists() and not job.chunks.exclude(status=JobChunk.Status.DONE).exists()


def job_chunks_to_resend(*, job: Job, stale_after: timedelta) -> list[int]:
    """The chunks to send to workers again because the job stalled: no progress for ``stale_after``.

    Waiting chunks are normal while workers are busy with others, so nothing is resent while the job moves;
    once it stops moving, every unfinished chunk is sent again (duplicates are harmless: claims are
    conditional), and the chunks held by dead workers become claimable.
    """
    job.refresh_from_db(fields=["status", "heartbeat_at"])
    if job.status != Job.Status.RUNNING:
        return []
    if job.heartbeat_at and job.heartbeat_at >= timezone.now() - stale_after:
        return []
    # Touch the job, so the resent messages get a full stale period to show progress before the next resend.
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
    return list(
        job.chunks.exclude(status=JobChunk.Status.DONE).order_by("number").values_list("pk", flat=True)
    )


def job_chunk_ensure_running(*, job: Job) -> None:
    """Raises JobCancelled if the job was cancelled (or otherwise ended) while a chunk worked on it."""
    job.refresh_from_db(fields=["status"])
    if job.status != Job.Status.RUNNING:
        raise JobCancelled(f"Job {job.pk} is {job.status}.")
