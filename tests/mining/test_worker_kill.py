"""Killing a worker in the middle of an embedding job: another worker completes it, with no duplicate and no
missing vector.

Real worker processes (``tests/mining/slow_worker.py``) consume the job's queues on the configured broker (the
filesystem one, or Redis when REDIS_URL is set) and write to the test database. The first worker's embedder
sleeps before each batch, so the test can SIGKILL it while it holds a half-done chunk; the second worker,
started afterwards, takes over through the job's watchdog.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from jobs.models import Job, JobChunk
from mining.models import ImageEmbedding
from mining.services.embeddings import embedder_spec_for
from mining.services.runs import mining_job_enqueue
from mining.services.scope import usable_images
from mining.services.stages import mining_job_create

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 90


def _database_url() -> str:
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


def _worker_start(*, queues: list[str], name: str, pause: float, log: Path) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": _database_url(),
        "TWIN_DATA_DIR": str(django_settings.DATA_DIR),
        "DJANGO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "TWIN_MINING_ALLOW_RANDOM_WEIGHTS": "1",
        "TWIN_MINING_CHUNK_STALE_SECONDS": str(django_settings.MINING_CHUNK_STALE_SECONDS),
        "TWIN_MINING_WATCH_SECONDS": str(django_settings.MINING_WATCH_SECONDS),
        "TWIN_MINING_CPU_QUEUE": django_settings.MINING_CPU_QUEUE,
        "TWIN_MINING_GPU_QUEUE": django_settings.MINING_GPU_QUEUE,
        "TWIN_MINING_EMBED_WORKERS": "0",
    }
    if django_settings.REDIS_URL:
        environment["REDIS_URL"] = django_settings.REDIS_URL
    else:
        environment.pop("REDIS_URL", None)
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.mining.slow_worker", "--queues", ",".join(queues), "--name", name]
        + ["--pause", str(pause)],
        cwd=ROOT,
        env=environment,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def _wait_for(condition, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_s_embedding_job_is_completed_by_another(demo_catalog, settings, tmp_path):
    run = uuid.uuid4().hex[:8]
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MINING_CPU_QUEUE = f"twin-kill-cpu-{run}"
    settings.MINING_GPU_QUEUE = f"twin-kill-gpu-{run}"
    settings.MINING_CHUNK_STALE_SECONDS = 2
    settings.MINING_WATCH_SECONDS = 1
    from config import celery_app

    celery_app.conf.task_always_eager = False
    queues = [settings.MINING_CPU_QUEUE, settings.MINING_GPU_QUEUE]
    images = usable_images().count()
    job = mining_job_create(
        stage="embed", parameters={"embedder": "descriptor", "batch_size": 2, "chunk_size": 6, "workers": 0}
    )
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    first = _worker_start(queues=queues, name=f"first-{run}", pause=0.4, log=logs[0])
    second = None
    try:
        mining_job_enqueue(job=job)  # autocommit: on_commit sends at once

        def mid_second_chunk() -> bool:
            chunk = JobChunk.objects.filter(job=job, number=1).first()
            return bool(
                chunk and chunk.status == JobChunk.Status.RUNNING and 0 < chunk.units_done < chunk.units_total
            )

        _wait_for(mid_second_chunk, "the first worker to be halfway through chunk 1", logs)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        written_before = ImageEmbedding.objects.count()
        assert 0 < written_before < images

        second = _worker_start(queues=queues, name=f"second-{run}", pause=0, log=logs[1])
        _wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the job to finish", logs)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
        celery_app.conf.task_always_eager = True

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    vectors = ImageEmbedding.objects.filter(embedder_key=embedder_spec_for("descriptor").key)
    assert vectors.count() == images
    assert vectors.values("image_id").distinct().count() == images
    assert set(vectors.values_list("image_id", flat=True)) == set(
        usable_images().values_list("pk", flat=True)
    )
    chunks = list(JobChunk.objects.filter(job=job).order_by("number"))
    assert all(chunk.status == JobChunk.Status.DONE for chunk in chunks)
    assert chunks[1].attempts >= 2  # the killed chunk was claimed again
    assert job.progress_done == job.progress_total == images
    assert job.log_entries.filter(message__contains="sending").exists()
