"""Sending a job to the workers, for the job kinds that one Celery task carries out.

Every such kind is listed here with its task and queue, so that sending it the first time (when the transaction
that created it commits) and sending it again (the job monitor, ``jobs.monitor``) go through one door. A send
that fails because the broker is unreachable leaves the job queued with ``sent_at`` empty and a line in its log:
the request that created it still succeeds, and the monitor sends the job once the broker is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.models import Job
from jobs.services import job_log

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobTask:
    task: str  # the Celery task's dotted path; it takes the job's id
    queue_setting: str  # the setting naming its queue

    @property
    def queue(self) -> str:
        return getattr(settings, self.queue_setting)


JOB_TASKS = {
    "catalog_import": JobTask("annotation.tasks.catalog_import_task", "MINING_CPU_QUEUE"),
    "snapshot_freeze": JobTask("annotation.tasks.snapshot_freeze_task", "MINING_CPU_QUEUE"),
    "dataset_export": JobTask("training.tasks.dataset_export_task", "MINING_CPU_QUEUE"),
    "training_run": JobTask("training.tasks.training_run_task", "TRAINING_GPU_QUEUE"),
    "benchmark_build": JobTask("evaluation.tasks.benchmark_build_task", "EVALUATION_BUILD_QUEUE"),
    "evaluation_run": JobTask("evaluation.tasks.evaluation_run_task", "EVALUATION_QUEUE"),
}


def job_send(job: Job) -> bool:
    """Sends the job's task to its queue and records when; False (logged, nothing raised) when the broker is
    unreachable."""
    job_task = JOB_TASKS[job.kind]
    try:
        import_string(job_task.task).apply_async(args=[job.pk], queue=job_task.queue)
    except Exception as exc:  # kombu's OperationalError, a refused connection...: the broker, not the job
        logger.warning("job %s (%s) not sent: %s", job.pk, job.kind, exc)
        job_log(
            job=job,
            message=f"Not sent yet: the broker is unreachable ({exc}). It will be sent when it is back.",
        )
        return False
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now())
    return True


def job_send_on_commit(job: Job) -> None:
    """Sends the job once the transaction that created it has committed (a worker must find its row)."""
    transaction.on_commit(lambda: job_send(job))
