"""Reads of jobs."""

from django.db.models import QuerySet

from jobs.models import Job


def job_list(*, kind: str | None = None, active_only: bool = False) -> QuerySet[Job]:
    jobs = Job.objects.select_related("created_by")
    if kind:
        jobs = jobs.filter(kind=kind)
    if active_only:
        jobs = jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return jobs
