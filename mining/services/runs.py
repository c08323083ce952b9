"""Running mining jobs: on Celery workers (chunks shared by several workers) or inline (the command line).

Single-step stages (verification, duplicates, hard negatives) run in one task. Chunked stages (embed,
synthetic) plan their chunks, send one message per chunk (GPU work to the GPU queue) and start a watchdog; the
worker that finishes the last chunk finishes the job. Nothing relies on the broker delivering a message exactly
once or at all: claims are conditional updates, chunk work is idempotent, and the watchdog resends the chunks
of a job that stopped moving (a worker killed mid-chunk), so another worker completes it. A pipeline job runs
its stages as child jobs, one after the other; a failed stage fails the pipeline, cancelling it cancels them.
"""

import logging
import socket
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from annotation.models import Image
from annotation.review.task_creation import image_verification_tasks_create
from jobs.chunks import (
    job_chunk_advance,
    job_chunk_claim,
    job_chunk_ensure_running,
    job_chunk_finish,
    job_chunks_all_done,
    job_chunks_create,
    job_chunks_to_resend,
)
from jobs.models import Job, JobChunk
from jobs.services import (
    JobCancelled,
    JobStateError,
    job_advance,
    job_cancel,
    job_error_text,
    job_fail,
    job_finish,
    job_log,
    job_running,
)
from mining.services.duplicates import duplicate_tasks_create
from mining.services.embeddings import (
    embedded_images,
    embedder_spec_for,
    embedding_chunk_run,
    embedding_chunks_plan,
)
from mining.services.hard_negatives import hard_negative_tasks_refresh
from mining.services.scope import usable_images
from mining.services.stages import (
    PIPELINE,
    Stage,
    job_kind,
    mining_job_create,
    stage_of,
    stage_parameters_subset,
)
from mining.services.synthetic import dreambooth_config_from, synthetic_chunks_plan, synthetic_instance_run

logger = logging.getLogger(__name__)

CHUNKED_STAGES = (Stage.EMBED, Stage.SYNTHETIC)
STEP_REPORT_SECONDS = 1.0


# --- sending work ----------------------------------------------------------------------------------------


def mining_job_enqueue(*, job: Job) -> None:
    """Sends the job to a worker once the transaction that created it has committed."""
    from mining.tasks import mining_job_task

    transaction.on_commit(lambda: mining_job_task.apply_async(args=[job.pk], queue=settings.MINING_CPU_QUEUE))


def _chunk_queue(job: Job) -> str:
    """GPU work (CLIP, DreamBooth) to the GPU queue; the weightless descriptor runs on any CPU worker."""
    stage = stage_of(job)
    if stage == Stage.EMBED and embedder_spec_for(job.parameters["embedder"]).family == "descriptor":
        return settings.MINING_CPU_QUEUE
    return settings.MINING_GPU_QUEUE


def _chunks_send(job: Job, chunk_ids: list[int]) -> None:
    from mining.tasks import mining_chunk_task

    queue = _chunk_queue(job)
    for chunk_id in chunk_ids:
        mining_chunk_task.apply_async(args=[chunk_id], queue=queue)


def _watch_send(job: Job, *, countdown: float) -> None:
    from mining.tasks import mining_job_watch_task

    mining_job_watch_task.apply_async(args=[job.pk], countdown=countdown, queue=settings.MINING_CPU_QUEUE)


# --- running a job -----------------------------------------------------------------------------------------


def mining_job_execute(*, job: Job, inline: bool = False) -> None:
    """Runs a queued job: a single-step stage to its end; a chunked stage's plan (and, inline, its chunks); a
    pipeline's first stage (inline: all of them). Failures are recorded on the job and re-raised."""
    try:
        with job_running(job=job):
            _job_body(job, inline=inline)
    finally:
        job.refresh_from_db()
        if job.status == Job.Status.FAILED:
            _parent_notify(job, inline=inline)


def _job_body(job: Job, *, inline: bool) -> None:
    stage = stage_of(job)
    if stage == PIPELINE:
        _pipeline_next(job, inline=inline)
    elif stage in CHUNKED_STAGES:
        chunks = _chunks_plan(job)
        if not chunks:
            _job_complete(job, inline=inline)
        elif inline:
            for chunk in chunks:
                mining_chunk_execute(chunk_id=chunk.pk, worker="inline", inline=True)
        else:
            _chunks_send(job, [chunk.pk for chunk in chunks if chunk.status != JobChunk.Status.DONE])
            _watch_send(job, countdown=settings.MINING_WATCH_SECONDS)
    else:
        _job_complete(job, inline=inline, result=_single_step_run(job, stage))


def mining_job_run_inline(*, job: Job) -> Job:
    """Runs the job (and a pipeline's stages) in this process, as the command line does."""
    try:
        mining_job_execute(job=job, inline=True)
    except Exception:
        logger.exception("mining job %s failed", job.pk)
    job.refresh_from_db()
    return job


def _single_step_run(job: Job, stage: str) -> dict[str, Any]:
    parameters = job.parameters
    sources = parameters["sources"]
    if stage == Stage.VERIFICATION:
        job_advance(job=job, done=0, message="Creating image-verification tasks")
        created = image_verification_tasks_create(
            images=Image.objects.filter(pk__in=usable_images(sources=sources))
        )
        return {"tasks_created": len(created)}
    spec = embedder_spec_for(parameters["embedder"])
    job_advance(job=job, done=0, message=f"Reading the {spec.key} vectors")
    embedded = embedded_images(embedder_key=spec.key, images=usable_images(sources=sources))
    job_log(job=job, message=f"{len(embedded):,} embedded images in scope ({spec.key}).")
    if stage == Stage.DUPLICATES:
        job_advance(job=job, done=0, message="Searching nearest neighbours for duplicate listings")
        return duplicate_tasks_create(embedded, method=parameters["search"])
    if stage == Stage.HARD_NEGATIVES:
        job_advance(job=job, done=0, message="Shortlisting hard negatives")
        return hard_negative_tasks_refresh(
            embedded,
            seed=parameters["seed"],
            same_category_only=parameters["same_category_only"],
            method=parameters["search"],
        )
    raise ValueError(f"{stage} is not a single-step stage")


def _chunks_plan(job: Job) -> list[JobChunk]:
    parameters = job.parameters
    if stage_of(job) == Stage.EMBED:
        spec = embedder_spec_for(parameters["embedder"])
        payloads, already = embedding_chunks_plan(
            embedder_key=spec.key, sources=parameters["sources"], chunk_size=parameters["chunk_size"]
        )
        if not job.chunks.exists():
            job_log(
                job=job,
                message=f"{sum(units for _, units in payloads):,} images to embed with {spec.key} in "
                f"{len(payloads):,} chunks; {already:,} already embedded.",
            )
    else:
        payloads = synthetic_chunks_plan(
            sources=parameters["sources"],
            instances_limit=parameters["instances_limit"],
            seed=parameters["seed"],
        )
        if not job.chunks.exists():
            job_log(job=job, message=f"DreamBooth on {len(payloads):,} instances with {parameters['model']}.")
    chunks = job_chunks_create(job=job, payloads=payloads)
    total = sum(chunk.units_total for chunk in chunks)
    job_advance(
        job=job, done=sum(c.units_done for c in chunks), total=total, message=f"{len(chunks):,} chunks"
    )
    return chunks


def mining_chunk_execute(*, chunk_id: int, worker: str, inline: bool = False) -> bool:
    """Claims the chunk and does its work; True if this call ran it. The last chunk finishes the job."""
    stale_after = timedelta(seconds=settings.MINING_CHUNK_STALE_SECONDS)
    chunk = job_chunk_claim(
        chunk_id=chunk_id, worker=f"{socket.gethostname()}:{worker}", stale_after=stale_after
    )
    if chunk is None:
        return False
    job = chunk.job
    try:
        result = _chunk_work(job, chunk)
    except (JobCancelled, JobStateError):
        return True  # the job was cancelled or ended meanwhile: stop quietly
    except Exception as exc:
        job_fail(job=job, error=f"Chunk {chunk.number} failed: {job_error_text(exc)}")
        job_log(job=job, message=f"Chunk {chunk.number} failed: {exc}", level="error")
        _parent_notify(job, inline=inline)
        if inline:
            raise
        return True
    if job_chunk_finish(chunk=chunk, result=result):
        _job_complete(job, inline=inline)
    return True


def _chunk_work(job: Job, chunk: JobChunk) -> dict[str, Any]:
    parameters = job.parameters
    job_chunk_ensure_running(job=job)
    if stage_of(job) == Stage.EMBED:
        done = embedding_chunk_run(
            image_ids=chunk.payload["image_ids"],
            spec=embedder_spec_for(parameters["embedder"]),
            batch_size=parameters["batch_size"],
            workers=parameters["workers"],
            device=parameters["device"],
            precision=parameters["precision"],
            on_progress=lambda units: job_chunk_advance(
                chunk=chunk, units_done=units, message=f"Embedding: chunk {chunk.number + 1}"
            ),
        )
        return {"embedded": done.embedded, "already": done.already, "vanished": done.vanished}

    instance_id = chunk.payload["instance_id"]

    last_report = 0.0

    def on_step(step: int, steps: int) -> None:
        # A heartbeat (and the cancel check) at most once a second: a GPU step takes a fraction of that. The
        # job's progress counts whole instances.
        nonlocal last_report
        if time.monotonic() - last_report < STEP_REPORT_SECONDS and step < steps:
            return
        last_report = time.monotonic()
        job_chunk_advance(
            chunk=chunk, units_done=0, message=f"DreamBooth, instance #{instance_id}: step {step} of {steps}"
        )

    generated = synthetic_instance_run(
        instance_id=instance_id,
        model=parameters["model"],
        config=dreambooth_config_from(parameters),
        device=parameters["device"],
        on_step=on_step,
    )
    return {"stored": generated.stored, "tasks_created": generated.tasks_created}


def _job_complete(job: Job, *, inline: bool, result: dict[str, Any] | None = None) -> None:
    """Finishes the job with its result (the chunks' sum for a chunked stage); once, whoever gets here first."""
    job.refresh_from_db()
    if job.status != Job.Status.RUNNING:
        return
    stage = stage_of(job)
    if result is None:
        result = _chunks_result(job, stage)
    message = "; ".join(
        f"{key.replace('_', ' ')} {value:,}" for key, value in result.items() if isinstance(value, int)
    )
    try:
        job_finish(job=job, result=result, message=message or "Done.")
    except (JobStateError, JobCancelled):
        return  # another worker finished it, or it was cancelled
    job_log(job=job, message=f"Finished: {message}")
    _parent_notify(job, inline=inline)


def _chunks_result(job: Job, stage: str) -> dict[str, Any]:
    totals: dict[str, int] = {"chunks": job.chunks.count()}
    for result in job.chunks.values_list("result", flat=True):
        for key, value in (result or {}).items():
            totals[key] = totals.get(key, 0) + int(value)
    if stage == Stage.EMBED:
        totals["embedder"] = embedder_spec_for(job.parameters["embedder"]).key  # type: ignore[assignment]
    return totals


# --- watchdog ----------------------------------------------------------------------------------------------


def mining_job_watch(*, job_id: int) -> bool:
    """Finishes a chunked job whose chunks are all done, resends the chunks of a stalled one; True while the job
    still needs watching."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return False
    if job.status != Job.Status.RUNNING:
        return True
    if job_chunks_all_done(job=job):
        _job_complete(job, inline=False)
        return False
    stale_after = timedelta(seconds=settings.MINING_CHUNK_STALE_SECONDS)
    resend = job_chunks_to_resend(job=job, stale_after=stale_after)
    if resend:
        job_log(
            job=job,
            message=f"No progress for {stale_after}: sending {len(resend):,} unfinished chunks again.",
        )
        _chunks_send(job, resend)
    return True


def mining_runs_recover() -> int:
    """Watches every running chunked job again (a worker starting after others died); returns how many."""
    jobs = list(Job.objects.filter(status=Job.Status.RUNNING, kind__in=[job_kind(s) for s in CHUNKED_STAGES]))
    for job in jobs:
        _watch_send(job, countdown=0)
    return len(jobs)


# --- pipeline ----------------------------------------------------------------------------------------------


def _pipeline_next(pipeline: Job, *, inline: bool) -> None:
    """Starts the pipeline's next stage after the last finished one, or finishes the pipeline."""
    stages = pipeline.parameters["stages"]
    if pipeline.children.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists():
        return  # a redelivered message: the stage under way reports to the pipeline when it ends
    done = list(pipeline.children.filter(status=Job.Status.SUCCEEDED).order_by("pk"))
    if len(done) >= len(stages):
        result = {stage_of(child): child.result for child in done}
        job_finish(job=pipeline, result=result, message=f"All {len(stages)} stages done.")
        job_log(job=pipeline, message="All stages done.")
        return
    stage = stages[len(done)]
    child = mining_job_create(
        stage=stage,
        parameters=stage_parameters_subset(stage, pipeline.parameters),
        created_by=pipeline.created_by,
        parent=pipeline,
    )
    job_advance(
        job=pipeline,
        done=len(done),
        message=f"Stage {len(done) + 1} of {len(stages)}: {stage} (job #{child.pk})",
    )
    job_log(job=pipeline, message=f"Stage {stage} started as job #{child.pk}.")
    if not inline:
        mining_job_enqueue(job=child)
        return
    mining_job_execute(job=child, inline=True)  # raises (and fails the pipeline) if the stage fails
    child.refresh_from_db()
    if child.status == Job.Status.SUCCEEDED:
        _pipeline_next(pipeline, inline=True)


def _parent_notify(child: Job, *, inline: bool) -> None:
    """After a stage job ended: the pipeline goes on, or fails with it."""
    if child.parent_id is None:
        return
    pipeline = Job.objects.get(pk=child.parent_id)
    child.refresh_from_db()
    if pipeline.status != Job.Status.RUNNING:
        return
    if child.status == Job.Status.SUCCEEDED:
        if inline:
            return  # the inline pipeline loop starts the next stage itself
        try:
            _pipeline_next(pipeline, inline=False)
        except Exception as exc:
            job_fail(job=pipeline, error=job_error_text(exc))
    elif child.status == Job.Status.CANCELLED:
        job_cancel(job=pipeline)
    elif child.status == Job.Status.FAILED:
        first_line = child.error.splitlines()[0] if child.error else "failed"
        job_fail(job=pipeline, error=f"Stage {stage_of(child)} (job #{child.pk}) failed: {first_line}")
