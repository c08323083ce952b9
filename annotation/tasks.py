"""Celery tasks of the catalog: thin wrappers that fetch by id and call a service."""

import logging
from contextlib import suppress

from celery import shared_task

from annotation.dataset.snapshots import snapshot_freeze_execute
from annotation.services.catalog_import import CatalogImportError
from annotation.services.catalog_import_jobs import catalog_import_job_run
from jobs.services import JobCancelled, job_claim_for_worker, job_task_execute

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def catalog_import_task(self, job_id: int) -> dict:
    job = job_claim_for_worker(job_id=job_id, task_id=self.request.id or "")
    if job is None:
        # Already finished, cancelled, or running under a live worker (a duplicate delivery): nothing to do.
        return {"job": job_id, "ran": False}
    # Both end the job with its status and message recorded; retrying the same input can't help.
    with suppress(CatalogImportError, JobCancelled):
        catalog_import_job_run(job=job)
    job.refresh_from_db()
    return {"job": job_id, "ran": True, "status": job.status}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def snapshot_freeze_task(self, job_id: int) -> dict:
    return job_task_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        execute=lambda job: snapshot_freeze_execute(job=job),
        logger=logger,
    )
