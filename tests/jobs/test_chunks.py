"""Jobs split into chunks: planning once, one claim per chunk, stale chunks claimed again, progress summed,
resending only when the job stalls; and the pace, log and stages shown on the job page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.chunks import (
    job_chunk_advance,
    job_chunk_claim,
    job_chunk_finish,
    job_chunks_all_done,
    job_chunks_create,
    job_chunks_to_resend,
)
from jobs.models import Job, JobChunk
from jobs.selectors import job_pace
from jobs.services import JobCancelled, job_cancel, job_create, job_log, job_start

pytestmark = pytest.mark.django_db
STALE = timedelta(seconds=60)


@pytest.fixture
def chunked_job() -> Job:
    job = job_start(job=job_create(kind="test_chunked"))
    job_chunks_create(job=job, payloads=[({"ids": [1, 2]}, 2), ({"ids": [3, 4, 5]}, 3), ({"ids": [6]}, 1)])
    return job


def chunk(job: Job, number: int) -> JobChunk:
    return JobChunk.objects.get(job=job, number=number)


def test_planning_twice_keeps_the_first_plan(chunked_job: Job):
    again = job_chunks_create(job=chunked_job, payloads=[({"ids": [9]}, 1)])
    assert [(c.number, c.payload, c.units_total) for c in again] == [
        (0, {"ids": [1, 2]}, 2),
        (1, {"ids": [3, 4, 5]}, 3),
        (2, {"ids": [6]}, 1),
    ]


def test_a_chunk_is_claimed_once_until_its_worker_goes_quiet(chunked_job: Job):
    first = job_chunk_claim(chunk_id=chunk(chunked_job, 0).pk, worker="w1", stale_after=STALE)
    assert first is not None and first.status == JobChunk.Status.RUNNING and first.attempts == 1
    assert job_chunk_claim(chunk_id=first.pk, worker="w2", stale_after=STALE) is None  # a duplicate message

    JobChunk.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - 2 * STALE)
    again = job_chunk_claim(chunk_id=first.pk, worker="w2", stale_after=STALE)
    assert again is not None and again.attempts == 2 and again.worker.endswith("w2")

    job_chunk_finish(chunk=again)
    JobChunk.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - 2 * STALE)
    assert job_chunk_claim(chunk_id=first.pk, worker="w3", stale_after=STALE) is None  # done stays done


def test_chunks_of_a_cancelled_job_are_not_claimed(chunked_job: Job):
    job_cancel(job=chunked_job)
    assert job_chunk_claim(chunk_id=chunk(chunked_job, 0).pk, worker="w1", stale_after=STALE) is None


def test_progress_is_the_sum_over_chunks_and_the_last_chunk_says_so(chunked_job: Job):
    held = [
        job_chunk_claim(chunk_id=chunk(chunked_job, n).pk, worker="w", stale_after=STALE) for n in range(3)
    ]
    job_chunk_advance(chunk=held[0], units_done=1)
    job_chunk_advance(chunk=held[1], units_done=2)
    assert Job.objects.get(pk=chunked_job.pk).progress_done == 3
    assert job_chunk_finish(chunk=held[0]) is False
    assert job_chunk_finish(chunk=held[1]) is False
    assert not job_chunks_all_done(job=chunked_job)
    assert job_chunk_finish(chunk=held[2]) is True
    assert job_chunks_all_done(job=chunked_job)


def test_advancing_a_chunk_of_a_cancelled_job_stops_the_worker(chunked_job: Job):
    held = job_chunk_claim(chunk_id=chunk(chunked_job, 0).pk, worker="w", stale_after=STALE)
    job_cancel(job=chunked_job)
    with pytest.raises(JobCancelled):
        job_chunk_advance(chunk=held, units_done=1)


def test_nothing_is_resent_while_the_job_moves_and_everything_unfinished_once_it_stalls(chunked_job: Job):
    held = job_chunk_claim(chunk_id=chunk(chunked_job, 0).pk, worker="w", stale_after=STALE)
    job_chunk_finish(chunk=held)
    Job.objects.filter(pk=chunked_job.pk).update(heartbeat_at=timezone.now())
    assert job_chunks_to_resend(job=chunked_job, stale_after=STALE) == []

    Job.objects.filter(pk=chunked_job.pk).update(heartbeat_at=timezone.now() - 2 * STALE)
    assert job_chunks_to_resend(job=chunked_job, stale_after=STALE) == [
        chunk(chunked_job, 1).pk,
        chunk(chunked_job, 2).pk,
    ]
    # Resending touched the job: the resent messages get a full stale period before the next resend.
    assert job_chunks_to_resend(job=chunked_job, stale_after=STALE) == []


def test_cancelling_a_pipeline_cancels_its_unfinished_stages():
    pipeline = job_start(job=job_create(kind="test_pipeline"))
    done = job_create(kind="stage", parent=pipeline)
    Job.objects.filter(pk=done.pk).update(status=Job.Status.SUCCEEDED)
    running = job_start(job=job_create(kind="stage", parent=pipeline))
    nested = job_create(kind="sub-stage", parent=running)
    job_cancel(job=pipeline)
    statuses = dict(Job.objects.filter(pk__in=[done.pk, running.pk, nested.pk]).values_list("pk", "status"))
    assert statuses == {done.pk: "succeeded", running.pk: "cancelled", nested.pk: "cancelled"}


def test_pace_gives_the_rate_since_the_start_and_the_time_left():
    job = job_start(job=job_create(kind="test_pace"), total=100)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=10), progress_done=25)
    job.refresh_from_db()
    pace = job_pace(job=job, now=job.started_at + timedelta(seconds=10))
    assert pace.rate == pytest.approx(2.5)
    assert pace.eta_seconds == pytest.approx(30.0)
    assert job_pace(job=job_create(kind="queued")).rate is None


def test_job_page_shows_pace_log_and_stages(researcher_client: Client):
    pipeline = job_start(job=job_create(kind="mining_pipeline"), total=10)
    Job.objects.filter(pk=pipeline.pk).update(
        started_at=timezone.now() - timedelta(seconds=100), progress_done=5
    )
    stage = job_create(kind="mining_embed", parent=pipeline)
    job_log(job=pipeline, message=f"Stage embed started as job #{stage.pk}.")
    job_log(job=pipeline, message="Something odd", level="warning")

    page = researcher_client.get(reverse("jobs:detail", args=[pipeline.pk])).content.decode()
    assert "per second" in page and "left" in page
    assert f"Stage embed started as job #{stage.pk}." in page
    assert 'class="warning"' in page
    assert reverse("jobs:detail", args=[stage.pk]) in page

    stage_page = researcher_client.get(reverse("jobs:detail", args=[stage.pk])).content.decode()
    assert "a stage of" in stage_page and reverse("jobs:detail", args=[pipeline.pk]) in stage_page
