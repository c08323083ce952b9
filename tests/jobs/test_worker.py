"""A real Celery worker runs a catalog import job sent through the configured broker.

The broker is the embedded filesystem one without REDIS_URL and Redis with it. Eager mode (on in the test
settings) is switched off, so the message really travels through the broker to a worker thread, which writes
to the test database on its own connection: hence ``transaction=True``, so it sees committed rows.
"""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import EagerResult
from celery.signals import after_task_publish
from django.conf import settings as django_settings

from annotation.models import Image, Product
from annotation.services.catalog_import_jobs import catalog_import_job_create, catalog_import_job_enqueue
from annotation.tasks import catalog_import_task
from config import celery_app
from jobs.models import Job
from jobs.services import job_cancel

pytestmark = pytest.mark.slow
worker_test = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 20


@pytest.fixture
def worker(settings) -> Iterator[str]:
    """A worker thread consuming a queue of its own on the configured broker; yields the queue's name.

    The queue is unique to the test, so a message left on a shared Redis by another run can't reach this
    worker, and this test's messages can't reach another run's worker. The queue and the results of the tasks
    sent are removed afterwards.
    """
    queue = f"twin-test-{uuid.uuid4().hex[:12]}"
    settings.MINING_CPU_QUEUE = queue  # where jobs.dispatch sends catalog imports
    conf = celery_app.conf
    overrides = {
        "task_always_eager": False,
        "task_default_queue": queue,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
    }
    saved = {name: conf[name] for name in overrides}
    queues = celery_app.amqp.queues
    saved_consume_from = queues._consume_from  # start_worker(queues=...) narrows the app's own Queues object
    sent: list[str] = []

    def remember(headers: dict, **kwargs) -> None:
        sent.append(headers["id"])

    after_task_publish.connect(remember, weak=False)
    conf.update(overrides)
    try:
        with start_worker(
            celery_app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=WAIT_SECONDS,
        ):
            yield queue
    finally:
        after_task_publish.disconnect(remember)
        queues._consume_from = saved_consume_from
        with celery_app.connection_for_write() as connection:
            bound = queues[queue](connection.default_channel)
            bound.declare()  # makes the binding known to this channel, so that delete removes it too
            bound.delete()
        for task_id in sent:
            celery_app.AsyncResult(task_id).forget()
        conf.update(saved)


def wait_until_finished(job: Job) -> Job:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} still {job.status} ({job.message!r}) after {WAIT_SECONDS} s")


@pytest.fixture
def manifest(tmp_path: Path, write_image: Callable[..., Path]) -> Path:
    """Two products with two distinct images each, generated with Pillow."""
    lines = []
    for number in (1, 2):
        images = [f"p{number}/{view}.jpg" for view in (1, 2)]
        for view, relative in enumerate(images):
            write_image(relative, seed=10 * number + view, size=(80, 60))
        lines.append(
            {"product_id": f"P{number}", "title": f"Vase {number}", "category": "vase", "images": images}
        )
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_filesystem_broker_is_used_without_redis_and_redis_with_it():
    """The worker tests below run on the broker the environment chose, not on some in-memory one."""
    broker = str(celery_app.conf.broker_url)
    with celery_app.connection_for_write() as connection:
        driver = connection.transport.driver_type
    if django_settings.REDIS_URL:
        assert broker == django_settings.REDIS_URL
        assert driver == "redis"
    else:
        assert broker == "filesystem://"
        assert driver == "filesystem"
        assert Path(celery_app.conf.broker_transport_options["data_folder_in"]).is_relative_to(
            django_settings.DATA_DIR
        )


@worker_test
def test_worker_runs_an_enqueued_catalog_import(worker, manifest: Path, images_root: Path, researcher):
    job = catalog_import_job_create(
        manifest_path=manifest, images_root=images_root, source="shop", created_by=researcher
    )
    assert job.status == Job.Status.QUEUED

    catalog_import_job_enqueue(job=job)  # on_commit runs at once: these tests run in autocommit mode

    job = wait_until_finished(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_total == 2
    assert job.progress_done == job.progress_total
    assert job.started_at is not None and job.finished_at is not None
    assert job.result["products"]["imported"] == 2
    assert job.result["images"]["imported"] == 4
    assert job.message.startswith("2 products imported")
    assert job.result_file.name
    with job.result_file.open("rb") as handle:
        report = json.load(handle)
    assert report["products"]["imported"] == 2
    assert report["rejections"] == []

    products = Product.objects.filter(source="shop").order_by("external_id")
    assert [(p.external_id, p.title, p.category.name) for p in products] == [
        ("P1", "Vase 1", "vase"),
        ("P2", "Vase 2", "vase"),
    ]
    assert Image.objects.filter(product__in=products).count() == 4

    # A redelivered message for the finished job (acks_late after a lost worker) changes nothing.
    before = Job.objects.get(pk=job.pk)
    image_files = sorted(Image.objects.values_list("file", flat=True))
    assert catalog_import_task(job.pk) == {"job": job.pk, "ran": False}
    redelivered = catalog_import_task.delay(job.pk)
    assert not isinstance(redelivered, EagerResult)
    assert redelivered.get(timeout=WAIT_SECONDS) == {"job": job.pk, "ran": False}
    after = Job.objects.get(pk=job.pk)
    assert (after.status, after.finished_at, after.result, after.result_file.name, after.progress_done) == (
        before.status,
        before.finished_at,
        before.result,
        before.result_file.name,
        before.progress_done,
    )
    assert Product.objects.count() == 2
    assert sorted(Image.objects.values_list("file", flat=True)) == image_files


@worker_test
def test_worker_skips_a_job_cancelled_in_the_queue_and_records_a_failing_one(
    worker, manifest: Path, images_root: Path, tmp_path: Path
):
    cancelled = catalog_import_job_create(manifest_path=manifest, images_root=images_root)
    job_cancel(job=cancelled)
    outcome = catalog_import_task.delay(cancelled.pk)
    assert outcome.get(timeout=WAIT_SECONDS) == {"job": cancelled.pk, "ran": False}
    cancelled.refresh_from_db()
    assert cancelled.status == Job.Status.CANCELLED
    assert cancelled.started_at is None
    assert Product.objects.count() == 0

    broken = catalog_import_job_create(manifest_path=manifest, images_root=tmp_path / "no-such-folder")
    catalog_import_job_enqueue(job=broken)
    broken = wait_until_finished(broken)
    assert broken.status == Job.Status.FAILED
    assert "CatalogImportError" in broken.error and "no-such-folder" in broken.error
    assert "Traceback" in broken.error
    assert Product.objects.count() == 0
