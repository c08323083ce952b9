"""Reads of jobs."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import Job, JobLogEntry


def job_list(*, kind: str | None = None, active_only: bool = False) -> QuerySet[Job]:
    jobs = Job.objects.select_related("created_by")
    if kind:
        jobs = jobs.filter(kind=kind)
    if active_only:
        jobs = jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return jobs


@dataclass(frozen=True)
class JobPace:
    rate: float | None  # units per second since the job started
    eta_seconds: float | None  # at that rate, until the total is reached


def job_pace(*, job: Job, now: datetime | None = None) -> JobPace:
    """How fast a running job moves and when it should end, from its progress since it started."""
    if job.started_at is None or not job.progress_done:
        return JobPace(rate=None, eta_seconds=None)
    end = job.finished_at or now or timezone.now()
    elapsed = (end - job.started_at).total_seconds()
    if elapsed <= 0:
        return JobPace(rate=None, eta_seconds=None)
    rate = job.progress_done / elapsed
    eta = None
    if job.progress_total and not job.is_finished:
        eta = max(0.0, (job.progress_total - job.progress_done) / rate)
    return JobPace(rate=rate, eta_seconds=eta)


def job_log_tail(*, job: Job, limit: int = 50) -> list[JobLogEntry]:
    """The job's latest log lines, oldest first."""
    return list(reversed(job.log_entries.order_by("-at", "-id")[:limit]))
