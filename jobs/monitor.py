"""The job monitor: sends the jobs whose message was lost, and again the jobs whose worker died.

A job's task is sent with ``acks_late``, so the broker gives a message back when its worker's connection drops;
but a worker killed outright leaves its message unacknowledged until the broker's visibility timeout, a broker
that was down when a job was created never got its message, and one restarted without persistence lost it. The
monitor (``manage.py monitor_jobs``, a service of its own in docker-compose) sweeps every minute:

- queued jobs never sent (``sent_at`` empty: the broker was unreachable) are sent;
- queued jobs sent more than ``TWIN_JOB_RESEND_QUEUED_SECONDS`` ago and still not started are sent again (a lost
  message; a duplicate is harmless, as the first worker to claim the job runs it and the others find it taken);
- running jobs with no heartbeat for ``TWIN_JOB_STALE_AFTER_SECONDS`` are put back in the queue and sent again.

A worker that takes the message claims the job (``job_claim_for_worker``) and resumes it, which every stage
supports: imports and exports are idempotent, training runs resume from their checkpoint, evaluation runs ask
only what they have not answered. The old worker, if it was only slow, finds the job no longer running at its
next progress report and stops. Chunked mining jobs are not handled here: their own watchdog resends lost
chunks (``mining.services.runs``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs.dispatch import JOB_TASKS, job_send
from jobs.models import Job
from jobs.services import job_log

logger = logging.getLogger(__name__)
# A job just created is sent by the request that created it, once its transaction commits: not the monitor's.
UNSENT_GRACE = timedelta(seconds=30)


@dataclass
class Sweep:
    sent: list[int] = field(default_factory=list)  # queued jobs sent (first time, or again)
    restarted: list[int] = field(
        default_factory=list
    )  # running jobs whose worker died, queued and sent again
    failed: list[int] = field(default_factory=list)  # still unsent: the broker is unreachable


def jobs_sweep(
    *, stale_after: timedelta | None = None, resend_queued_after: timedelta | None = None
) -> Sweep:
    now = timezone.now()
    stale_after = stale_after or timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    resend_queued_after = resend_queued_after or timedelta(seconds=settings.JOB_RESEND_QUEUED_SECONDS)
    sweep = Sweep()
    kinds = list(JOB_TASKS)

    cutoff = now - stale_after
    for job in Job.objects.filter(status=Job.Status.RUNNING, kind__in=kinds, heartbeat_at__lt=cutoff):
        # Conditional: a worker that reported progress meanwhile keeps its job.
        requeued = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=cutoff).update(
            status=Job.Status.QUEUED,
            message="Sent again by the job monitor: its worker stopped sending progress.",
        )
        if requeued:
            job_log(
                job=job, message="The job monitor sent it again: its worker sent no progress for a while."
            )
            logger.warning(
                "job %s (%s) had no heartbeat since before %s: sent again", job.pk, job.kind, cutoff
            )
            (sweep.restarted if job_send(job) else sweep.failed).append(job.pk)

    waiting = Job.objects.filter(status=Job.Status.QUEUED, kind__in=kinds).filter(
        Q(sent_at__isnull=True, created_at__lt=now - UNSENT_GRACE) | Q(sent_at__lt=now - resend_queued_after)
    )
    for job in waiting.exclude(pk__in=sweep.restarted + sweep.failed):
        (sweep.sent if job_send(job) else sweep.failed).append(job.pk)
    return sweep
