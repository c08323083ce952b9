"""With Redis down (the cache at a port nobody listens on, the broker refusing messages), the site stays up: an
annotator signs in and works a review queue, the API answers, and a researcher's freeze is recorded as a queued
job that the job monitor sends once the broker is back."""

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from annotation import tasks as annotation_tasks
from annotation.models import ReviewDecision, ReviewQueue
from annotation.review.task_creation import image_verification_tasks_create
from jobs.models import Job
from tests.annotation.review.test_views import _held_cards
from tests.factories import AnnotatorFactory, ApiUserFactory, ImageFactory

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
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
