"""What one answer costs the database: the review page's decide request, with the next card claimed and
rendered, stays within ``MAX_QUERIES`` whatever the queue.

Counted over the whole HTTP request, sign-in included, once the caches are warm (the user, their session,
permissions and keys, the queue's settings: read once, then from the cache). The test's own transaction turns
the request's transaction into a savepoint; those two statements don't exist in a real request and are left out.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import ReviewDecision, ReviewQueue, ReviewTask
from annotation.review.queues import QUEUE_SLUGS
from tests.annotation.review.conftest import DUPLICATES, HARD_NEGATIVES, IMAGES, SYNTHETIC
from tests.factories import AnnotatorFactory, ImageFactory, ProductFactory

pytestmark = pytest.mark.django_db

MAX_QUERIES = 8
CARD = re.compile(r'data-task="(\d+)" data-key="([0-9a-f-]+)"')


def _tasks(kind: str, count: int, image_tasks, duplicate_task, hard_negative_task, synthetic_task) -> None:
    if kind == IMAGES:
        image_tasks(count)
    elif kind == DUPLICATES:
        for _ in range(count):
            a, b = ProductFactory(), ProductFactory()
            ImageFactory(product=a), ImageFactory(product=b)
            duplicate_task(a, b)
    elif kind == HARD_NEGATIVES:
        for _ in range(count):
            a, b = ProductFactory(), ProductFactory()
            ImageFactory(product=a), ImageFactory(product=b)
            hard_negative_task(a.instance, b.instance)
    else:
        for _ in range(count):
            ImageFactory(product=(product := ProductFactory()))
            synthetic_task(product.instance)


def _answer(client, slug: str, task: str, key: str, action: str, have: str):
    url = reverse("review:decide", args=[slug])
    return client.post(url, {"task": task, "key": key, "action": action, "duration_ms": "900", "have": have})


def _counted(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (IMAGES, "keep"),  # the product is still pending: its first kept image accepts it too
        (IMAGES, "reject_unclear"),
        (HARD_NEGATIVES, "hard_negative"),
        (HARD_NEGATIVES, "too_easy"),
        (SYNTHETIC, "keep"),
        (DUPLICATES, "different"),
    ],
)
def test_an_answer_and_the_next_card_cost_at_most_eight_queries(
    client, kind, action, image_tasks, duplicate_task, hard_negative_task, synthetic_task
):
    _tasks(kind, 6, image_tasks, duplicate_task, hard_negative_task, synthetic_task)
    ReviewQueue.objects.filter(kind=kind).update(gold_rate=0.0)
    client.force_login(AnnotatorFactory())
    slug = QUEUE_SLUGS[kind]
    page = client.get(reverse("review:queue", args=[slug])).content.decode()
    (first, first_key), (second, second_key) = CARD.findall(page)[:2]
    # The first answer fills the caches; the second is what every answer after it costs.
    assert _answer(client, slug, first, first_key, action, have=second).json()["ok"]
    with CaptureQueriesContext(connection) as queries:
        response = _answer(client, slug, second, second_key, action, have="")
    data = response.json()
    assert response.status_code == 200 and data["ok"] and data["replayed"] is False
    assert len(CARD.findall(data["cards"])) == 2  # the next card, rendered (the page said it had none)
    assert ReviewDecision.objects.filter(task_id=second, action=action).count() == 1
    counted = _counted(queries)
    assert len(counted) <= MAX_QUERIES, "\n".join(counted)


def test_the_count_does_not_grow_with_the_queue_or_the_decisions(client, image_tasks):
    image_tasks(400)
    client.force_login(AnnotatorFactory())
    page = client.get(reverse("review:queue", args=["images"])).content.decode()
    cards = CARD.findall(page)
    counts = []
    for _ in range(30):
        (task, key), (other, _) = cards[:2]
        with CaptureQueriesContext(connection) as queries:
            data = _answer(client, "images", task, key, "keep", have=other).json()
        counts.append(len(_counted(queries)))
        cards = [cards[1], *CARD.findall(data["cards"])]
    assert max(counts[1:]) <= MAX_QUERIES
    assert ReviewTask.objects.filter(status=ReviewTask.Status.DECIDED).count() == 30
