"""Killing the worker in the middle of an evaluation run: the job monitor notices the missing heartbeat, sends
the run again, and another worker completes it, with no answer stored twice and none missing.

Real worker processes (``tests/mining/slow_worker.py``, a plain Celery worker here) consume the run's queue on
the configured broker (the filesystem one, or Redis when REDIS_URL is set) and write to the test database; the
model is served over HTTP by this process and answers slowly, so the kill lands mid-run.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from evaluation.models import EvaluationResponse
from evaluation.services.runs import evaluation_run_create, evaluation_run_launch
from jobs.models import Job
from jobs.monitor import jobs_sweep
from tests.evaluation.services.test_benchmarks import _folder_benchmark
from tests.mining.test_worker_kill import _database_url, _wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class SlowModel(BaseHTTPRequestHandler):
    """Answers every query "yes", a quarter of a second later."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.25)
        self.server.requests += 1
        payload = json.dumps({"choices": [{"message": {"content": "<answer>yes</answer>"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def _worker_start(queue: str, name: str, log: Path) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": _database_url(),
        "TWIN_DATA_DIR": str(django_settings.DATA_DIR),
        "DJANGO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "TWIN_EVALUATION_QUEUE": queue,
    }
    if django_settings.REDIS_URL:
        environment["REDIS_URL"] = django_settings.REDIS_URL
    else:
        environment.pop("REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.mining.slow_worker", "--queues", queue, "--name", name],
        cwd=ROOT,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_s_evaluation_run_is_completed_by_another(settings, tmp_path):
    from config import celery_app

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowModel)
    server.requests = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    queue = f"twin-kill-eval-{uuid.uuid4().hex[:8]}"
    settings.EVALUATION_QUEUE = queue
    benchmark = _folder_benchmark(tmp_path, pair_count=12, multi_count=0)
    run = evaluation_run_create(
        name="killed",
        benchmarks=[benchmark],
        backend="openai",
        model="slow",
        options={"api_base": f"http://127.0.0.1:{server.server_address[1]}/v1", "batch_size": 1},
    )
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    celery_app.conf.task_always_eager = False
    first = _worker_start(queue, f"first-{queue}", logs[0])
    second = None
    try:
        job = evaluation_run_launch(run=run)  # autocommit: on_commit sends at once
        answered = EvaluationResponse.objects.filter(run=run)
        _wait_for(lambda: answered.count() >= 3, "the first worker to answer a few queries", logs)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        before = answered.count()
        assert 3 <= before < 12
        assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING  # as the dead worker left it

        second = _worker_start(queue, f"second-{queue}", logs[1])
        time.sleep(1.5)
        sweep = jobs_sweep(stale_after=timedelta(seconds=1))  # what the monitor does, sooner
        assert sweep.restarted == [job.pk]
        _wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the run to finish", logs)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
        celery_app.conf.task_always_eager = True
        server.shutdown()

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert answered.count() == 12 and answered.values("query_id").distinct().count() == 12
    # The second worker asked only what was missing (and, at most, the one query in flight at the kill).
    assert server.requests <= 12 + 1
    assert job.log_entries.filter(message__contains="job monitor").exists()
