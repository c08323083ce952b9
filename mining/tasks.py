"""Celery tasks of the mining stage: thin wrappers that take ids and call ``mining.services.runs``.

Every task is ``acks_late`` with ``reject_on_worker_lost``: a message whose worker died is delivered again where
the broker can, and the services make running it twice harmless. Where it can't (a killed worker's message
on the embedded broker, or Redis's visibility timeout), the job's watchdog resends the work.
"""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from jobs.services import job_task_execute
from mining.services.runs import (
    mining_chunk_execute,
    mining_job_execute,
    mining_job_watch,
    mining_runs_recover,
)

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def mining_job_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: mining_job_execute(job=job),
        logger=logger,
    )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def mining_chunk_task(self, chunk_id: int) -> dict:
    ran = mining_chunk_execute(chunk_id=chunk_id, worker=self.request.id or "")
    return {"chunk": chunk_id, "ran": ran}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def mining_job_watch_task(job_id: int) -> dict:
    watching = mining_job_watch(job_id=job_id)
    if watching:
        mining_job_watch_task.apply_async(
            args=[job_id], countdown=settings.MINING_WATCH_SECONDS, queue=settings.MINING_CPU_QUEUE
        )
    return {"job": job_id, "watching": watching}


@worker_ready.connect
def mining_recover_on_worker_start(sender=None, **kwargs) -> None:
    """A worker that starts after another died takes over the watch of the running chunked jobs."""
    try:
        mining_runs_recover()
    except Exception:  # a worker must start even if the database is briefly unreachable
        logger.exception("could not look for mining jobs to recover")
