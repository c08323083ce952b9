"""Handing out review tasks under short leases.

An annotator holds at most ``REVIEW_HELD_TASKS`` tasks of a queue (the card on screen and the next one,
prefetched). A lease lasts ``REVIEW_LEASE_SECONDS`` and the open review page renews it with a heartbeat; a
lease that lapsed is free for anyone to claim. Every claim ends in one conditional UPDATE of the task row
("set the holder where the task is open and nobody holds it"), so whatever the database, a task is held by
one annotator at most. On PostgreSQL the candidate row is picked with ``FOR UPDATE SKIP LOCKED``, so
concurrent claimers never queue behind each other; SQLite serializes writers anyway. Either way the pick and
the take are one statement.
"""

import functools
import random
import re
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, Lookup, OuterRef, Q, QuerySet
from django.utils import timezone

from annotation.models import ReviewDecision, ReviewQueue, ReviewSkip, ReviewTask

# The lease fields of a task nobody holds.
NO_LEASE = {"leased_by": None, "lease_token": None, "leased_at": None, "lease_expires_at": None}


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def lease_is_free_q(now) -> Q:
    return Q(leased_by__isnull=True) | Q(lease_expires_at__lt=now)


def review_queue_get(*, kind: str) -> ReviewQueue:
    queue, _ = ReviewQueue.objects.get_or_create(kind=kind)
    return queue


def review_queue_gold_rate(*, kind: str) -> float:
    """The queue's gold rate, read once per ``GOLD_RATE_TTL_SECONDS`` by each process, not on every claim.

    A researcher's change in the admin reaches this process at once (``review_queue_settings_forget``, on
    save) and the other processes within the TTL: a few seconds of the old mix of gold tasks is harmless.
    """
    now = time.monotonic()
    cached = _gold_rates.get(kind)
    if cached is None or cached[0] < now:
        cached = (now + GOLD_RATE_TTL_SECONDS, review_queue_get(kind=kind).gold_rate)
        _gold_rates[kind] = cached
    return cached[1]


GOLD_RATE_TTL_SECONDS = 10.0
_gold_rates: dict[str, tuple[float, float]] = {}


def review_queue_settings_forget() -> None:
    _gold_rates.clear()


def review_tasks_held(*, annotator: AbstractBaseUser, kind: str) -> list[ReviewTask]:
    """The open tasks this annotator holds in the queue, in the order they are shown (oldest lease first).

    A lease that lapsed still counts while nobody else took the task: coming back after a break shows
    the same card.
    """
    return list(
        ReviewTask.objects.filter(kind=kind, leased_by=annotator, status=ReviewTask.Status.OPEN).order_by(
            "leased_at", "id"
        )
    )


def review_tasks_claim(
    *, annotator: AbstractBaseUser, kind: str, hold: int | None = None
) -> list[ReviewTask]:
    """Tops up the annotator's held tasks to ``hold`` and returns them all, in showing order."""
    hold = settings.REVIEW_HELD_TASKS if hold is None else hold
    # Renew first, then read: what is read is held, with its renewed expiry.
    ReviewTask.objects.filter(kind=kind, leased_by=annotator, status=ReviewTask.Status.OPEN).update(
        lease_expires_at=timezone.now() + lease_duration()
    )
    held = review_tasks_held(annotator=annotator, kind=kind)
    if len(held) >= hold:
        return held
    gold_rate = review_queue_gold_rate(kind=kind)
    while len(held) < hold:
        task = review_task_claim_one(annotator=annotator, kind=kind, gold_rate=gold_rate)
        if task is None:
            break
        held.append(task)
    return held


def review_tasks_replace_decided(
    *, annotator: AbstractBaseUser, kind: str, related: tuple[str, ...] = ()
) -> list[ReviewTask]:
    """After the annotator answered a card they held: claims one task in its place and returns the held ones.

    The review page's decide path, in the decision's transaction. It spends two queries where
    ``review_tasks_claim`` spends four: the answer freed exactly one of the annotator's places, so one claim
    refills it without counting first (with two tabs answering at once each refills its own place), and the
    held tasks are read once, with ``related`` (what their cards show) joined in. Leases are renewed by the
    page's heartbeat, not here.
    """
    _claim_next(annotator=annotator, kind=kind, gold_rate=review_queue_gold_rate(kind=kind), fetch=False)
    return list(
        ReviewTask.objects.filter(kind=kind, leased_by=annotator, status=ReviewTask.Status.OPEN)
        .select_related(*related)
        .order_by("leased_at", "id")
    )


def review_task_claim_one(
    *, annotator: AbstractBaseUser, kind: str, gold_rate: float = 0.0
) -> ReviewTask | None:
    """Leases one more task: a gold task with probability ``gold_rate`` (while any is left), else the next one.

    Gold tasks are only mixed in: when the regular tasks run out, the queue is empty.
    """
    return _claim_next(annotator=annotator, kind=kind, gold_rate=gold_rate, fetch=True)


def _claim_next(*, annotator: AbstractBaseUser, kind: str, gold_rate: float, fetch: bool):
    if gold_rate > 0 and random.random() < gold_rate:
        regular_left = claimable_tasks(
            annotator=annotator, kind=kind, gold=False, now=timezone.now()
        ).exists()
        task = _claim(annotator=annotator, kind=kind, gold=True, fetch=fetch) if regular_left else None
        if task:
            return task
    return _claim(annotator=annotator, kind=kind, gold=False, fetch=fetch)


class _EqualsConstant(Lookup):
    """``column = <constant>`` with the constant written into the SQL, not sent as a parameter.

    The claim query must walk ``review_task_claimable_idx``: (kind, is_gold, priority, id) over the rows with
    ``status = 'open'``. SQLite only uses a partial index when the query repeats the index's condition as
    written; Django's ``status = ?`` is planned without the value, so SQLite scanned the whole table and
    sorted it on every claim (seconds with a million tasks). And Django writes ``is_gold=False`` as
    ``NOT is_gold``, which is no index equality for SQLite: it would still sort. PostgreSQL reads both
    forms alike. Only for constants of this module, never for anything a user sends.
    """

    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs_sql, params = compiler.compile(self.lhs)
        return f"{lhs_sql} = {_sql_constant(self.rhs)}", params


def _sql_constant(value: str | bool) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # SQLite knows the keywords since 3.23; Django needs 3.31
    if not re.fullmatch(r"[a-z_]+", value):
        raise ValueError(f"not a constant to write into SQL: {value!r}")
    return f"'{value}'"


def claimable_tasks(*, annotator: AbstractBaseUser, kind: str, gold: bool, now) -> QuerySet[ReviewTask]:
    """Open tasks of the queue that nobody holds and this annotator hasn't decided or skipped."""
    mine_decided = ReviewDecision.objects.filter(task=OuterRef("pk"), annotator=annotator, undone_at=None)
    mine_skipped = ReviewSkip.objects.filter(task=OuterRef("pk"), annotator=annotator)
    return (
        ReviewTask.objects.filter(
            _EqualsConstant(F("status"), str(ReviewTask.Status.OPEN)),
            _EqualsConstant(F("is_gold"), bool(gold)),
            kind=kind,
        )
        .filter(lease_is_free_q(now))
        .filter(~Exists(mine_decided), ~Exists(mine_skipped))
        .order_by("priority", "id")
    )


def _claim(
    *, annotator: AbstractBaseUser, kind: str, gold: bool, fetch: bool = True
) -> ReviewTask | bool | None:
    """Leases the first claimable task. ``fetch``: return it (one more query), else whether one was taken.

    One statement picks and takes the task: UPDATE ... WHERE id = (<first claimable> LIMIT 1). The scalar
    subquery runs once (an InitPlan); "id IN (...)" may be re-run per row, and then a re-run that sees the first
    row already taken picks a second one, so one claim would lease two tasks. On PostgreSQL the pick is FOR
    UPDATE SKIP LOCKED, so concurrent claimers pass over each other's rows instead of queueing on the same one;
    SQLite runs the statement under its write lock, so what it picks is free at that instant. (Reading a
    candidate first and updating it after went stale on SQLite while the claimer waited for the lock, and cost
    PostgreSQL two more round trips per claim.)
    """
    now = timezone.now()
    token = uuid.uuid4()
    fields = {
        name: ReviewTask._meta.get_field(name) for name in ("lease_token", "leased_at", "lease_expires_at")
    }
    stamp = fields["leased_at"].get_db_prep_value(now, connection)
    params = [
        annotator.pk,
        fields["lease_token"].get_db_prep_value(token, connection),
        stamp,
        fields["lease_expires_at"].get_db_prep_value(now + lease_duration(), connection),
        kind,
        stamp,
        annotator.pk,
        annotator.pk,
        stamp,
    ]
    # No savepoint inside the decide path's transaction: the statement either takes the row or changes nothing.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(gold=gold, skip_locked=connection.features.has_select_for_update_skip_locked), params
        )
        taken = cursor.rowcount
    if not fetch:
        return taken == 1
    if taken != 1:
        return None
    return ReviewTask.objects.get(leased_by=annotator, lease_token=token)


@functools.cache
def _claim_sql(*, gold: bool, skip_locked: bool) -> str:
    """The claim statement: ``claimable_tasks`` written out once as SQL.

    Compiling the ORM's form of this statement on every claim cost more CPU than running it (a profile of the
    decide request put it at a fifth of an answer). The constants are written in, not sent as parameters, so
    SQLite uses the partial index ``review_task_claimable_idx`` (see ``_EqualsConstant``); the tests of the
    leases run through it, and one checks that it takes what ``claimable_tasks`` lists first.
    """
    task, decision, skip = (model._meta.db_table for model in (ReviewTask, ReviewDecision, ReviewSkip))
    open_status = _sql_constant(str(ReviewTask.Status.OPEN))
    return (
        f"UPDATE {task} SET leased_by_id = %s, lease_token = %s, leased_at = %s, lease_expires_at = %s "
        f"WHERE id = (SELECT candidate.id FROM {task} candidate "
        f"WHERE candidate.status = {open_status} AND candidate.is_gold = {_sql_constant(gold)} "
        "AND candidate.kind = %s "
        "AND (candidate.leased_by_id IS NULL OR candidate.lease_expires_at < %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {decision} mine WHERE mine.annotator_id = %s "
        "AND mine.task_id = candidate.id AND mine.undone_at IS NULL) "
        f"AND NOT EXISTS (SELECT 1 FROM {skip} skipped WHERE skipped.annotator_id = %s "
        "AND skipped.task_id = candidate.id) "
        "ORDER BY candidate.priority, candidate.id LIMIT 1"
        f"{' FOR UPDATE OF candidate SKIP LOCKED' if skip_locked else ''}) "
        f"AND status = {open_status} AND (leased_by_id IS NULL OR lease_expires_at < %s)"
    )


def review_leases_renew(*, annotator: AbstractBaseUser, kind: str, task_ids: list[int]) -> list[int]:
    """The heartbeat: extends the leases the annotator still has among ``task_ids``; returns those ids.

    The ids missing from the answer were taken over by someone else after the lease lapsed (or were closed):
    the page drops their cards and says so.
    """
    now = timezone.now()
    tasks = ReviewTask.objects.filter(
        pk__in=task_ids, kind=kind, leased_by=annotator, status=ReviewTask.Status.OPEN
    )
    tasks.update(lease_expires_at=now + lease_duration())
    return sorted(tasks.values_list("pk", flat=True))


def review_task_release(*, annotator: AbstractBaseUser, task_id: int) -> bool:
    """Gives a held task back to the queue at once (instead of letting its lease run out)."""
    released = ReviewTask.objects.filter(pk=task_id, leased_by=annotator).update(**NO_LEASE)
    return released == 1


@transaction.atomic
def review_task_skip(*, annotator: AbstractBaseUser, task_id: int) -> bool:
    """Releases the task and keeps it from being served to this annotator again. Repeating it is harmless."""
    task = ReviewTask.objects.filter(pk=task_id).first()
    if task is None:
        return False
    ReviewSkip.objects.get_or_create(task=task, annotator=annotator)
    review_task_release(annotator=annotator, task_id=task_id)
    return True


def review_skips_clear(*, annotator: AbstractBaseUser, kind: str) -> int:
    """Lets the queue serve the annotator's skipped tasks again."""
    deleted, _ = ReviewSkip.objects.filter(annotator=annotator, task__kind=kind).delete()
    return deleted


def review_leases_expired_clear() -> int:
    """Clears lapsed leases, so "in progress" counts are true. Claims don't need it: they ignore lapsed leases."""
    return ReviewTask.objects.filter(leased_by__isnull=False, lease_expires_at__lt=timezone.now()).update(
        **NO_LEASE
    )
