"""Reads for the dashboards: queue sizes, an annotator's own progress, everyone's figures, and agreement."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from annotation.models import ReviewDecision, ReviewTask
from annotation.review.queues import QUEUE_SLUGS, QUEUES

# The pace shown to an annotator covers their recent work, not their whole history.
PACE_WINDOW = timedelta(hours=1)


@dataclass
class QueueCounts:
    kind: str
    title: str
    slug: str
    open: int = 0
    in_progress: int = 0
    needs_adjudication: int = 0
    decided: int = 0
    obsolete: int = 0
    gold: int = 0


def queue_counts() -> list[QueueCounts]:
    """Per queue: open regular tasks, tasks held right now, disputes, decided tasks and gold tasks."""
    now = timezone.now()
    counts = {kind: QueueCounts(kind, QUEUES[kind].title, QUEUE_SLUGS[kind]) for kind in QUEUES}
    rows = ReviewTask.objects.values("kind", "status", "is_gold").annotate(
        total=Count("id"), held=Count("id", filter=Q(leased_by__isnull=False, lease_expires_at__gte=now))
    )
    for row in rows:
        queue = counts.get(row["kind"])
        if queue is None:
            continue
        if row["is_gold"]:
            queue.gold += row["total"]
            continue
        queue.in_progress += row["held"]
        if row["status"] == ReviewTask.Status.OPEN:
            queue.open += row["total"]
        elif row["status"] == ReviewTask.Status.NEEDS_ADJUDICATION:
            queue.needs_adjudication += row["total"]
        elif row["status"] == ReviewTask.Status.DECIDED:
            queue.decided += row["total"]
        else:
            queue.obsolete += row["total"]
    return list(counts.values())


@dataclass
class AnnotatorFigures:
    """One annotator's figures, overall or in one queue."""

    user_id: int
    username: str = ""
    decisions: int = 0
    decisions_today: int = 0
    undone: int = 0
    seconds_on_cards: float = 0.0
    recent_decisions: int = 0
    recent_seconds: float = 0.0
    gold_answered: int = 0
    gold_correct: int = 0
    agreed: int = 0  # decisions on multi-annotator tasks that matched the final outcome
    compared: int = 0
    per_queue: dict[str, "AnnotatorFigures"] = field(default_factory=dict)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None

    @property
    def decisions_per_minute(self) -> float | None:
        """Recent decisions per minute of time spent on cards (the last hour of work)."""
        return self.recent_decisions / (self.recent_seconds / 60) if self.recent_seconds >= 1 else None

    @property
    def seconds_per_decision(self) -> float | None:
        return self.seconds_on_cards / self.decisions if self.decisions else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def annotator_figures(*, user: AbstractBaseUser | None = None) -> list[AnnotatorFigures]:
    """Figures per annotator (just ``user`` when given), each with a breakdown per queue."""
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    recent = now - PACE_WINDOW
    decisions = ReviewDecision.objects.filter(is_adjudication=False)
    if user is not None:
        decisions = decisions.filter(annotator=user)
    live = Q(undone_at=None)
    rows = decisions.values("annotator_id", "kind").annotate(
        decisions=Count("id", filter=live),
        today=Count("id", filter=live & Q(created_at__gte=today)),
        undone=Count("id", filter=Q(undone_at__isnull=False)),
        milliseconds=Sum("duration_ms", filter=live),
        recent=Count("id", filter=live & Q(created_at__gte=recent)),
        recent_milliseconds=Sum("duration_ms", filter=live & Q(created_at__gte=recent)),
        gold=Count("id", filter=live & Q(is_gold=True)),
        gold_correct=Count("id", filter=live & Q(is_gold=True, is_correct=True)),
    )
    # Agreement with the final outcome, on tasks that more than one person answered.
    agreement_rows = (
        decisions.filter(live, task__required_decisions__gt=1, task__status=ReviewTask.Status.DECIDED)
        .values("annotator_id", "kind")
        .annotate(compared=Count("id"), agreed=Count("id", filter=Q(verdict=F("task__outcome"))))
    )
    agreement = {(row["annotator_id"], row["kind"]): row for row in agreement_rows}

    figures: dict[int, AnnotatorFigures] = {}
    for row in rows:
        person = figures.setdefault(row["annotator_id"], AnnotatorFigures(row["annotator_id"]))
        queue = AnnotatorFigures(
            row["annotator_id"],
            decisions=row["decisions"],
            decisions_today=row["today"],
            undone=row["undone"],
            seconds_on_cards=(row["milliseconds"] or 0) / 1000,
            recent_decisions=row["recent"],
            recent_seconds=(row["recent_milliseconds"] or 0) / 1000,
            gold_answered=row["gold"],
            gold_correct=row["gold_correct"],
        )
        matched = agreement.get((row["annotator_id"], row["kind"]))
        if matched:
            queue.compared, queue.agreed = matched["compared"], matched["agreed"]
        person.per_queue[row["kind"]] = queue
        for name in (
            "decisions",
            "decisions_today",
            "undone",
            "seconds_on_cards",
            "recent_decisions",
            "recent_seconds",
            "gold_answered",
            "gold_correct",
            "compared",
            "agreed",
        ):
            setattr(person, name, getattr(person, name) + getattr(queue, name))
    names = dict(get_user_model().objects.filter(pk__in=figures).values_list("pk", "username"))
    for person in figures.values():
        person.username = names.get(person.user_id, f"user {person.user_id}")
        for queue in person.per_queue.values():
            queue.username = person.username
    return sorted(figures.values(), key=lambda person: person.username)


def annotator_figures_for(user: AbstractBaseUser) -> AnnotatorFigures:
    found = annotator_figures(user=user)
    return found[0] if found else AnnotatorFigures(user.pk, username=user.get_username())


@dataclass
class QueueAgreement:
    kind: str
    title: str
    tasks: int = 0  # tasks with two or more decisions, all in
    unanimous: int = 0
    disputed_open: int = 0  # waiting for adjudication now
    kappa: float | None = None  # Fleiss' kappa over those tasks

    @property
    def unanimous_share(self) -> float | None:
        return self.unanimous / self.tasks if self.tasks else None


def queue_agreement() -> list[QueueAgreement]:
    """Agreement per queue over tasks answered by several annotators: the share that agreed, and Fleiss' kappa
    (agreement beyond chance). Kappa is computed per number of raters and weighted by task count."""
    result = {kind: QueueAgreement(kind, QUEUES[kind].title) for kind in QUEUES}
    statuses = [ReviewTask.Status.DECIDED, ReviewTask.Status.NEEDS_ADJUDICATION]
    rows = (
        ReviewDecision.objects.filter(
            undone_at=None,
            is_adjudication=False,
            is_gold=False,
            task__required_decisions__gt=1,
            task__status__in=statuses,
        )
        .values("task_id", "kind", "verdict")
        .annotate(n=Count("id"))
        .order_by()
    )
    tables: dict[str, dict[int, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for row in rows.iterator(chunk_size=5000):
        tables[row["kind"]][row["task_id"]][row["verdict"]] += row["n"]
    for kind, tasks in tables.items():
        if kind not in result:
            continue
        agreement = result[kind]
        agreement.tasks = len(tasks)
        agreement.unanimous = sum(1 for votes in tasks.values() if len(votes) == 1)
        agreement.kappa = _fleiss_kappa(list(tasks.values()))
    disputed = (
        ReviewTask.objects.filter(status=ReviewTask.Status.NEEDS_ADJUDICATION)
        .values("kind")
        .annotate(n=Count("id"))
    )
    for row in disputed:
        if row["kind"] in result:
            result[row["kind"]].disputed_open = row["n"]
    return list(result.values())


def _fleiss_kappa(tasks: list[Counter]) -> float | None:
    by_raters: dict[int, list[Counter]] = defaultdict(list)
    for votes in tasks:
        raters = sum(votes.values())
        if raters >= 2:
            by_raters[raters].append(votes)
    weighted, total = 0.0, 0
    for raters, group in by_raters.items():
        categories = Counter()
        for votes in group:
            categories.update(votes)
        observed = sum(
            (sum(n * n for n in votes.values()) - raters) / (raters * (raters - 1)) for votes in group
        ) / len(group)
        count = raters * len(group)
        expected = sum((n / count) ** 2 for n in categories.values())
        if expected >= 1.0:
            continue  # everyone always gave the same answer: kappa is undefined
        weighted += (observed - expected) / (1 - expected) * len(group)
        total += len(group)
    return weighted / total if total else None
