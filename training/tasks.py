"""Celery tasks of the training app: thin wrappers that fetch by id and call a service."""

import logging

from celery import shared_task

from jobs.services import job_task_execute
from training.services.exports import export_execute
from training.services.run_execution import training_run_execute

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def dataset_export_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: export_execute(job=job),
        logger=logger,
    )


# A run takes hours: acks_late keeps the message until it ends, so a worker that dies mid-run hands the run to
# another worker, which finds the job stale (no heartbeat) and relaunches it from its latest checkpoint.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def training_run_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: training_run_execute(job=job),
        logger=logger,
    )
