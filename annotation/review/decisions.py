"""Decisions on review tasks: submit (idempotent, conflicts said), change, undo my last one, and adjudicate.

A decision answers the lease it was made under: its ``submission_key`` is the task's lease token, unique in
the table. Sending the same answer twice (a retried request, a second tab, the back button) finds the first
row and changes nothing. A *different* answer to a task the annotator has already answered is a conflict: it
is refused with what was recorded, by whom and when, and the annotator may keep that or change it
(``review_decision_change``: the recorded decision is withdrawn and the new one replaces it, both kept).
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import ReviewDecision, ReviewTask
from annotation.review.leases import NO_LEASE, lease_duration, review_tasks_held
from annotation.review.outcomes import OutcomeRevertError, outcome_apply, outcome_revert
from annotation.review.queues import Action, queue_definition

# Time on a card above this is a coffee break, not work: stored capped so per-minute rates stay honest.
MAX_DURATION_MS = 30 * 60 * 1000


class DecisionRejected(Exception):
    """The decision can't be recorded. ``code``: lease_lost, closed, invalid_action, not_yours, conflict,
    cannot_change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DecisionConflict(DecisionRejected):
    """Another answer is already recorded for this task: ``recorded`` says which, by whom and when.

    ``can_change``: the annotator may replace it with their new answer (it is their own, the task is not
    closed by another task or adjudicated)."""

    def __init__(self, message: str, *, recorded: ReviewDecision, can_change: bool) -> None:
        super().__init__("conflict", message)
        self.recorded = recorded
        self.can_change = can_change


class UndoRejected(Exception):
    """There is nothing to undo, or undoing it is no longer possible; the message says why."""


@dataclass(frozen=True)
class SubmitResult:
    decision: ReviewDecision
    replayed: bool  # True: this answer had been recorded before; nothing changed now


def review_decision_submit(
    *,
    annotator: AbstractBaseUser,
    task_id: int,
    submission_key: uuid.UUID | str,
    action: str,
    duration_ms: int | None = None,
) -> SubmitResult:
    """Records the annotator's answer to the task they hold under ``submission_key``.

    Runs in the caller's transaction when there is one (the review page records the answer and claims the
    next card in one), else in its own. The task row is locked first, so two copies of one submission are
    serialized and the second finds the first's row.
    """
    try:
        submission_key = uuid.UUID(str(submission_key))
    except ValueError:
        raise DecisionRejected(
            "lease_lost", "This card's lease token is not valid; reload the page."
        ) from None
    # No savepoint (two statements per answer on the busiest path): a refusal is raised only after the block,
    # so it never marks a caller's transaction as broken, and it is decided before anything is written.
    with transaction.atomic(savepoint=False):
        outcome = _submit(
            annotator=annotator,
            task_id=task_id,
            submission_key=submission_key,
            action=action,
            duration_ms=duration_ms,
        )
    if isinstance(outcome, DecisionRejected):
        raise outcome
    return outcome


def _task_locked(task_id: int) -> ReviewTask | None:
    # The image and its product come along: the image queue's outcome reads them, and it is the busiest queue.
    # No ORDER BY or LIMIT (``first()`` adds both): one row by its key, and one less clause to compile.
    found = (
        ReviewTask.objects.select_for_update(of=("self",)).select_related("image__product").filter(pk=task_id)
    )
    return next(iter(found.order_by()), None)


def _task_and_answer(task_id: int, action: str) -> tuple[ReviewTask, Action] | DecisionRejected:
    """The task, locked, and the answer of its queue that ``action`` names; or why there is none."""
    task = _task_locked(task_id)
    if task is None:
        return DecisionRejected("closed", "This task no longer exists.")
    chosen = queue_definition(task.kind).action(action)
    if chosen is None:
        return DecisionRejected("invalid_action", f"{action!r} is not an answer of the {task.kind} queue.")
    return task, chosen


def _submit(
    *,
    annotator: AbstractBaseUser,
    task_id: int,
    submission_key: uuid.UUID,
    action: str,
    duration_ms: int | None,
) -> SubmitResult | DecisionRejected:
    """The answer recorded or replayed, or why not (returned, not raised: see the caller)."""
    found = _task_and_answer(task_id, action)
    if isinstance(found, DecisionRejected):
        return found
    task, chosen = found
    held_by_me = task.status == ReviewTask.Status.OPEN and task.leased_by_id == annotator.pk
    if held_by_me and task.lease_token == submission_key:
        # The usual case: the card on screen, under its current lease. No decision can carry this key yet: a
        # decision ends its lease, and a new lease gets a new token.
        return SubmitResult(_record(task, annotator, chosen, submission_key, duration_ms), replayed=False)

    # Everything else: a resend, a second tab, an old page, a lease that went to someone else.
    earlier = list(
        ReviewDecision.objects.filter(task=task, is_adjudication=False)
        .filter(Q(submission_key=submission_key) | Q(annotator=annotator, undone_at=None))
        .select_related("annotator")
    )
    by_key = next((d for d in earlier if d.submission_key == submission_key), None)
    if by_key is not None and by_key.annotator_id != annotator.pk:
        return DecisionRejected("not_yours", "This lease belongs to another annotator.")
    if by_key is not None and by_key.undone_at is not None and by_key.action == chosen.code:
        # This very answer was recorded and then undone: sending it again must not bring it back.
        return SubmitResult(by_key, replayed=True)
    mine = next((d for d in earlier if d.annotator_id == annotator.pk and d.undone_at is None), None)
    if mine is not None:
        if mine.action == chosen.code:
            return SubmitResult(mine, replayed=True)
        return DecisionConflict(
            f"You already answered task #{task.pk}: {_label(mine)} is recorded.",
            recorded=mine,
            can_change=_change_refusal(task) is None,
        )
    if held_by_me:
        # The same task under a newer lease (it came back to this annotator, e.g. after an undo or a skip in
        # another tab): the card is the same, so the answer counts, under the current lease.
        return SubmitResult(_record(task, annotator, chosen, task.lease_token, duration_ms), replayed=False)
    if task.status == ReviewTask.Status.OPEN:
        return DecisionRejected(
            "lease_lost",
            f"Task #{task.pk} was handed to someone else after your lease ran out; your answer was not needed.",
        )
    if task.status in (ReviewTask.Status.DECIDED, ReviewTask.Status.NEEDS_ADJUDICATION):
        others = (
            ReviewDecision.objects.filter(task=task, undone_at=None)
            .exclude(verdict=chosen.verdict)
            .select_related("annotator")
            .order_by("-is_adjudication", "created_at", "id")
            .first()
        )
        if others is not None:
            return DecisionConflict(
                f"Task #{task.pk} was decided by {others.annotator.get_username()} while your lease ran out: "
                f"{_label(others)} is recorded.",
                recorded=others,
                can_change=False,
            )
    return DecisionRejected("closed", f"Task #{task.pk} was closed meanwhile; your answer was not needed.")


def _record(
    task: ReviewTask,
    annotator: AbstractBaseUser,
    chosen: Action,
    submission_key: uuid.UUID,
    duration_ms: int | None,
    *,
    replaces: ReviewDecision | None = None,
) -> ReviewDecision:
    """Inserts the decision, ends the lease and, once the task has every decision it needs, resolves it."""
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
        replaces=replaces,
    )
    if replaces is None:
        task.decision_count += 1
    fields = ["decision_count"]
    if task.leased_by_id == annotator.pk:
        for field, value in NO_LEASE.items():
            setattr(task, field, value)
        fields += list(NO_LEASE)
    if not task.is_gold and task.decision_count >= task.required_decisions:
        _resolve(task, user=annotator, latest=decision)
        fields += ["status", "outcome", "outcome_reason", "outcome_effects", "resolved_at"]
    task.save(update_fields=fields)
    return decision


def _label(decision: ReviewDecision) -> str:
    return f"“{queue_definition(decision.kind).action_label(decision.action)}”"


def _change_refusal(task: ReviewTask) -> str | None:
    """Why the annotator's answer to ``task`` can no longer be changed, or None."""
    if task.status == ReviewTask.Status.OBSOLETE:
        return f"Task #{task.pk} was closed by task #{task.obsoleted_by_id} since."
    if task.decisions.filter(is_adjudication=True, undone_at=None).exists():
        return f"A researcher has adjudicated task #{task.pk}; ask them to change it."
    return None


@dataclass(frozen=True)
class ChangeResult:
    decision: ReviewDecision  # the standing decision now
    replaced: ReviewDecision | None  # the one it replaced; None when the recorded answer was already this one


@transaction.atomic
def review_decision_change(
    *, annotator: AbstractBaseUser, task_id: int, decision_id: int, action: str
) -> ChangeResult:
    """Replaces the annotator's recorded answer ``decision_id`` on the task with ``action``.

    What the conflict dialog's "change" does: an undo of the recorded decision (its outcome reverted) and a new
    decision, in one transaction. The old row keeps its ``undone_at``; the new one points at it (``replaces``).
    Sending it twice changes once: the second finds the new answer standing.
    """
    found = _task_and_answer(task_id, action)
    if isinstance(found, DecisionRejected):
        raise found
    task, chosen = found
    recorded = ReviewDecision.objects.filter(pk=decision_id, task=task, is_adjudication=False).first()
    if recorded is None or recorded.annotator_id != annotator.pk:
        raise DecisionRejected("not_yours", "Only your own answer can be changed here.")
    if recorded.undone_at is not None:
        standing = ReviewDecision.objects.filter(
            replaces=recorded, annotator=annotator, undone_at=None, action=chosen.code
        ).first()
        if standing is not None:
            return ChangeResult(standing, replaced=None)  # this change was made already
        raise DecisionRejected("cannot_change", f"That answer to task #{task.pk} was withdrawn since.")
    if recorded.action == chosen.code:
        return ChangeResult(recorded, replaced=None)
    refusal = _change_refusal(task)
    if refusal is not None:
        raise DecisionRejected("cannot_change", refusal)
    if task.status == ReviewTask.Status.DECIDED:
        try:
            outcome_revert(task=task, user=annotator)
        except OutcomeRevertError as exc:
            raise DecisionRejected("cannot_change", f"Task #{task.pk} can't be changed: {exc}.") from exc
    recorded.undone_at = timezone.now()
    recorded.save(update_fields=["undone_at"])
    task.status = ReviewTask.Status.OPEN
    task.outcome = task.outcome_reason = ""
    task.outcome_effects = {}
    task.resolved_at = None
    task.save(update_fields=["status", "outcome", "outcome_reason", "outcome_effects", "resolved_at"])
    decision = _record(task, annotator, chosen, uuid.uuid4(), None, replaces=recorded)
    return ChangeResult(decision, replaced=recorded)


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
