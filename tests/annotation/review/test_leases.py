"""Handing out review tasks: serving order, leases, heartbeats, release, skip and gold mixing."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from annotation.models import ReviewSkip, ReviewTask
from annotation.review import leases
from annotation.review.decisions import DecisionRejected, review_decision_submit
from annotation.review.leases import (
    review_leases_expired_clear,
    review_leases_renew,
    review_skips_clear,
    review_task_release,
    review_task_skip,
    review_tasks_claim,
    review_tasks_held,
)
from annotation.review.task_creation import gold_task_create
from tests.annotation.review.conftest import DUPLICATES, IMAGES
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def ids(tasks) -> list[int]:
    return [task.pk for task in tasks]


def claim(annotator, hold: int | None = None, kind: str = IMAGES) -> list[ReviewTask]:
    return review_tasks_claim(annotator=annotator, kind=kind, hold=hold)


def lapse(*tasks: ReviewTask) -> None:
    """Moves the leases of ``tasks`` into the past, as if the holder's page went away."""
    ReviewTask.objects.filter(pk__in=ids(tasks)).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def submit(annotator, task: ReviewTask, action: str = "keep"):
    return review_decision_submit(
        annotator=annotator, task_id=task.pk, submission_key=task.lease_token, action=action
    )


# --- serving order and holding ----------------------------------------------------------------------------


def test_claim_serves_held_tasks_by_priority_then_creation_order(settings, alice, image_tasks):
    later = image_tasks(2, priority=5)
    first = image_tasks(2, priority=-1)
    middle = image_tasks(1, priority=0)
    held = claim(alice)
    assert len(held) == settings.REVIEW_HELD_TASKS == 2
    assert ids(held) == ids(first)
    settings.REVIEW_HELD_TASKS = 4
    assert ids(claim(alice)) == ids(first) + ids(middle) + ids(later[:1])


def test_claim_leases_each_task_to_the_annotator(settings, alice, image_tasks):
    image_tasks(2)
    before = timezone.now()
    held = claim(alice)
    tokens = {task.lease_token for task in held}
    assert len(tokens) == 2 and None not in tokens
    for task in held:
        assert task.leased_by == alice
        assert before <= task.leased_at <= timezone.now()
        assert task.lease_expires_at == task.leased_at + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def test_a_second_annotator_never_gets_a_task_the_first_holds(alice, bob, carol, image_tasks):
    tasks = image_tasks(3)
    alice_held = claim(alice)
    bob_held = claim(bob)
    assert ids(alice_held) == ids(tasks[:2])
    assert ids(bob_held) == ids(tasks[2:])
    assert claim(carol) == []
    # Claiming again doesn't take anything from the others either.
    assert ids(claim(bob)) == ids(tasks[2:])


def test_claiming_again_returns_the_same_tasks_in_the_same_order(alice, image_tasks):
    tasks = image_tasks(4)
    first = claim(alice)
    again = claim(alice)
    assert ids(again) == ids(first) == ids(tasks[:2])
    assert [task.lease_token for task in again] == [task.lease_token for task in first]
    assert ids(review_tasks_held(annotator=alice, kind=IMAGES)) == ids(first)
    # Answering the card on screen: the next one moves up and a new one is prefetched behind it.
    submit(alice, first[0])
    assert ids(claim(alice)) == ids(tasks[1:3])


def test_a_reload_renews_the_held_leases(alice, image_tasks):
    image_tasks(2)
    held = claim(alice)
    lapse(*held)
    again = claim(alice)
    assert ids(again) == ids(held)
    assert all(task.lease_expires_at > timezone.now() for task in again)


def test_claim_stays_within_its_queue(alice, image_tasks, duplicate_task):
    duplicate = duplicate_task(ProductFactory(), ProductFactory())
    images = image_tasks(1)
    assert ids(claim(alice, kind=DUPLICATES)) == [duplicate.pk]
    assert ids(claim(alice)) == ids(images)


# --- lapsed leases and the heartbeat ------------------------------------------------------------------------


def test_a_lapsed_lease_is_claimable_by_another_annotator_and_the_first_loses_it(alice, bob, image_tasks):
    (task,) = image_tasks(1)
    (alice_task,) = claim(alice)
    assert claim(bob) == []
    lapse(alice_task)
    (bob_task,) = claim(bob)
    assert bob_task.pk == task.pk and bob_task.lease_token != alice_task.lease_token
    assert review_leases_renew(annotator=alice, kind=IMAGES, task_ids=[task.pk]) == []
    assert claim(alice) == []
    with pytest.raises(DecisionRejected) as rejected:
        submit(alice, alice_task)
    assert rejected.value.code == "lease_lost"
    assert submit(bob, bob_task).replayed is False


def test_leases_lapse_after_the_configured_lease_time(settings, alice, bob, image_tasks):
    settings.REVIEW_LEASE_SECONDS = 0  # every lease lapses as soon as it is handed out
    (task,) = image_tasks(1)
    assert ids(claim(alice, hold=1)) == [task.pk]
    assert ids(claim(bob, hold=1)) == [task.pk]
    assert review_leases_renew(annotator=alice, kind=IMAGES, task_ids=[task.pk]) == []


def test_a_lapsed_lease_nobody_took_is_still_mine(alice, image_tasks):
    (task,) = image_tasks(1)
    (held,) = claim(alice)
    lapse(held)
    assert review_leases_renew(annotator=alice, kind=IMAGES, task_ids=[task.pk]) == [task.pk]
    task.refresh_from_db()
    assert task.lease_expires_at > timezone.now() and task.lease_token == held.lease_token


def test_heartbeat_renews_and_returns_only_the_tasks_still_held(alice, bob, image_tasks):
    tasks = image_tasks(5)
    first, second = claim(alice)
    lapse(first, second)
    (taken,) = claim(bob, hold=1)
    assert taken.pk == first.pk
    not_mine = tasks[4]
    renewed = review_leases_renew(
        annotator=alice, kind=IMAGES, task_ids=[first.pk, second.pk, not_mine.pk, 999_999]
    )
    assert renewed == [second.pk]
    second.refresh_from_db()
    assert second.lease_expires_at > timezone.now()
    # A decided task is no longer held either, and the wrong queue renews nothing.
    submit(alice, second)
    assert review_leases_renew(annotator=alice, kind=IMAGES, task_ids=[second.pk]) == []
    (third,) = claim(alice, hold=1)
    assert review_leases_renew(annotator=alice, kind=DUPLICATES, task_ids=[third.pk]) == []


def test_expired_clear_frees_only_lapsed_leases(alice, bob, image_tasks):
    image_tasks(3)
    lapsed, live = claim(alice)
    lapse(lapsed)
    (bob_task,) = claim(bob, hold=1)
    assert bob_task.pk == lapsed.pk  # bob took the lapsed one; lapse it again to leave it to the sweep
    lapse(bob_task)
    assert review_leases_expired_clear() == 1
    assert ReviewTask.objects.get(pk=lapsed.pk).leased_by is None
    assert ReviewTask.objects.get(pk=live.pk).leased_by == alice


# --- release and skip -----------------------------------------------------------------------------------------


def test_release_gives_the_task_back_at_once(alice, bob, image_tasks):
    (task,) = image_tasks(1)
    claim(alice)
    assert review_task_release(annotator=bob, task_id=task.pk) is False  # not bob's to give back
    assert claim(bob) == []
    assert review_task_release(annotator=alice, task_id=task.pk) is True
    task.refresh_from_db()
    assert (task.leased_by, task.lease_token, task.leased_at, task.lease_expires_at) == (None,) * 4
    assert ids(claim(bob)) == [task.pk]
    assert review_task_release(annotator=alice, task_id=task.pk) is False


def test_a_skipped_task_is_not_served_to_me_again_but_is_to_others(alice, bob, image_tasks):
    first, second = image_tasks(2)
    assert ids(claim(alice, hold=1)) == [first.pk]
    assert review_task_skip(annotator=alice, task_id=first.pk) is True
    assert review_task_skip(annotator=alice, task_id=first.pk) is True  # harmless to repeat
    assert ReviewSkip.objects.filter(annotator=alice).count() == 1
    assert ids(claim(alice)) == [second.pk]
    assert ids(claim(bob)) == [first.pk]
    assert review_task_skip(annotator=alice, task_id=999_999) is False


def test_clearing_skips_serves_the_skipped_tasks_again(alice, image_tasks, duplicate_task):
    tasks = image_tasks(3)
    duplicate = duplicate_task(ProductFactory(), ProductFactory())
    for task in tasks[:2]:
        review_task_skip(annotator=alice, task_id=task.pk)
    review_task_skip(annotator=alice, task_id=duplicate.pk)
    assert ids(claim(alice)) == [tasks[2].pk]
    assert review_skips_clear(annotator=alice, kind=IMAGES) == 2
    assert ids(claim(alice, hold=3)) == [tasks[2].pk, tasks[0].pk, tasks[1].pk]
    # Only that queue's skips were cleared.
    assert claim(alice, kind=DUPLICATES) == []


def test_skipping_a_task_someone_else_holds_leaves_their_lease(alice, bob, image_tasks):
    (task,) = image_tasks(1)
    (held,) = claim(alice)
    review_task_skip(annotator=bob, task_id=task.pk)
    task.refresh_from_db()
    assert task.leased_by == alice and task.lease_token == held.lease_token


# --- decided tasks and overlap ----------------------------------------------------------------------------------


def test_a_task_i_decided_is_not_served_to_me_again_but_is_to_another_annotator(
    alice, bob, carol, image_tasks
):
    tasks = image_tasks(2, required_decisions=2)
    first, second = claim(alice)
    submit(alice, first)
    assert ids(claim(alice)) == [second.pk]
    assert ids(claim(bob, hold=1)) == [first.pk]
    (bobs,) = review_tasks_held(annotator=bob, kind=IMAGES)
    submit(bob, bobs)
    # Two decisions in: decided, served to nobody.
    assert ReviewTask.objects.get(pk=tasks[0].pk).status == ReviewTask.Status.DECIDED
    assert claim(carol) == []


def test_a_decided_task_is_served_to_nobody(alice, bob, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    submit(alice, task)
    assert claim(alice) == [] and claim(bob) == []


# --- gold tasks ----------------------------------------------------------------------------------------------------


@pytest.fixture
def gold_queue(configure_queue, image_tasks):
    """Three regular image tasks and two gold copies; returns a function that sets the gold rate."""

    def make(gold_rate: float):
        regular = image_tasks(3)
        gold = [gold_task_create(task=task, answer="keep") for task in regular[:2]]
        configure_queue(IMAGES, gold_rate=gold_rate)
        return regular, gold

    return make


def test_gold_rate_one_serves_gold_first(alice, gold_queue):
    regular, gold = gold_queue(1.0)
    assert ids(claim(alice, hold=3)) == ids(gold) + ids(regular[:1])


def test_gold_rate_zero_never_serves_gold(alice, gold_queue):
    regular, _ = gold_queue(0.0)
    assert ids(claim(alice, hold=10)) == ids(regular)


def test_gold_is_not_served_when_the_regular_tasks_have_run_out(alice, bob, gold_queue, configure_queue):
    regular, gold = gold_queue(1.0)
    for task in regular:
        review_task_skip(annotator=alice, task_id=task.pk)
    assert claim(alice) == []
    # Regular tasks that others hold are gone for me too: no gold without them.
    review_skips_clear(annotator=alice, kind=IMAGES)
    configure_queue(IMAGES, gold_rate=0.0)
    assert ids(claim(bob, hold=3)) == ids(regular)
    configure_queue(IMAGES, gold_rate=1.0)
    assert claim(alice) == []


def test_gold_is_mixed_in_with_the_queue_gold_rate(monkeypatch, alice, gold_queue):
    regular, gold = gold_queue(0.5)
    draws = iter([0.7, 0.4, 0.49, 0.5])
    monkeypatch.setattr(leases, "random", SimpleNamespace(random=lambda: next(draws)))
    assert ids(claim(alice, hold=4)) == [regular[0].pk, gold[0].pk, gold[1].pk, regular[1].pk]


def test_each_annotator_answers_a_gold_task_once(alice, bob, image_tasks, configure_queue):
    regular = image_tasks(4)
    gold = gold_task_create(task=regular[0], answer="keep")
    configure_queue(IMAGES, gold_rate=1.0)
    (alice_gold,) = claim(alice, hold=1)
    assert alice_gold.pk == gold.pk
    assert ids(claim(bob, hold=1)) == [regular[0].pk]  # alice holds the gold task
    submit(alice, alice_gold)
    gold.refresh_from_db()
    assert gold.status == ReviewTask.Status.OPEN and gold.decision_count == 1
    assert ids(claim(alice, hold=2)) == [regular[1].pk, regular[2].pk]
    assert ids(claim(bob, hold=2)) == [regular[0].pk, gold.pk]


def test_the_claim_statement_takes_what_claimable_tasks_lists_first(alice, bob, image_tasks):
    """The claim is SQL written out once (``leases._claim_sql``): it must agree with the ORM's definition of a
    claimable task, through priorities, other holders, lapsed leases, my decisions, my skips and gold."""
    tasks = image_tasks(8)
    ReviewTask.objects.filter(pk__in=ids(tasks[:4])).update(priority=5)
    gold_task_create(task=tasks[7], answer="keep")
    (bobs,) = claim(bob, hold=1)
    (decided,) = claim(alice, hold=1)
    review_decision_submit(
        annotator=alice, task_id=decided.pk, submission_key=decided.lease_token, action="keep"
    )
    (skipped,) = claim(alice, hold=1)
    review_task_skip(annotator=alice, task_id=skipped.pk)
    (lapsing,) = claim(bob, hold=2)[1:]
    lapse(lapsing)
    while True:
        expected = leases.claimable_tasks(
            annotator=alice, kind=IMAGES, gold=False, now=timezone.now()
        ).first()
        taken = leases.review_task_claim_one(annotator=alice, kind=IMAGES)
        assert (taken and taken.pk) == (expected and expected.pk)
        if taken is None:
            break
    assert {bobs.pk, decided.pk, skipped.pk}.isdisjoint(ids(review_tasks_held(annotator=alice, kind=IMAGES)))
    gold = leases.claimable_tasks(annotator=alice, kind=IMAGES, gold=True, now=timezone.now()).first()
    assert leases._claim(annotator=alice, kind=IMAGES, gold=True).pk == gold.pk
