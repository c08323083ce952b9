"""The job lifecycle through jobs.services: the API every long-running stage reports through."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.utils import timezone

from jobs.models import Job
from jobs.services import (
    JobCancelled,
    JobStateError,
    job_advance,
    job_cancel,
    job_claim_for_worker,
    job_create,
    job_fail,
    job_finish,
    job_running,
    job_start,
)


def fresh(job: Job) -> Job:
    """The row as the database has it now, not as some in-memory copy remembers it."""
    return Job.objects.get(pk=job.pk)


def job_in_status(status: str) -> Job:
    job = job_create(kind="test_job")
    if status == Job.Status.QUEUED:
        return job
    if status == Job.Status.CANCELLED:
        return job_cancel(job=job)
    job_start(job=job)
    if status == Job.Status.SUCCEEDED:
        job_finish(job=job)
    elif status == Job.Status.FAILED:
        job_fail(job=job, error="broken")
    assert fresh(job).status == status
    return job


# --- Creating and running to the end ---------------------------------------------------------------------


@pytest.mark.django_db
def test_create_records_a_queued_job_with_its_parameters_and_author(researcher):
    job = job_create(kind="catalog_import", parameters={"source": "shop"}, created_by=researcher, total=7)

    row = fresh(job)
    assert row.kind == "catalog_import"
    assert row.status == Job.Status.QUEUED
    assert row.parameters == {"source": "shop"}
    assert row.created_by == researcher
    assert row.progress_total == 7
    assert row.progress_done == 0
    assert row.started_at is None and row.finished_at is None
    assert not row.is_finished


@pytest.mark.django_db
def test_create_from_an_anonymous_request_records_no_author():
    job = job_create(kind="catalog_import", created_by=AnonymousUser())

    assert fresh(job).created_by is None
    assert fresh(job).parameters == {}


@pytest.mark.django_db
def test_a_job_runs_from_start_to_finish_with_progress_and_a_result_file(media_root: Path):
    job = job_create(kind="catalog_import")

    job_start(job=job, total=3, message="Reading the manifest")
    row = fresh(job)
    assert row.status == Job.Status.RUNNING
    assert row.progress_total == 3
    assert row.message == "Reading the manifest"
    assert row.started_at is not None and row.heartbeat_at is not None

    first_heartbeat = row.heartbeat_at
    job_advance(job=job, done=1, message="Line 1 of 3")
    job_advance(job=job, done=2, total=4, message="Line 2 of 4")
    row = fresh(job)
    assert (row.progress_done, row.progress_total, row.message) == (2, 4, "Line 2 of 4")
    assert row.progress_fraction == 0.5
    assert row.heartbeat_at >= first_heartbeat
    assert row.finished_at is None

    job_finish(
        job=job, result={"products": 4}, result_file=("report.json", b'{"products": 4}'), message="All done"
    )
    row = fresh(job)
    assert row.status == Job.Status.SUCCEEDED
    assert row.is_finished
    assert row.result == {"products": 4}
    assert row.message == "All done"
    assert row.progress_done == row.progress_total == 4
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.result_file.name.startswith("jobs/") and row.result_file.name.endswith(".json")
    assert (media_root / row.result_file.name).read_bytes() == b'{"products": 4}'
    with row.result_file.open("rb") as handle:
        assert handle.read() == b'{"products": 4}'


@pytest.mark.django_db
def test_finish_without_a_known_total_keeps_the_count_and_stores_no_file(media_root: Path):
    job = job_start(job=job_create(kind="test_job"))
    job_advance(job=job, done=9)

    job_finish(job=job)

    row = fresh(job)
    assert row.status == Job.Status.SUCCEEDED
    assert row.progress_done == 9 and row.progress_total is None
    assert row.result == {} and not row.result_file
    assert row.message == "Done."
    assert not (media_root / "jobs").exists()


@pytest.mark.django_db
def test_long_messages_are_cut_to_the_column_size():
    job = job_start(job=job_create(kind="test_job"))

    job_advance(job=job, done=1, message="x" * 2000)

    assert fresh(job).message == "x" * 500


# --- Failing and cancelling ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.RUNNING])
def test_fail_records_the_error_of_a_queued_or_running_job(status):
    job = job_in_status(status)

    job_fail(job=job, error="The manifest is not JSON lines.")

    row = fresh(job)
    assert row.status == Job.Status.FAILED
    assert row.error == "The manifest is not JSON lines."
    assert row.message == "Failed."
    assert row.finished_at is not None
    assert job.status == Job.Status.FAILED  # the caller's object is refreshed too


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.CANCELLED])
def test_fail_leaves_a_finished_job_as_it_ended(status):
    job = job_in_status(status)

    job_fail(job=job, error="too late")

    row = fresh(job)
    assert row.status == status
    assert row.error == ""


@pytest.mark.django_db
def test_a_job_cancelled_in_the_queue_never_starts():
    job = job_create(kind="test_job")

    job_cancel(job=job)
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.message == "Cancelled."
    assert row.finished_at is not None

    with pytest.raises(JobCancelled):
        job_start(job=job)
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.started_at is None


@pytest.mark.django_db
def test_a_running_job_cancelled_stops_at_its_next_progress_report(media_root: Path):
    job = job_start(job=job_create(kind="test_job"), total=10)
    job_advance(job=job, done=3)

    job_cancel(job=fresh(job))  # from the admin page, with its own copy of the row

    with pytest.raises(JobCancelled):
        job_advance(job=job, done=4, message="still going")
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.progress_done == 3
    assert row.message == "Cancelled."

    with pytest.raises(JobCancelled):
        job_finish(job=job, result={"x": 1}, result_file=("report.json", b"{}"))
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.result == {} and not row.result_file
    # The report written for the refused finish is not left behind in storage.
    assert not any(path.is_file() for path in (media_root / "jobs").rglob("*"))


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED])
def test_cancelling_a_finished_job_is_refused(status):
    job = job_in_status(status)
    finished_at = fresh(job).finished_at

    with pytest.raises(JobStateError, match=f"already {status}"):
        job_cancel(job=job)

    row = fresh(job)
    assert row.status == status
    assert row.finished_at == finished_at


# --- Illegal transitions ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.RUNNING, Job.Status.SUCCEEDED, Job.Status.FAILED])
def test_only_a_queued_job_can_start(status):
    job = job_in_status(status)
    before = fresh(job)

    with pytest.raises(JobStateError, match="can't start"):
        job_start(job=job)

    row = fresh(job)
    assert row.status == status
    assert row.started_at == before.started_at


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.SUCCEEDED, Job.Status.FAILED])
def test_only_a_running_job_can_advance(status):
    job = job_in_status(status)

    with pytest.raises(JobStateError, match="not running"):
        job_advance(job=job, done=1)

    row = fresh(job)
    assert row.status == status
    assert row.progress_done == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.SUCCEEDED, Job.Status.FAILED])
def test_only_a_running_job_can_finish(status, media_root: Path):
    job = job_in_status(status)

    with pytest.raises(JobStateError, match="can't finish"):
        job_finish(job=job, result={"late": True}, result_file=("late.txt", b"late"))

    row = fresh(job)
    assert row.status == status
    assert row.result == {}
    assert not any(path.is_file() for path in (media_root / "jobs").rglob("*"))


# --- job_running: the context manager the stages use -----------------------------------------------------


@pytest.mark.django_db
def test_job_running_starts_the_job_and_lets_the_body_finish_it():
    job = job_create(kind="test_job")

    with job_running(job=job, total=2) as running:
        assert fresh(job).status == Job.Status.RUNNING
        assert fresh(job).progress_total == 2
        job_advance(job=running, done=1)
        job_finish(job=running, result={"ok": True})

    row = fresh(job)
    assert row.status == Job.Status.SUCCEEDED
    assert row.result == {"ok": True}
    assert row.progress_done == 2


@pytest.mark.django_db
def test_job_running_records_a_failure_with_its_traceback_and_reraises():
    job = job_create(kind="test_job")

    def read_manifest() -> None:
        raise ValueError("line 3 is not JSON")

    with pytest.raises(ValueError, match="line 3 is not JSON"), job_running(job=job):
        read_manifest()

    row = fresh(job)
    assert row.status == Job.Status.FAILED
    assert row.error.startswith("ValueError: line 3 is not JSON")
    assert "Traceback (most recent call last)" in row.error
    assert "read_manifest" in row.error
    assert row.finished_at is not None


@pytest.mark.django_db
def test_job_running_ends_quietly_when_the_job_is_cancelled_mid_way():
    job = job_create(kind="test_job")
    reached_after_cancel = False

    with job_running(job=job, total=10):
        job_advance(job=job, done=1)
        job_cancel(job=fresh(job))
        job_advance(job=job, done=2)
        reached_after_cancel = True

    assert not reached_after_cancel
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.error == ""
    assert row.progress_done == 1


@pytest.mark.django_db
def test_job_running_on_a_job_cancelled_in_the_queue_never_runs_the_body():
    job = job_create(kind="test_job")
    job_cancel(job=job)
    body_ran = False

    with pytest.raises(JobCancelled), job_running(job=job):
        body_ran = True

    assert not body_ran
    assert fresh(job).status == Job.Status.CANCELLED


# --- A cancel racing a worker ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_cancel_between_two_progress_reports_is_never_overwritten():
    """The worker holds its own copy of the row, which still says running after the cancel lands."""
    worker_copy = fresh(job_create(kind="test_job", total=100))
    job_start(job=worker_copy)
    job_advance(job=worker_copy, done=10)

    cancelled = job_cancel(job=fresh(worker_copy))  # the admin page's copy

    assert worker_copy.status == Job.Status.RUNNING  # stale, as a worker's copy is
    with pytest.raises(JobCancelled):
        job_advance(job=worker_copy, done=20, total=200, message="Line 20")
    # Even a worker that ignores what it was told can't undo the cancel.
    worker_copy.status = Job.Status.RUNNING
    with pytest.raises(JobCancelled):
        job_finish(job=worker_copy, result={"products": 100})
    job_fail(job=worker_copy, error="late failure")

    row = fresh(worker_copy)
    assert row.status == Job.Status.CANCELLED
    assert row.finished_at == cancelled.finished_at
    assert (row.progress_done, row.progress_total) == (10, 100)
    assert row.message == "Cancelled."
    assert row.result == {} and row.error == ""


@pytest.mark.django_db(transaction=True)
def test_a_cancel_from_another_thread_stops_a_busy_worker():
    """A worker thread reports progress as fast as it can while the main thread cancels the job."""
    job = job_create(kind="test_job", total=1_000_000)
    job_start(job=job)
    first_report = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        worker_copy = Job.objects.get(pk=job.pk)
        try:
            for done in range(1, 1_000_001):
                job_advance(job=worker_copy, done=done)
                outcome["last_done"] = done
                first_report.set()
            job_finish(job=worker_copy)
            outcome["result"] = "finished"
        except JobCancelled:
            outcome["result"] = "cancelled"
        except Exception as exc:  # reported to the main thread
            outcome["result"] = repr(exc)
        finally:
            first_report.set()
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    assert first_report.wait(timeout=30)
    cancelled = job_cancel(job=fresh(job))
    thread.join(timeout=60)

    assert not thread.is_alive()
    assert outcome["result"] == "cancelled"
    row = fresh(job)
    assert row.status == Job.Status.CANCELLED
    assert row.finished_at == cancelled.finished_at
    assert row.progress_done == outcome["last_done"] < 1_000_000


class TestClaimForWorker:
    """What a task does with its message: run queued jobs, re-run jobs of dead workers, skip the rest."""

    def test_a_queued_job_is_claimed_and_remembers_its_task(self, queued_job):
        claimed = job_claim_for_worker(job_id=queued_job.pk, task_id="task-1")
        assert claimed.pk == queued_job.pk and claimed.celery_task_id == "task-1"

    def test_a_running_job_with_a_live_worker_is_not_run_twice(self, running_job):
        job_advance(job=running_job, done=1)
        assert job_claim_for_worker(job_id=running_job.pk, stale_after=timedelta(minutes=5)) is None
        running_job.refresh_from_db()
        assert running_job.status == Job.Status.RUNNING

    def test_a_running_job_whose_worker_died_is_queued_again(self, running_job):
        Job.objects.filter(pk=running_job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
        claimed = job_claim_for_worker(job_id=running_job.pk, stale_after=timedelta(minutes=10))
        assert claimed is not None and claimed.status == Job.Status.QUEUED
        assert "Restarted" in claimed.message
        job_start(job=claimed)

    @pytest.mark.parametrize("end", ["finish", "cancel", "fail"])
    def test_finished_jobs_and_missing_ones_are_skipped(self, running_job, end):
        {
            "finish": lambda: job_finish(job=running_job),
            "cancel": lambda: job_cancel(job=running_job),
            "fail": lambda: job_fail(job=running_job, error="x"),
        }[end]()
        Job.objects.filter(pk=running_job.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))
        assert job_claim_for_worker(job_id=running_job.pk, stale_after=timedelta(minutes=1)) is None
        assert job_claim_for_worker(job_id=999_999) is None
