"""The job monitor: a job whose worker died is put back in the queue and sent again, once; live, finished and
chunked jobs are left alone; and a resent evaluation run really completes, asking only what it had not
answered."""

import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from evaluation import tasks as evaluation_tasks
from evaluation.models import EvaluationResponse
from evaluation.services.runs import evaluation_run_create, evaluation_run_launch
from jobs.models import Job
from jobs.monitor import jobs_resend_stale
from tests.evaluation.services.test_benchmarks import _folder_benchmark
from tests.evaluation.services.test_run_execution import ServedModel
from training import tasks as training_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _job(
    kind: str, *, status=Job.Status.RUNNING, quiet_for: timedelta = timedelta(hours=1), **parameters
) -> Job:
    return Job.objects.create(
        kind=kind, status=status, heartbeat_at=timezone.now() - quiet_for, parameters=parameters
    )


@pytest.fixture
def sent(monkeypatch):
    """The messages the monitor sends: (task name, args, queue)."""
    messages = []

    def recorder(task):
        def apply_async(args, queue):
            messages.append((task.name, args, queue))

        return apply_async

    for task in (training_tasks.training_run_task, evaluation_tasks.evaluation_run_task):
        monkeypatch.setattr(task, "apply_async", recorder(task))
    return messages


def test_a_job_whose_worker_died_is_queued_and_sent_again_once(sent, settings):
    dead = _job("training_run", run=1)
    alive = _job("training_run", quiet_for=timedelta(seconds=5), run=2)
    finished = _job("training_run", status=Job.Status.SUCCEEDED, run=3)
    chunked = _job("mining_embed")  # mining's own watchdog resends chunks

    assert jobs_resend_stale() == [dead.pk]

    assert sent == [("training.tasks.training_run_task", [dead.pk], settings.TRAINING_GPU_QUEUE)]
    dead.refresh_from_db()
    assert dead.status == Job.Status.QUEUED and "job monitor" in dead.message
    assert dead.log_entries.filter(message__contains="job monitor").exists()
    for job in (alive, finished, chunked):
        before = job.status
        job.refresh_from_db()
        assert job.status == before

    assert jobs_resend_stale() == []  # queued now: the message is on its way
    assert len(sent) == 1


def test_the_command_sweeps_once(sent, capsys):
    dead = _job("evaluation_run", run=9)
    call_command("monitor_jobs", "--once")
    assert f"Sent again: jobs {dead.pk}" in capsys.readouterr().out
    assert sent == [("evaluation.tasks.evaluation_run_task", [dead.pk], "gpu")]


def test_a_resent_evaluation_run_completes_with_what_its_dead_worker_left(tmp_path):
    """A worker died mid-run (its job running, no heartbeat): the monitor resends it, a worker (eager here)
    resumes it, and only the queries without an answer are asked."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ServedModel)
    server.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        benchmark = _folder_benchmark(tmp_path, pair_count=6, multi_count=0)
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        run = evaluation_run_create(
            name="r", benchmarks=[benchmark], backend="openai", model="served", options={"api_base": base}
        )
        job = evaluation_run_launch(run=run)  # eager: answers all 6
        kept = list(EvaluationResponse.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
        EvaluationResponse.objects.filter(pk__in=kept[3:]).delete()  # the dead worker got through half
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1), finished_at=None
        )
        calls = len(server.calls)

        assert jobs_resend_stale() == [job.pk]

        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert len(server.calls) - calls == 3  # only the unanswered half was asked
        assert EvaluationResponse.objects.filter(run=run).count() == 6
        assert set(kept[:3]) <= set(EvaluationResponse.objects.filter(run=run).values_list("pk", flat=True))
    finally:
        server.shutdown()


def test_every_job_kind_run_by_one_task_is_known_to_the_monitor(settings):
    from django.utils.module_loading import import_string

    from annotation.dataset.snapshots import SNAPSHOT_FREEZE_JOB
    from annotation.services.catalog_import_jobs import CATALOG_IMPORT
    from evaluation.services.benchmarks import BENCHMARK_BUILD_JOB
    from evaluation.services.runs import EVALUATION_RUN_JOB
    from jobs.monitor import RESUMABLE_KINDS
    from training.services.exports import DATASET_EXPORT_JOB
    from training.services.runs import TRAINING_RUN_JOB

    kinds = {
        CATALOG_IMPORT,
        SNAPSHOT_FREEZE_JOB,
        DATASET_EXPORT_JOB,
        TRAINING_RUN_JOB,
        BENCHMARK_BUILD_JOB,
        EVALUATION_RUN_JOB,
    }
    assert set(RESUMABLE_KINDS) == kinds
    for kind in RESUMABLE_KINDS.values():
        assert import_string(kind.task).name == kind.task
        assert getattr(settings, kind.queue_setting)
