"""Fixtures of the browser tests: one headless Chromium per module, a signed-in page per annotator, and a
small demo catalog with review tasks made by the real task-creation services.

Playwright's sync API keeps an asyncio event loop in the test thread; Django refuses ORM calls in a thread
with a running loop unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set. The browser fixture sets it while the
browser lives (that covers the database flush after each test too) and puts the old value back after.
"""

import hashlib
import io
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image as PILImage
from PIL import ImageOps

from annotation.demo_catalog.generator import DemoCatalog, demo_catalog_make
from annotation.models import Image, Instance, Product, ReviewQueue, ReviewTask, TaskKind
from annotation.review.task_creation import (
    DuplicateCandidate,
    HardNegativeCandidate,
    duplicate_merge_tasks_create,
    hard_negative_tasks_create,
    image_verification_tasks_create,
    synthetic_validation_tasks_create,
)
from annotation.services.catalog_import import catalog_import

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
# The marks of every browser test module (``pytestmark = BROWSER_TEST``): a live server needs real commits.
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (/usr/bin/chromium or on PATH)"),
]
SOURCE = "demo"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import expect, sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    expect.set_options(timeout=10_000)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def review_settings(settings) -> None:
    """The page never pauses for idling, and no heartbeat fires in the middle of a test."""
    settings.REVIEW_IDLE_SECONDS = 3600
    settings.REVIEW_HEARTBEAT_SECONDS = 600
    settings.REVIEW_LEASE_SECONDS = 120
    settings.REVIEW_HELD_TASKS = 2


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$TWIN_SCREENSHOTS`` when set (to look at them), else the test's tmp_path."""
    folder = Path(os.environ.get("TWIN_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def new_context(browser, live_server) -> Iterator[Callable]:
    """``new_context(user=None)``: a fresh browser context, signed in as ``user`` when one is given (through a
    session cookie; the login form has its own test)."""
    contexts = []

    def make(user=None):
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(10_000)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
            context.add_cookies(
                [{"name": cookie.key, "value": cookie.value, "url": live_server.url, "httpOnly": True}]
            )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(new_context) -> Callable:
    def make(user=None):
        return new_context(user).new_page()

    return make


# --- the catalog and the tasks ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> DemoCatalog:
    return demo_catalog_make(
        output_dir=tmp_path_factory.mktemp("browser") / "catalog", instances=12, seed=3, image_size=96
    )


class Catalog:
    """The imported demo catalog, and makers of review tasks over it (one decision each, no gold)."""

    def __init__(self) -> None:
        self.products = list(Product.objects.filter(source=SOURCE).order_by("external_id"))
        # One product of each instance, in catalog order: distinct objects to pair up.
        seen: set[int] = set()
        self.instances: list[Instance] = []
        for product in self.products:
            if product.instance_id not in seen:
                seen.add(product.instance_id)
                self.instances.append(product.instance)
        for kind in TaskKind.values:
            ReviewQueue.objects.update_or_create(
                kind=kind, defaults={"required_decisions": 1, "gold_rate": 0}
            )

    def image_tasks(self, count: int) -> list[ReviewTask]:
        """Tasks for the first image of ``count`` products."""
        images = [
            Image.objects.filter(product=product).order_by("position", "pk").first()
            for product in self.products[:count]
        ]
        ids = image_verification_tasks_create(images=Image.objects.filter(pk__in=[i.pk for i in images]))
        assert len(ids) == count
        return list(ReviewTask.objects.filter(pk__in=ids).order_by("pk"))

    def duplicate_tasks(self, pairs: list[tuple[Product, Product]]) -> list[ReviewTask]:
        candidates = [
            DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk, flagged_pairs=_flagged(a, b), priority=0)
            for a, b in pairs
        ]
        ids = duplicate_merge_tasks_create(candidates=candidates)
        assert len(ids) == len(pairs)
        return list(ReviewTask.objects.filter(pk__in=ids).order_by("pk"))

    def hard_negative_tasks(self, pairs: list[tuple[Instance, Instance]]) -> list[ReviewTask]:
        candidates = []
        for a, b in pairs:
            first_a = Image.objects.filter(product__instance=a).order_by("pk").first()
            first_b = Image.objects.filter(product__instance=b).order_by("pk").first()
            candidates.append(
                HardNegativeCandidate(
                    instance_id=a.pk,
                    candidate_instance_id=b.pk,
                    flagged_pairs=[(first_a.pk, first_b.pk, 0.91)],
                )
            )
        ids = hard_negative_tasks_create(candidates=candidates)
        assert len(ids) == len(pairs)
        return list(ReviewTask.objects.filter(pk__in=ids).order_by("pk"))

    def synthetic_tasks(self, instances: list[Instance]) -> list[ReviewTask]:
        """A generated image per instance (a mirrored copy of one of its photos), and a task for each."""
        made = [generated_image_make(instance) for instance in instances]
        ids = synthetic_validation_tasks_create(images=Image.objects.filter(pk__in=[i.pk for i in made]))
        assert len(ids) == len(instances)
        return list(ReviewTask.objects.filter(pk__in=ids).order_by("pk"))


def _flagged(a: Product, b: Product) -> list[tuple[int, int, float]]:
    first_a = Image.objects.filter(product=a).order_by("position", "pk").first()
    first_b = Image.objects.filter(product=b).order_by("position", "pk").first()
    return [(first_a.pk, first_b.pk, 0.94)]


def generated_image_make(instance: Instance) -> Image:
    real = Image.objects.filter(product__instance=instance).order_by("position", "pk").first()
    with real.file.open("rb") as handle:
        picture = ImageOps.mirror(PILImage.open(handle).convert("RGB"))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    content = buffer.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    return Image.objects.create(
        origin=Image.Origin.GENERATED,
        product=None,
        generated_for=instance,
        file=ContentFile(content, name=f"{digest}.jpg"),
        sha256=digest,
        width=picture.width,
        height=picture.height,
    )


@pytest.fixture
def catalog(transactional_db, demo_files: DemoCatalog) -> Catalog:
    catalog_import(manifest_path=demo_files.manifest_path, images_root=demo_files.images_root, source=SOURCE)
    made = Catalog()
    assert len(made.instances) >= 8, "the demo catalog should have enough distinct objects to pair up"
    return made


@pytest.fixture
def gpu_worker(monkeypatch, settings):
    """A worker for the gpu queue: ``gpu_worker(task)`` makes each message of the task run in a thread, as a
    worker process would run it, so a launch request returns at once and the page watches the run happen."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    threads: list[threading.Thread] = []

    def serve(task) -> None:
        def deliver(args, queue):
            thread = threading.Thread(target=task.apply, kwargs={"args": args})
            threads.append(thread)
            thread.start()

        monkeypatch.setattr(task, "apply_async", deliver)

    yield serve
    for thread in threads:
        thread.join(timeout=300)
