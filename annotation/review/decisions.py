"""Decisions on review tasks: submit (idempotent), undo my last one, and adjudicate disagreements.

A decision answers the lease it was made under: its ``submission_key`` is the task's lease token, unique in
the table. Sending the same decision twice (a double click, a retried request, the back button) finds the
first row and changes nothing.
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import ReviewDecision, ReviewTask
from annotation.review.leases import NO_LEASE, lease_duration, review_tasks_held
from annotation.review.outcomes import OutcomeRevertError, outcome_apply, outcome_revert
from annotation.review.queues import queue_definition

# Time on a card above this is a coffee break, not work: stored capped so per-minute rates stay honest.
MAX_DURATION_MS = 30 * 60 * 1000


class DecisionRejected(Exception):
    """The decision can't be recorded. ``code``: lease_lost, closed, invalid_action, not_yours."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UndoRejected(Exception):
    """There is nothing to undo, or undoing it is no longer possible; the message says why."""


@dataclass(frozen=True)
class SubmitResult:
    decision: ReviewDecision
    replayed: bool  # True: this submission had been recorded before; nothing changed now


def review_decision_submit(
    *,
    annotator: AbstractBaseUser,
    task_id: int,
    submission_key: uuid.UUID | str,
    action: str,
    duration_ms: int | None = None,
) -> SubmitResult:
    try:
        submission_key = uuid.UUID(str(submission_key))
    except ValueError:
        raise DecisionRejected(
            "lease_lost", "This card's lease token is not valid; reload the page."
        ) from None
    try:
        return _submit(
            annotator=annotator,
            task_id=task_id,
            submission_key=submission_key,
            action=action,
            duration_ms=duration_ms,
        )
    except IntegrityError:
        # Two copies of one submission raced past the first check; the other one won.
        existing = ReviewDecision.objects.filter(submission_key=submission_key, annotator=annotator).first()
        if existing is None:
            raise
        return SubmitResult(existing, replayed=True)


@transaction.atomic
def _submit(
    *,
    annotator: AbstractBaseUser,
    task_id: int,
    submission_key: uuid.UUID,
    action: str,
    duration_ms: int | None,
) -> SubmitResult:
    task = ReviewTask.objects.select_for_update().filter(pk=task_id).first()
    # Checked under the task's row lock: a twin request that committed while this one waited is found here.
    replay = _replay(annotator=annotator, submission_key=submission_key)
    if replay is not None:
        return replay
    if task is None:
        raise DecisionRejected("closed", "This task no longer exists.")

    chosen = queue_definition(task.kind).action(action)
    if chosen is None:
        raise DecisionRejected("invalid_action", f"{action!r} is not an answer of the {task.kind} queue.")
    # A closed task says so first: closing it (e.g. rejecting its product) also clears its lease.
    if task.status != ReviewTask.Status.OPEN:
        raise DecisionRejected("closed", f"Task #{task.pk} was closed meanwhile; your answer was not needed.")
    if task.leased_by_id != annotator.pk or task.lease_token != submission_key:
        raise DecisionRejected(
            "lease_lost",
            f"Task #{task.pk} was handed to someone else after your lease ran out; your answer was not needed.",
        )

    decision = ReviewDecision.objects.create(
        task=task,
        kind=task.kind,
        annotator=annotator,
        action=chosen.code,
        verdict=chosen.verdict,
        reason=chosen.reason,
        submission_key=submission_key,
        duration_ms=None if duration_ms is None else max(0, min(int(duration_ms), MAX_DURATION_MS)),
        is_gold=task.is_gold,
        is_correct=(chosen.verdict == task.gold_answer) if task.is_gold else None,
    )
    task.decision_count += 1
    for field, value in NO_LEASE.items():
        setattr(task, field, value)
    fields = ["decision_count", *NO_LEASE]
    if not task.is_gold and task.decision_count >= task.required_decisions:
        _resolve(task, user=annotator, latest=decision)
        fields += ["status", "outcome", "outcome_reason", "outcome_effects", "resolved_at"]
    task.save(update_fields=fields)
    return SubmitResult(decision, replayed=False)


def _replay(*, annotator: AbstractBaseUser, submission_key: uuid.UUID) -> SubmitResult | None:
    existing = ReviewDecision.objects.filter(submission_key=submission_key).first()
    if existing is None:
        return None
    if existing.annotator_id != annotator.pk:
        raise DecisionRejected("not_yours", "This lease belongs to another annotator.")
    return SubmitResult(existing, replayed=True)


def _resolve(task: ReviewTask, *, user: AbstractBaseUser | None, latest: ReviewDecision) -> None:
    """All decisions in: apply the agreed verdict, or send the task to adjudication."""
    if task.decision_count == 1:
        decisions = [latest]  # the usual case (no overlap) needs no second look at the table
    else:
        decisions = list(
            ReviewDecision.objects.filter(task=task, undone_at=None, is_adjudication=False).order_by(
                "created_at", "id"
            )
        )
    verdicts = {decision.verdict for decision in decisions}
    if len(verdicts) > 1:
        task.status = ReviewTask.Status.NEEDS_ADJUDICATION
        return
    reasons = Counter(decision.reason for decision in decisions if decision.reason)
    _outcome_set(
        task, verdict=decisions[0].verdict, reason=reasons.most_common(1)[0][0] if reasons else "", user=user
    )


def _outcome_set(task: ReviewTask, *, verdict: str, reason: str, user: AbstractBaseUser | None) -> None:
    task.outcome_effects = outcome_apply(task=task, verdict=verdict, reason=reason, user=user)
    task.status = ReviewTask.Status.DECIDED
    task.outcome = verdict
    task.outcome_reason = reason
    task.resolved_at = timezone.now()


@dataclass(frozen=True)
class UndoResult:
    decision: ReviewDecision
    task: ReviewTask
    held_again: bool  # False: the task went on to someone else, the decision is withdrawn all the same


@transaction.atomic
def review_decision_undo(*, annotator: AbstractBaseUser, kind: str) -> UndoResult:
    """Withdraws the annotator's latest decision in the queue and gives the task back to them, first in line."""
    decision = (
        ReviewDecision.objects.select_for_update()
        .filter(annotator=annotator, kind=kind, undone_at=None, is_adjudication=False)
        .order_by("-created_at", "-id")
        .first()
    )
    if decision is None:
        raise UndoRejected("There is no decision of yours to undo in this queue.")
    task = ReviewTask.objects.select_for_update().get(pk=decision.task_id)
    if task.status == ReviewTask.Status.OBSOLETE:
        raise UndoRejected(
            f"Task #{task.pk} was closed by task #{task.obsoleted_by_id} since; it can't be reopened."
        )
    if task.decisions.filter(is_adjudication=True, undone_at=None).exists():
        raise UndoRejected(f"A researcher has adjudicated task #{task.pk}; ask them to change it.")
    if task.status == ReviewTask.Status.DECIDED:
        try:
            outcome_revert(task=task, user=annotator)
        except OutcomeRevertError as exc:
            raise UndoRejected(f"Task #{task.pk} can't be undone: {exc}.") from exc

    now = timezone.now()
    decision.undone_at = now
    decision.save(update_fields=["undone_at"])
    task.decision_count = max(0, task.decision_count - 1)
    task.status = ReviewTask.Status.OPEN
    task.outcome = task.outcome_reason = ""
    task.outcome_effects = {}
    task.resolved_at = None
    fields = ["decision_count", "status", "outcome", "outcome_reason", "outcome_effects", "resolved_at"]
    held_again = task.leased_by_id in (None, annotator.pk) or (
        task.lease_expires_at is not None and task.lease_expires_at < now
    )
    if held_again:
        # Shown before the cards the annotator already holds: it is the one they want to see again.
        held = review_tasks_held(annotator=annotator, kind=kind)
        first = min((t.leased_at for t in held if t.leased_at and t.pk != task.pk), default=now)
        task.leased_by = annotator
        task.lease_token = uuid.uuid4()
        task.leased_at = min(now, first - timedelta(milliseconds=1))
        task.lease_expires_at = now + lease_duration()
        fields += list(NO_LEASE)
    task.save(update_fields=fields)
    return UndoResult(decision=decision, task=task, held_again=held_again)


@transaction.atomic
def review_task_adjudicate(*, researcher: AbstractBaseUser, task_id: int, action: str) -> ReviewTask:
    """A researcher settles a disagreement: their verdict is applied as the task's outcome."""
    task = ReviewTask.objects.select_for_update().get(pk=task_id)
    if task.status != ReviewTask.Status.NEEDS_ADJUDICATION:
        raise DecisionRejected(
            "closed", f"Task #{task.pk} is {task.get_status_display().lower()}, not disputed."
        )
    chosen = queue_definition(task.kind).action(action)
    if chosen is None:
        raise DecisionRejected("invalid_action", f"{action!r} is not an answer of the {task.kind} queue.")
    ReviewDecision.objects.create(
        task=task,
        kind=task.kind,
        annotator=researcher,
        action=chosen.code,
        verdict=chosen.verdict,
        reason=chosen.reason,
        is_adjudication=True,
    )
    _outcome_set(task, verdict=chosen.verdict, reason=chosen.reason, user=researcher)
    task.save(update_fields=["status", "outcome", "outcome_reason", "outcome_effects", "resolved_at"])
    return task
