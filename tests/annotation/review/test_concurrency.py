"""Several annotators working one queue at once, each thread on its own database connection.

On PostgreSQL a claim picks its row with ``FOR UPDATE SKIP LOCKED``; on SQLite the conditional UPDATE alone
decides. Either way: a task is held by one annotator at a time, gets exactly the decisions it needs, and a
submission sent twice at once is recorded once.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from annotation.models import Image, ReviewDecision, ReviewStatus, ReviewTask
from annotation.review.decisions import review_decision_submit
from annotation.review.leases import review_tasks_claim
from annotation.review.task_creation import image_verification_tasks_create
from tests.annotation.review.conftest import IMAGES
from tests.factories import ImageFactory, UserFactory

# Each thread commits on its own connection, so the test can't run inside one rolled-back transaction. Plain
# users: the flush after such a test drops the role groups that the annotator factory needs.
pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_SECONDS = 30


def run_in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Runs ``work(n)`` for n in range(count) in threads started together; returns what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(n: int) -> None:
        try:
            start.wait(timeout=10)
            work(n)
        except BaseException as exc:  # a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_SECONDS + 10)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"
    return errors


def make_tasks(count: int, *, required_decisions: int, configure_queue) -> list[int]:
    configure_queue(IMAGES, required_decisions=required_decisions)
    images = [ImageFactory() for _ in range(count)]
    return image_verification_tasks_create(images=Image.objects.filter(pk__in=[image.pk for image in images]))


@pytest.mark.parametrize("required", [1, 2])
def test_annotators_working_one_queue_at_once_decide_every_task_exactly_once(configure_queue, required):
    task_ids = make_tasks(30, required_decisions=required, configure_queue=configure_queue)
    annotators = [UserFactory(username=f"worker{n}") for n in range(4)]
    holders: dict[int, int] = {}  # task -> the annotator whose page shows it
    violations: list[str] = []
    submitted: list[tuple[int, int]] = []
    registry = threading.Lock()

    def work(n: int) -> None:
        me = annotators[n]
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            held = review_tasks_claim(annotator=me, kind=IMAGES)
            if not held:
                if not ReviewTask.objects.filter(kind=IMAGES, status=ReviewTask.Status.OPEN).exists():
                    return
                time.sleep(0.005)  # what is left is held by others, or decided by me already
                continue
            with registry:
                for task in held:
                    holder = holders.setdefault(task.pk, me.pk)
                    if holder != me.pk:
                        violations.append(f"task #{task.pk} held by {holder} and {me.pk}")
                # Unregistered before the answer is sent: nobody can claim it again before that commits.
                task = held[0]
                del holders[task.pk]
            review_decision_submit(
                annotator=me, task_id=task.pk, submission_key=task.lease_token, action="keep", duration_ms=1
            )
            with registry:
                submitted.append((task.pk, me.pk))
        raise TimeoutError(f"{me} still working after {DEADLINE_SECONDS}s")

    errors = run_in_threads(len(annotators), work)
    assert errors == []
    assert violations == []
    # Every answer sent was needed and recorded, once per task and annotator.
    assert len(submitted) == len(set(submitted)) == len(task_ids) * required
    decisions = ReviewDecision.objects.filter(task_id__in=task_ids, undone_at=None)
    assert decisions.count() == len(task_ids) * required
    per_task = Counter(decisions.values_list("task_id", flat=True))
    assert per_task == dict.fromkeys(task_ids, required)
    assert all(
        len(set(decisions.filter(task_id=pk).values_list("annotator_id", flat=True))) == required
        for pk in task_ids
    )
    tasks = ReviewTask.objects.filter(pk__in=task_ids)
    assert {(task.status, task.decision_count, task.outcome, task.leased_by_id) for task in tasks} == {
        (ReviewTask.Status.DECIDED, required, "keep", None)
    }
    assert set(Image.objects.values_list("review_status", flat=True)) == {ReviewStatus.ACCEPTED}
    # More than one annotator took part (the threads really ran side by side).
    assert len({annotator for _, annotator in submitted}) > 1


def test_simultaneous_claims_never_hand_out_a_task_twice(configure_queue):
    task_ids = make_tasks(10, required_decisions=1, configure_queue=configure_queue)
    annotators = [UserFactory(username=f"claimer{n}") for n in range(8)]
    claimed: dict[int, list[int]] = {}

    def work(n: int) -> None:
        claimed[n] = [task.pk for task in review_tasks_claim(annotator=annotators[n], kind=IMAGES, hold=2)]

    assert run_in_threads(len(annotators), work) == []
    handed_out = [pk for pks in claimed.values() for pk in pks]
    assert len(handed_out) == len(set(handed_out))
    assert sorted(handed_out) == sorted(task_ids)  # 8 x 2 places for 10 tasks: every task went out once
    holders = dict(ReviewTask.objects.filter(pk__in=task_ids).values_list("pk", "leased_by_id"))
    assert holders == {pk: annotators[n].pk for n, pks in claimed.items() for pk in pks}


def test_the_same_submission_sent_twice_at_once_is_recorded_once(configure_queue):
    task_ids = make_tasks(8, required_decisions=1, configure_queue=configure_queue)
    alice = UserFactory(username="alice")
    held = review_tasks_claim(annotator=alice, kind=IMAGES, hold=len(task_ids))
    assert len(held) == len(task_ids)
    results: list[tuple[int, int, bool]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for task in held:
            result = review_decision_submit(
                annotator=alice, task_id=task.pk, submission_key=str(task.lease_token), action="keep"
            )
            with lock:
                results.append((task.pk, result.decision.pk, result.replayed))

    assert run_in_threads(4, work) == []
    assert ReviewDecision.objects.count() == len(task_ids)
    for task in held:
        mine = [(decision, replayed) for pk, decision, replayed in results if pk == task.pk]
        assert len(mine) == 4
        assert len({decision for decision, _ in mine}) == 1
        assert sorted(replayed for _, replayed in mine) == [False, True, True, True]
    assert set(ReviewTask.objects.values_list("decision_count", "status")) == {(1, ReviewTask.Status.DECIDED)}
