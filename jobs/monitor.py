"""The job monitor: sends again the jobs whose worker died.

A job's task is sent with ``acks_late``, so the broker gives a message back when its worker's connection drops;
but a worker killed outright leaves its message unacknowledged until the broker's visibility timeout (an hour
with Redis), and a lost broker loses it. The monitor (``manage.py monitor_jobs``, a service of its own in
docker-compose) looks every minute for running jobs that sent no heartbeat for ``TWIN_JOB_STALE_AFTER_SECONDS``,
puts them back in the queue and sends their task again. A worker that takes the message claims the job
(``job_claim_for_worker``) and resumes it, which every stage supports: imports and exports are idempotent,
training runs resume from their checkpoint, evaluation runs ask only what they have not answered. The old
worker, if it was only slow, finds the job no longer running at its next progress report and stops.

Chunked mining jobs are not handled here: their own watchdog resends lost chunks (``mining.services.runs``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.models import Job
from jobs.services import job_log

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumableKind:
    task: str  # the Celery task's dotted path; it takes the job's id
    queue_setting: str  # the setting naming its queue


RESUMABLE_KINDS = {
    "catalog_import": ResumableKind("annotation.tasks.catalog_import_task", "MINING_CPU_QUEUE"),
    "snapshot_freeze": ResumableKind("annotation.tasks.snapshot_freeze_task", "MINING_CPU_QUEUE"),
    "dataset_export": ResumableKind("training.tasks.dataset_export_task", "MINING_CPU_QUEUE"),
    "training_run": ResumableKind("training.tasks.training_run_task", "TRAINING_GPU_QUEUE"),
    "benchmark_build": ResumableKind("evaluation.tasks.benchmark_build_task", "EVALUATION_BUILD_QUEUE"),
    "evaluation_run": ResumableKind("evaluation.tasks.evaluation_run_task", "EVALUATION_QUEUE"),
}


def jobs_resend_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Puts back in the queue, and sends again, the running jobs of resumable kinds whose heartbeat is older
    than ``stale_after``; returns their ids."""
    stale_after = stale_after or timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    cutoff = timezone.now() - stale_after
    stale = Job.objects.filter(
        status=Job.Status.RUNNING, kind__in=list(RESUMABLE_KINDS), heartbeat_at__lt=cutoff
    ).values_list("pk", "kind")
    resent = []
    for job_id, kind in stale:
        with transaction.atomic():
            # Conditional: a worker that reported progress meanwhile keeps its job.
            requeued = Job.objects.filter(
                pk=job_id, status=Job.Status.RUNNING, heartbeat_at__lt=cutoff
            ).update(
                status=Job.Status.QUEUED,
                message="Sent again by the job monitor: its worker stopped sending progress.",
            )
            if not requeued:
                continue
            job = Job.objects.get(pk=job_id)
            job_log(
                job=job, message="The job monitor sent it again: its worker sent no progress for a while."
            )
            kind_info = RESUMABLE_KINDS[kind]
            task, queue = import_string(kind_info.task), getattr(settings, kind_info.queue_setting)
            transaction.on_commit(
                lambda task=task, job_id=job_id, queue=queue: task.apply_async(args=[job_id], queue=queue)
            )
        logger.warning("job %s (%s) had no heartbeat since before %s: sent again", job_id, kind, cutoff)
        resent.append(job_id)
    return resent
