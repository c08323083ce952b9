"""Conflicts are never silent: a different answer to a task already answered is refused with what was recorded,
by whom and when; the annotator may keep it or change it (an undo plus a new decision, both kept)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Image, ReviewDecision, ReviewStatus, ReviewTask
from annotation.review.decisions import (
    DecisionConflict,
    DecisionRejected,
    review_decision_change,
    review_decision_submit,
    review_task_adjudicate,
)
from annotation.review.leases import review_task_release, review_tasks_claim
from tests.annotation.review.conftest import IMAGES

pytestmark = pytest.mark.django_db


def claim(annotator, hold: int = 1) -> list[ReviewTask]:
    return review_tasks_claim(annotator=annotator, kind=IMAGES, hold=hold)


def submit(annotator, task_id: int, key, action: str):
    return review_decision_submit(annotator=annotator, task_id=task_id, submission_key=key, action=action)


def conflict_of(call) -> DecisionConflict:
    with pytest.raises(DecisionConflict) as raised:
        call()
    return raised.value


def image_status(task: ReviewTask) -> str:
    return Image.objects.get(pk=task.image_id).review_status


def test_a_second_tab_with_the_same_answer_is_a_replay(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    first = submit(alice, task.pk, task.lease_token, "keep")
    again = submit(alice, task.pk, task.lease_token, "keep")
    assert again.replayed is True and again.decision.pk == first.decision.pk
    assert ReviewDecision.objects.count() == 1


def test_a_second_tab_with_another_answer_is_a_conflict_that_names_what_was_recorded(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    recorded = submit(alice, task.pk, task.lease_token, "reject_unclear").decision
    conflict = conflict_of(lambda: submit(alice, task.pk, task.lease_token, "keep"))
    assert conflict.code == "conflict"
    assert conflict.recorded.pk == recorded.pk and conflict.recorded.annotator == alice
    assert conflict.can_change is True
    assert "Unclear" in str(conflict)
    assert list(ReviewDecision.objects.values_list("action", flat=True)) == ["reject_unclear"]
    assert image_status(task) == ReviewStatus.REJECTED


def test_an_old_page_with_an_older_lease_and_another_answer_is_a_conflict(alice, image_tasks):
    image_tasks(1)
    (old,) = claim(alice)
    review_task_release(annotator=alice, task_id=old.pk)  # e.g. skipped in another tab, then served again
    (new,) = claim(alice)
    submit(alice, new.pk, new.lease_token, "keep")
    conflict = conflict_of(lambda: submit(alice, old.pk, old.lease_token, "reject_unclear"))
    assert conflict.recorded.action == "keep" and conflict.can_change is True
    assert submit(alice, old.pk, old.lease_token, "keep").replayed is True  # the same answer: idempotent


def test_a_lease_that_went_to_someone_else_who_answered_otherwise_is_a_conflict_that_cannot_be_changed(
    alice, bob, image_tasks
):
    image_tasks(1)
    (task,) = claim(alice)
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    (bobs,) = claim(bob)
    submit(bob, bobs.pk, bobs.lease_token, "reject_unclear")
    conflict = conflict_of(lambda: submit(alice, task.pk, task.lease_token, "keep"))
    assert conflict.recorded.annotator == bob and conflict.can_change is False
    assert "bob" in str(conflict)
    # The same verdict as bob's: nothing to dispute, the answer was simply not needed.
    with pytest.raises(DecisionRejected) as rejected:
        submit(alice, task.pk, task.lease_token, "reject_not_object")
    assert rejected.value.code == "closed"
    assert ReviewDecision.objects.count() == 1


def test_changing_replaces_the_answer_reverts_its_outcome_and_keeps_both_rows(alice, image_tasks):
    image_tasks(1)
    (task,) = claim(alice)
    recorded = submit(alice, task.pk, task.lease_token, "reject_unclear").decision
    result = review_decision_change(annotator=alice, task_id=task.pk, decision_id=recorded.pk, action="keep")
    assert result.replaced.pk == recorded.pk
    recorded.refresh_from_db()
    assert recorded.undone_at is not None
    assert (result.decision.action, result.decision.replaces_id, result.decision.undone_at) == (
        "keep",
        recorded.pk,
        None,
    )
    task.refresh_from_db()
    assert (task.status, task.outcome, task.decision_count) == (ReviewTask.Status.DECIDED, "keep", 1)
    assert image_status(task) == ReviewStatus.ACCEPTED
    # Sent twice (a double click on "change"): changed once.
    again = review_decision_change(annotator=alice, task_id=task.pk, decision_id=recorded.pk, action="keep")
    assert again.replaced is None and again.decision.pk == result.decision.pk
    assert ReviewDecision.objects.filter(task=task, undone_at=None).count() == 1
    assert ReviewDecision.objects.filter(task=task).count() == 2


def test_changing_a_disagreement_can_settle_it(alice, bob, image_tasks):
    (task,) = image_tasks(1, required_decisions=2)
    (held,) = claim(alice)
    mine = submit(alice, held.pk, held.lease_token, "keep").decision
    (held,) = claim(bob)
    submit(bob, held.pk, held.lease_token, "reject_unclear")
    task.refresh_from_db()
    assert task.status == ReviewTask.Status.NEEDS_ADJUDICATION
    review_decision_change(annotator=alice, task_id=task.pk, decision_id=mine.pk, action="reject_not_object")
    task.refresh_from_db()
    assert (task.status, task.outcome, task.decision_count) == (ReviewTask.Status.DECIDED, "reject_image", 2)


def test_only_my_own_standing_answer_can_be_changed_and_not_after_adjudication(
    alice, bob, researcher, image_tasks
):
    (task,) = image_tasks(1, required_decisions=2)
    (held,) = claim(alice)
    mine = submit(alice, held.pk, held.lease_token, "keep").decision
    (held,) = claim(bob)
    bobs = submit(bob, held.pk, held.lease_token, "reject_unclear").decision

    def refusal(annotator, decision, action="reject_unclear") -> str:
        with pytest.raises(DecisionRejected) as rejected:
            review_decision_change(
                annotator=annotator, task_id=task.pk, decision_id=decision.pk, action=action
            )
        return rejected.value.code

    assert refusal(alice, bobs) == "not_yours"
    assert refusal(alice, mine, action="same") == "invalid_action"
    review_task_adjudicate(researcher=researcher, task_id=task.pk, action="keep")
    assert refusal(alice, mine) == "cannot_change"
    assert ReviewDecision.objects.filter(task=task, undone_at=None).count() == 3


def test_a_task_closed_by_another_task_cannot_be_changed(alice, image_tasks):
    (task,) = image_tasks(1)
    (held,) = claim(alice)
    mine = submit(alice, held.pk, held.lease_token, "keep").decision
    ReviewTask.objects.filter(pk=task.pk).update(status=ReviewTask.Status.OBSOLETE)
    conflict = conflict_of(lambda: submit(alice, task.pk, held.lease_token, "reject_unclear"))
    assert conflict.can_change is False
    with pytest.raises(DecisionRejected) as rejected:
        review_decision_change(annotator=alice, task_id=task.pk, decision_id=mine.pk, action="reject_unclear")
    assert rejected.value.code == "cannot_change"
