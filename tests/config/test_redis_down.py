"""With Redis down (the cache at a port nobody listens on, the broker refusing messages), the site stays up: an
annotator signs in and works a review queue, the API answers, and a researcher's freeze is recorded as a queued
job; with a real Redis taken away and brought back, the job monitor sends that job and a worker runs it."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from annotation import tasks as annotation_tasks
from annotation.models import ReviewDecision, ReviewQueue
from annotation.review.task_creation import image_verification_tasks_create
from jobs.models import Job
from tests.annotation.review.test_views import _held_cards
from tests.factories import AnnotatorFactory, ApiUserFactory, ImageFactory
from tests.mining.test_worker_kill import _database_url, _wait_for
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_down(settings, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "config.redis_cache.RedisCache",  # the site's own backend, as in production
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

    def broker_refuses(*args, **kwargs):
        raise OperationalError(f"Error 111 connecting to {DEAD_REDIS}. Connection refused.")

    monkeypatch.setattr(annotation_tasks.snapshot_freeze_task, "apply_async", broker_refuses)


def test_the_review_queues_keep_serving(client, redis_down):
    ReviewQueue.objects.all().update(gold_rate=0.0)
    for _ in range(3):
        ImageFactory()
    image_verification_tasks_create()
    annotator = AnnotatorFactory(username="annie")
    annotator.set_password("pw-pw-pw-pw")
    annotator.save()

    signed_in = client.post(reverse("login"), {"username": "annie", "password": "pw-pw-pw-pw"})
    assert signed_in.status_code == 302  # the sign-in limit can't count: it lets the attempt through

    page = client.get(reverse("review:queue", args=["images"]))
    assert page.status_code == 200
    (task, key), *_ = _held_cards(page)
    decided = client.post(
        reverse("review:decide", args=["images"]), {"task": task, "key": key, "action": "keep"}
    )
    assert decided.status_code == 200 and decided.json()["ok"]
    assert ReviewDecision.objects.filter(task_id=task).exists()


def test_the_api_answers_and_new_work_waits_for_the_broker(
    client, redis_down, researcher, django_capture_on_commit_callbacks
):
    client.force_login(ApiUserFactory())
    assert client.get("/api/v1/snapshots/").status_code == 200  # rate limit not counted, not failed

    client.force_login(researcher)
    with django_capture_on_commit_callbacks(execute=True):  # the send, once the request's transaction commits
        response = client.post(
            reverse("dataset:freeze"),
            {
                "name": "while-down",
                "eval_fraction": "0.1",
                "seed": "0",
                "negatives": "hard",
                "sample_seed": "0",
            },
        )
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    job = Job.objects.get(kind="snapshot_freeze")
    assert job.status == Job.Status.QUEUED and job.sent_at is None
    assert job.log_entries.filter(message__contains="broker is unreachable").exists()


LAUNCH_A_FREEZE = """
import django
django.setup()
from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
snapshot = snapshot_create(name="while-redis-is-down", parameters=SnapshotParameters(eval_fraction=0.3))
print(snapshot.job_id)
"""


def _python(arguments: list[str], environment: dict) -> str:
    """Runs the project's Python in a process of its own; returns what it printed."""
    completed = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs the Redis of the PostgreSQL and Redis run")
def test_a_job_started_while_redis_is_away_runs_once_it_is_back(reviewed_catalog, tmp_path):
    """Real processes, all reaching Redis through a proxy that the test cuts: a researcher's freeze is recorded
    while Redis is away, a worker waits for the broker, and once Redis is back the job monitor sends the job and
    the worker runs it."""
    redis = urlsplit(django_settings.REDIS_URL)
    proxy = TcpProxy((redis.hostname or "127.0.0.1", redis.port or 6379)).start()
    proxy.cut()
    queue = f"twin-redis-away-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{proxy.port}{redis.path or '/0'}",
        "TWIN_DATA_DIR": str(django_settings.DATA_DIR),
        "DJANGO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "TWIN_MINING_CPU_QUEUE": queue,
    }
    job = Job.objects.get(pk=int(_python(["-c", LAUNCH_A_FREEZE], environment).split()[-1]))
    assert (job.status, job.sent_at) == (Job.Status.QUEUED, None)
    assert job.log_entries.filter(message__contains="broker is unreachable").exists()

    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.mining.slow_worker", "--queues", queue, "--name", f"worker-{queue}"],
        cwd=ROOT,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(2)  # the worker starts against a broker that refuses it, and keeps trying
        assert worker.poll() is None, log.read_text()[-3000:]
        proxy.resume()
        # Past the grace the monitor gives a new job's own send, then one sweep of `monitor_jobs`.
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
        _python(["manage.py", "monitor_jobs", "--once"], environment)
        _wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the freeze to run", [log])
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        proxy.cut()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.sent_at is not None
