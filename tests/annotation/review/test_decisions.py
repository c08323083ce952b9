"""Submitting decisions (idempotent, under the lease), overlap and agreement, adjudication, undo, gold."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Image, ReviewDecision, ReviewStatus, ReviewTask
from annotation.review.decisions import (
    MAX_DURATION_MS,
    DecisionConflict,
    DecisionRejected,
    UndoRejected,
    review_decision_submit,
    review_decision_undo,
    review_task_adjudicate,
)
from annotation.review.leases import review_task_release, review_tasks_claim, review_tasks_held
from annotation.review.task_creation import gold_task_create
from tests.annotation.review.conftest import DUPLICATES, IMAGES
from tests.factories import AnnotatorFactory

pytestmark = pytest.mark.django_db


def ids(tasks) -> list[int]:
    return [task.pk for task in tasks]


def claim(annotator, hold: int | None = None) -> list[ReviewTask]:
    return review_tasks_claim(annotator=annotator, kind=IMAGES, hold=hold)


def submit(annotator, task: ReviewTask, action: str = "keep", key=None, **options):
    return review_decision_submit(
        annotator=annotator,
        task_id=task.pk,
        submission_key=task.lease_token if key is None else key,
        action=action,
        **options,
    )


def rejection(call) -> str:
    with pytest.raises(DecisionRejected) as rejected:
        call()
    return rejected.value.code


def image_status(task: ReviewTask) -> str:
    return Image.objects.get(pk=task.image_id).review_status


# --- submitting ----------------------------------------------------------------------------------------------


def test_submit_records_the_decision_and_ends_the_lease(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    result = submit(alice, task, "reject_unclear", duration_ms=1234)
    decision = result.decision
    assert result.replayed is False
    assert (decision.task_id, decision.kind, decision.annotator, decision.action) == (
        task.pk,
        IMAGES,
        alice,
        "reject_unclear",
    )
    assert (decision.verdict, decision.reason, decision.duration_ms) == ("reject_image", "unclear", 1234)
    assert decision.submission_key == task.lease_token
    assert (decision.is_gold, decision.is_correct, decision.is_adjudication) == (False, None, False)
    task.refresh_from_db()
    assert (task.leased_by, task.lease_token, task.leased_at, task.lease_expires_at) == (None,) * 4
    assert (task.decision_count, task.status, task.outcome, task.outcome_reason) == (
        1,
        ReviewTask.Status.DECIDED,
        "reject_image",
        "unclear",
    )
    assert task.resolved_at is not None


def test_submitting_the_same_key_twice_records_one_decision(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    key = task.lease_token
    first = submit(alice, task)
    again = submit(alice, task, key=str(key))  # a retried request sends the key as text
    assert (first.replayed, again.replayed) == (False, True)
    assert again.decision.pk == first.decision.pk
    assert ReviewDecision.objects.count() == 1
    task.refresh_from_db()
    assert task.decision_count == 1
    # The same key with another answer (a second tab) is a conflict: refused, the first answer stands.
    with pytest.raises(DecisionConflict) as conflict:
        submit(alice, task, "reject_unclear", key=key)
    assert conflict.value.recorded.pk == first.decision.pk and conflict.value.can_change is True
    assert ReviewDecision.objects.count() == 1


@pytest.mark.parametrize("key", ["not-a-uuid", ""])
def test_a_wrong_token_loses_the_lease(alice, image_tasks, key):
    image_tasks(1)
    (task,) = claim(alice)
    assert rejection(lambda: submit(alice, task, key=key)) == "lease_lost"
    assert ReviewDecision.objects.count() == 0
    task.refresh_from_db()
    assert task.leased_by == alice and task.decision_count == 0


def test_an_old_token_of_a_task_held_again_counts_under_the_current_lease(alice, image_tasks):
    """An old page (the task came back to the annotator since, e.g. after a skip in another tab): same card."""
    image_tasks(1)
    (old,) = claim(alice)
    review_task_release(annotator=alice, task_id=old.pk)
    (new,) = claim(alice)
    assert new.lease_token != old.lease_token
    result = submit(alice, old, "reject_unclear")
    assert result.replayed is False and result.decision.submission_key == new.lease_token
    assert submit(alice, new, "reject_unclear").replayed is True  # the current page's copy of the same answer
    with pytest.raises(DecisionConflict):
        submit(alice, new, "keep")
    assert ReviewDecision.objects.count() == 1


def test_an_old_token_loses_the_lease(alice, bob, image_tasks):
    image_tasks(1)
    (new,) = claim(alice)
    # A lapsed lease taken over by someone else: the old holder's answer is refused, the new one's counts.
    ReviewTask.objects.filter(pk=new.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    (bobs,) = claim(bob)
    assert rejection(lambda: submit(alice, new)) == "lease_lost"
    assert rejection(lambda: submit(alice, bobs)) == "lease_lost"  # bob's token, alice's request
    submit(bob, bobs)
    assert list(ReviewDecision.objects.values_list("annotator__username", flat=True)) == ["bob"]


def test_an_unknown_action_is_refused_and_the_lease_kept(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    assert rejection(lambda: submit(alice, task, "same")) == "invalid_action"  # the duplicate queue's
    assert rejection(lambda: submit(alice, task, "skip")) == "invalid_action"
    assert ReviewDecision.objects.count() == 0
    assert submit(alice, task, "keep").replayed is False


def test_another_annotators_key_is_not_yours(alice, bob, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    submit(alice, task)
    assert rejection(lambda: submit(bob, task)) == "not_yours"
    assert ReviewDecision.objects.count() == 1


def test_a_task_that_is_gone_or_closed_is_refused(alice, image_tasks):
    first, second = image_tasks(2)
    held = claim(alice)
    ReviewTask.objects.filter(pk=first.pk).delete()
    assert rejection(lambda: submit(alice, held[0])) == "closed"
    ReviewTask.objects.filter(pk=second.pk).update(status=ReviewTask.Status.OBSOLETE)
    assert rejection(lambda: submit(alice, held[1])) == "closed"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (None, None),
        (0, 0),
        (2500, 2500),
        (-40, 0),
        (MAX_DURATION_MS + 1, MAX_DURATION_MS),
        (10**12, MAX_DURATION_MS),
    ],
)
def test_the_duration_is_capped(alice, image_tasks, given, stored):
    image_tasks(1)
    (task,) = claim(alice)
    assert submit(alice, task, duration_ms=given).decision.duration_ms == stored


# --- overlap and agreement ---------------------------------------------------------------------------------------


@pytest.fixture
def annotators(db):
    return [AnnotatorFactory(username=f"reviewer{n}") for n in range(4)]


def decide_in_turn(annotators, task: ReviewTask, actions: list[str]) -> None:
    for annotator, action in zip(annotators, actions, strict=False):
        held = review_tasks_claim(annotator=annotator, kind=task.kind, hold=1)
        assert ids(held) == [task.pk]
        submit(annotator, held[0], action)


@pytest.mark.parametrize("required", [2, 3])
def test_an_overlap_task_stays_open_until_it_has_every_decision(annotators, image_tasks, required):
    (task,) = image_tasks(1, required_decisions=required)
    assert task.required_decisions == required
    decide_in_turn(annotators, task, ["keep"] * (required - 1))
    task.refresh_from_db()
    assert (task.status, task.decision_count, task.outcome) == (ReviewTask.Status.OPEN, required - 1, "")
    assert image_status(task) == ReviewStatus.PENDING
    decide_in_turn(annotators[required - 1 :], task, ["keep"])
    task.refresh_from_db()
    assert (task.status, task.decision_count, task.outcome) == (ReviewTask.Status.DECIDED, required, "keep")
    assert image_status(task) == ReviewStatus.ACCEPTED
    assert review_tasks_claim(annotator=annotators[3], kind=IMAGES) == []


@pytest.mark.parametrize("required", [2, 3])
def test_agreeing_verdicts_with_different_reasons_apply_the_most_common_reason(
    annotators, image_tasks, required
):
    (task,) = image_tasks(1, required_decisions=required)
    actions = ["reject_not_object", "reject_unclear", "reject_unclear"][-required:]
    decide_in_turn(annotators, task, actions)
    task.refresh_from_db()
    assert (task.status, task.outcome, task.outcome_reason) == (
        ReviewTask.Status.DECIDED,
        "reject_image",
        "unclear",
    )
    image = Image.objects.get(pk=task.image_id)
    assert (image.review_status, image.rejection_reason) == (ReviewStatus.REJECTED, "unclear")


@pytest.mark.parametrize("required", [2, 3])
def test_disagreeing_verdicts_go_to_adjudication_and_change_nothing(annotators, image_tasks, required):
    (task,) = image_tasks(1, required_decisions=required)
    decide_in_turn(annotators, task, ["keep"] * (required - 1) + ["reject_product_inconsistent"])
    task.refresh_from_db()
    assert (task.status, task.decision_count, task.outcome, task.outcome_effects) == (
        ReviewTask.Status.NEEDS_ADJUDICATION,
        required,
        "",
        {},
    )
    image = Image.objects.select_related("product").get(pk=task.image_id)
    assert image.review_status == image.product.review_status == ReviewStatus.PENDING
    assert review_tasks_claim(annotator=annotators[3], kind=IMAGES) == []


def test_adjudication_applies_the_researchers_verdict(annotators, researcher, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    decide_in_turn(annotators, task, ["keep", "reject_unclear"])
    adjudicated = review_task_adjudicate(researcher=researcher, task_id=task.pk, action="reject_not_object")
    assert (adjudicated.status, adjudicated.outcome, adjudicated.outcome_reason) == (
        ReviewTask.Status.DECIDED,
        "reject_image",
        "not_object",
    )
    image = Image.objects.get(pk=task.image_id)
    assert (image.review_status, image.rejection_reason) == (ReviewStatus.REJECTED, "not_object")
    ruling = ReviewDecision.objects.get(is_adjudication=True)
    assert (ruling.annotator, ruling.task_id, ruling.verdict) == (researcher, task.pk, "reject_image")
    task.refresh_from_db()
    assert task.decision_count == 2  # the ruling is not one of the overlap's decisions
    # Settled: a second ruling is refused.
    with pytest.raises(DecisionRejected) as rejected:
        review_task_adjudicate(researcher=researcher, task_id=task.pk, action="keep")
    assert rejected.value.code == "closed"


def test_only_a_disputed_task_can_be_adjudicated_and_only_with_an_answer_of_its_queue(
    annotators, researcher, image_tasks
):
    first, second = image_tasks(2, required_decisions=2)
    with pytest.raises(DecisionRejected) as rejected:
        review_task_adjudicate(researcher=researcher, task_id=first.pk, action="keep")
    assert rejected.value.code == "closed"
    decide_in_turn(annotators, first, ["keep", "reject_unclear"])
    with pytest.raises(DecisionRejected) as rejected:
        review_task_adjudicate(researcher=researcher, task_id=first.pk, action="different")
    assert rejected.value.code == "invalid_action"
    first.refresh_from_db()
    assert first.status == ReviewTask.Status.NEEDS_ADJUDICATION
    assert not ReviewDecision.objects.filter(is_adjudication=True).exists()


# --- undo --------------------------------------------------------------------------------------------------------


def test_undo_reverts_the_outcome_and_gives_the_task_back_first_in_line(alice, image_tasks):
    tasks = image_tasks(3)
    first, second = claim(alice)
    decision = submit(alice, first).decision
    assert image_status(first) == ReviewStatus.ACCEPTED
    assert ids(claim(alice)) == ids(tasks[1:])
    result = review_decision_undo(annotator=alice, kind=IMAGES)
    assert result.decision.pk == decision.pk and result.held_again is True
    decision.refresh_from_db()
    assert decision.undone_at is not None
    first.refresh_from_db()
    assert (first.status, first.decision_count, first.outcome, first.outcome_effects) == (
        ReviewTask.Status.OPEN,
        0,
        "",
        {},
    )
    assert first.resolved_at is None
    assert image_status(first) == ReviewStatus.PENDING
    again = claim(alice)
    assert ids(again) == [first.pk, tasks[1].pk, tasks[2].pk]
    # Answered anew under its new lease; the old key still finds the withdrawn decision and changes nothing.
    assert again[0].lease_token != decision.submission_key
    replay = submit(alice, first, key=decision.submission_key)
    assert replay.replayed is True and replay.decision.pk == decision.pk
    assert submit(alice, again[0], "reject_unclear").replayed is False
    first.refresh_from_db()
    assert (first.status, first.outcome, first.decision_count) == (
        ReviewTask.Status.DECIDED,
        "reject_image",
        1,
    )
    assert ReviewDecision.objects.filter(task=first, undone_at=None).count() == 1


def test_repeated_undo_walks_back_through_my_decisions(alice, bob, image_tasks):
    tasks = image_tasks(3)
    decisions = []
    for _ in tasks:
        (task,) = claim(alice, hold=1)
        decisions.append(submit(alice, task).decision)
    bob_task = image_tasks(1)[0]
    (held,) = claim(bob, hold=1)
    submit(bob, held)
    undone = [review_decision_undo(annotator=alice, kind=IMAGES).decision.pk for _ in tasks]
    assert undone == [decision.pk for decision in reversed(decisions)]
    with pytest.raises(UndoRejected):
        review_decision_undo(annotator=alice, kind=IMAGES)
    # The most recently undone is shown first, so walking back shows the tasks in their old order again.
    assert ids(review_tasks_held(annotator=alice, kind=IMAGES)) == ids(tasks)
    assert all(image_status(task) == ReviewStatus.PENDING for task in tasks)
    # Bob's decision is his own.
    assert image_status(bob_task) == ReviewStatus.ACCEPTED


def test_undo_with_nothing_to_undo_is_refused(alice, bob, image_tasks):
    with pytest.raises(UndoRejected, match="no decision"):
        review_decision_undo(annotator=alice, kind=IMAGES)
    image_tasks(1)
    (task,) = claim(bob)
    submit(bob, task)
    with pytest.raises(UndoRejected):
        review_decision_undo(annotator=alice, kind=IMAGES)
    # A decision in another queue is not undone from this one.
    with pytest.raises(UndoRejected):
        review_decision_undo(annotator=bob, kind=DUPLICATES)


def test_undo_after_adjudication_is_refused(annotators, researcher, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    decide_in_turn(annotators, task, ["keep", "reject_unclear"])
    review_task_adjudicate(researcher=researcher, task_id=task.pk, action="keep")
    for annotator in annotators[:2]:
        with pytest.raises(UndoRejected, match="adjudicated"):
            review_decision_undo(annotator=annotator, kind=IMAGES)
    with pytest.raises(UndoRejected):  # a ruling is not undone from the queue either
        review_decision_undo(annotator=researcher, kind=IMAGES)
    task.refresh_from_db()
    assert (task.status, task.outcome) == (ReviewTask.Status.DECIDED, "keep")
    assert image_status(task) == ReviewStatus.ACCEPTED


def test_undo_of_a_disputed_decision_reopens_the_task(annotators, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    decide_in_turn(annotators, task, ["keep", "reject_unclear"])
    result = review_decision_undo(annotator=annotators[1], kind=IMAGES)
    assert result.held_again is True
    task.refresh_from_db()
    assert (task.status, task.decision_count, task.leased_by) == (ReviewTask.Status.OPEN, 1, annotators[1])
    (again,) = claim(annotators[1])
    submit(annotators[1], again, "keep")
    task.refresh_from_db()
    assert (task.status, task.outcome) == (ReviewTask.Status.DECIDED, "keep")


def test_undo_while_another_annotator_holds_the_task_withdraws_the_decision_only(alice, bob, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    (held,) = claim(alice)
    submit(alice, held)
    (bobs,) = claim(bob)
    result = review_decision_undo(annotator=alice, kind=IMAGES)
    assert result.held_again is False
    task.refresh_from_db()
    assert (task.decision_count, task.leased_by, task.lease_token) == (0, bob, bobs.lease_token)
    assert claim(alice) == []
    submit(bob, bobs)
    (alices,) = claim(alice)
    submit(alice, alices)
    task.refresh_from_db()
    assert (task.status, task.decision_count) == (ReviewTask.Status.DECIDED, 2)


def test_undo_takes_back_a_task_whose_new_holder_let_the_lease_lapse(alice, bob, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    (held,) = claim(alice)
    submit(alice, held)
    claim(bob)
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert review_decision_undo(annotator=alice, kind=IMAGES).held_again is True
    assert ids(claim(alice)) == [task.pk]
    assert review_tasks_held(annotator=bob, kind=IMAGES) == []


# --- gold ----------------------------------------------------------------------------------------------------


def test_gold_decisions_are_marked_correct_or_not_and_change_nothing(
    annotators, image_tasks, configure_queue
):
    regular = image_tasks(2)
    gold = gold_task_create(task=regular[0], answer="reject_image")
    configure_queue(IMAGES, gold_rate=1.0)
    results = {}
    for annotator, action in zip(
        annotators[:3], ["reject_unclear", "keep", "reject_not_object"], strict=True
    ):
        held = review_tasks_claim(annotator=annotator, kind=IMAGES, hold=1)
        assert ids(held) == [gold.pk]
        results[action] = submit(annotator, held[0], action).decision
    assert {action: d.is_correct for action, d in results.items()} == {
        "reject_unclear": True,
        "keep": False,
        "reject_not_object": True,
    }
    assert all(decision.is_gold for decision in results.values())
    gold.refresh_from_db()
    assert (gold.status, gold.decision_count, gold.outcome) == (ReviewTask.Status.OPEN, 3, "")
    assert image_status(gold) == ReviewStatus.PENDING
    # Regular decisions carry no correctness.
    (task,) = review_tasks_claim(annotator=annotators[3], kind=IMAGES, hold=1)
    assert task.is_gold is True
    submit(annotators[3], task)
    (task,) = review_tasks_claim(annotator=annotators[3], kind=IMAGES, hold=1)
    decision = submit(annotators[3], task).decision
    assert (decision.is_gold, decision.is_correct) == (False, None)
