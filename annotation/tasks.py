"""Celery tasks of the catalog: thin wrappers that fetch by id and call a service."""

from celery import shared_task

from annotation.services.catalog_import import CatalogImportError
from annotation.services.catalog_import_jobs import catalog_import_job_run
from jobs.models import Job


@shared_task(acks_late=True, reject_on_worker_lost=True)
def catalog_import_task(job_id: int) -> dict:
    job = Job.objects.get(pk=job_id)
    if job.status != Job.Status.QUEUED:
        # A redelivered message for a job that already ran (or was cancelled): nothing to do.
        return {"job": job_id, "status": job.status}
    try:
        catalog_import_job_run(job=job)
    except CatalogImportError:
        pass  # the job row holds the error for the researcher; retrying the same input can't help
    job.refresh_from_db()
    return {"job": job_id, "status": job.status}

