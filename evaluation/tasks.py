"""Celery tasks of the evaluation app: thin wrappers that fetch by id and call a service."""

import logging

from celery import shared_task

from evaluation.services.benchmarks import benchmark_build_execute
from evaluation.services.run_execution import evaluation_run_execute
from jobs.services import job_task_execute

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def benchmark_build_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: benchmark_build_execute(job=job),
        logger=logger,
    )


# acks_late: a worker lost mid-run hands the run to another, which resumes after the stored responses.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluation_run_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: evaluation_run_execute(job=job),
        logger=logger,
    )
