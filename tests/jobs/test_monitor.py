"""The job monitor and the sending of jobs: a job whose worker died is put back in the queue and sent again,
once; a job created while the broker was down is sent when it is back; a lost message is sent again; live,
finished and chunked jobs are left alone; and a resent evaluation run really completes, asking only what it had
not answered."""

import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from evaluation import tasks as evaluation_tasks
from evaluation.models import EvaluationResponse
from evaluation.services.runs import evaluation_run_create, evaluation_run_launch
from jobs.dispatch import JOB_TASKS
from jobs.models import Job
from jobs.monitor import jobs_sweep
from tests.evaluation.services.test_benchmarks import _folder_benchmark
from tests.evaluation.services.test_run_execution import ServedModel
from training import tasks as training_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _job(
    kind: str, *, status=Job.Status.RUNNING, quiet_for: timedelta = timedelta(hours=1), **parameters
) -> Job:
    # Sent a minute ago: a queued one is not the monitor's yet.
    return Job.objects.create(
        kind=kind,
        status=status,
        heartbeat_at=timezone.now() - quiet_for,
        sent_at=timezone.now() - timedelta(minutes=1),
        parameters=parameters,
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

    sweep = jobs_sweep()

    assert sweep.restarted == [dead.pk] and sweep.sent == [] and sweep.failed == []
    assert sent == [("training.tasks.training_run_task", [dead.pk], settings.TRAINING_GPU_QUEUE)]
    dead.refresh_from_db()
    assert dead.status == Job.Status.QUEUED and "job monitor" in dead.message
    assert dead.log_entries.filter(message__contains="job monitor").exists()
    for job in (alive, finished, chunked):
        before = job.status
        job.refresh_from_db()
        assert job.status == before

    assert jobs_sweep().restarted == []  # queued now, its message just sent: on its way
    assert len(sent) == 1


def test_the_command_sweeps_once(sent, capsys):
    dead = _job("evaluation_run", run=9)
    call_command("monitor_jobs", "--once")
    assert f"Restarted (their worker died): jobs {dead.pk}" in capsys.readouterr().out
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

        assert jobs_sweep().restarted == [job.pk]

        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert len(server.calls) - calls == 3  # only the unanswered half was asked
        assert EvaluationResponse.objects.filter(run=run).count() == 6
        assert set(kept[:3]) <= set(EvaluationResponse.objects.filter(run=run).values_list("pk", flat=True))
    finally:
        server.shutdown()


def test_every_job_kind_run_by_one_task_is_known_to_the_dispatcher(settings):
    from django.utils.module_loading import import_string

    from annotation.dataset.snapshots import SNAPSHOT_FREEZE_JOB
    from annotation.services.catalog_import_jobs import CATALOG_IMPORT
    from evaluation.services.benchmarks import BENCHMARK_BUILD_JOB
    from evaluation.services.runs import EVALUATION_RUN_JOB
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
    assert set(JOB_TASKS) == kinds
    for kind in JOB_TASKS.values():
        assert import_string(kind.task).name == kind.task
        assert getattr(settings, kind.queue_setting)


def test_a_job_created_while_the_broker_is_down_is_sent_when_it_is_back(tmp_path, monkeypatch):
    """The researcher's launch succeeds with the broker down; the job waits, queued and unsent; the monitor sends
    it once the broker answers again."""
    from kombu.exceptions import OperationalError

    benchmark = _folder_benchmark(tmp_path, pair_count=2, multi_count=0)
    run = evaluation_run_create(name="r", benchmarks=[benchmark], backend="vllm", model="m")

    def broker_down(args, queue):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(evaluation_tasks.evaluation_run_task, "apply_async", broker_down)
    job = evaluation_run_launch(run=run)  # no error for the researcher

    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.sent_at is None
    assert job.log_entries.filter(message__contains="broker is unreachable").exists()
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert jobs_sweep().failed == [job.pk]  # still down: tried, and left for the next sweep

    delivered = []
    monkeypatch.setattr(
        evaluation_tasks.evaluation_run_task, "apply_async", lambda args, queue: delivered.append(args)
    )
    assert jobs_sweep().sent == [job.pk]
    assert delivered == [[job.pk]]
    job.refresh_from_db()
    assert job.sent_at is not None and job.status == Job.Status.QUEUED
    assert jobs_sweep().sent == []  # sent: not again until TWIN_JOB_RESEND_QUEUED_SECONDS


def test_a_queued_job_whose_message_was_lost_is_sent_again_after_a_while(sent, settings):
    waiting = _job("training_run", status=Job.Status.QUEUED, run=5)
    assert jobs_sweep().sent == []
    Job.objects.filter(pk=waiting.pk).update(
        sent_at=timezone.now() - timedelta(seconds=settings.JOB_RESEND_QUEUED_SECONDS + 1)
    )
    assert jobs_sweep().sent == [waiting.pk]
    assert sent == [("training.tasks.training_run_task", [waiting.pk], settings.TRAINING_GPU_QUEUE)]
