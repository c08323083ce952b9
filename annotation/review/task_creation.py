"""Creating review tasks: one service per queue, plus gold copies with known answers.

The mining stage calls these with its candidates; the demo and the tests call them with ground truth. Each
task has a subject key that is unique within its queue, so creating the same candidates again adds nothing
(and a pair once judged is never asked about again). Tasks are inserted in batches: mining makes millions.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.iterables import batched
from annotation.models import (
    Image,
    Instance,
    Product,
    ProductDistinction,
    ReviewStatus,
    ReviewTask,
    TaskKind,
)
from annotation.review.leases import NO_LEASE, review_queue_get
from annotation.review.queues import queue_definition

BATCH_SIZE = 2000

# A flagged image pair: (image of the first subject, image of the second, cosine similarity).
FlaggedPair = tuple[int, int, float]


@dataclass(frozen=True)
class DuplicateCandidate:
    product_a_id: int
    product_b_id: int
    flagged_pairs: list[FlaggedPair] = field(default_factory=list)
    similarity: float | None = None
    priority: int = 0
    sent_by_task_id: int | None = None  # a hard-negative task whose reviewer said "the same object"


@dataclass(frozen=True)
class HardNegativeCandidate:
    instance_id: int
    candidate_instance_id: int
    flagged_pairs: list[FlaggedPair] = field(default_factory=list)
    similarity: float | None = None
    priority: int = 0


def image_verification_tasks_create(*, images: QuerySet[Image] | None = None, priority: int = 0) -> list[int]:
    """One task per real, listed, pending image of a product that isn't rejected (default: all of them)."""
    if images is None:
        images = Image.objects.all()
    images = (
        images.filter(origin=Image.Origin.REAL, is_listed=True, review_status=ReviewStatus.PENDING)
        .exclude(product__review_status=ReviewStatus.REJECTED)
        .order_by("product_id", "position", "id")
    )
    tasks = (
        ReviewTask(
            kind=TaskKind.IMAGE_VERIFICATION, subject_key=f"image:{pk}", image_id=pk, priority=priority
        )
        for pk in images.values_list("pk", flat=True).iterator(chunk_size=BATCH_SIZE)
    )
    return _insert(TaskKind.IMAGE_VERIFICATION, tasks)


def duplicate_merge_tasks_create(*, candidates: Iterable[DuplicateCandidate]) -> list[int]:
    """Tasks for product pairs flagged as possible duplicates; pairs already one instance, or already judged
    different, are left out."""

    def tasks() -> Iterator[ReviewTask]:
        for batch in batched(candidates, BATCH_SIZE):
            product_ids = {c.product_a_id for c in batch} | {c.product_b_id for c in batch}
            instance_of = dict(Product.objects.filter(pk__in=product_ids).values_list("pk", "instance_id"))
            pairs = {tuple(sorted((c.product_a_id, c.product_b_id))) for c in batch}
            distinct = set(
                ProductDistinction.objects.filter(
                    product_a_id__in=[a for a, _ in pairs], product_b_id__in=[b for _, b in pairs]
                ).values_list("product_a_id", "product_b_id")
            )
            for candidate in batch:
                a, b = candidate.product_a_id, candidate.product_b_id
                if a == b or a not in instance_of or b not in instance_of:
                    continue
                if instance_of[a] == instance_of[b] or tuple(sorted((a, b))) in distinct:
                    continue
                flagged = [list(pair) for pair in candidate.flagged_pairs]
                if a > b:  # one key per unordered pair; the flagged pairs follow the swap
                    a, b = b, a
                    flagged = [[second, first, sim] for first, second, sim in flagged]
                payload: dict = {"flagged_pairs": flagged}
                if candidate.sent_by_task_id:
                    payload["sent_by_task"] = candidate.sent_by_task_id
                yield ReviewTask(
                    kind=TaskKind.DUPLICATE_MERGE,
                    subject_key=f"products:{a}:{b}",
                    product_a_id=a,
                    product_b_id=b,
                    similarity=_similarity(candidate.similarity, flagged),
                    payload=payload,
                    priority=candidate.priority,
                )

    return _insert(TaskKind.DUPLICATE_MERGE, tasks())


def hard_negative_tasks_create(*, candidates: Iterable[HardNegativeCandidate]) -> list[int]:
    """Tasks for shortlisted pairs of distinct instances. A pair is asked about once, whichever side
    shortlisted the other."""

    def tasks() -> Iterator[ReviewTask]:
        for batch in batched(candidates, BATCH_SIZE):
            ids = {c.instance_id for c in batch} | {c.candidate_instance_id for c in batch}
            active = set(Instance.objects.filter(pk__in=ids, merged_into=None).values_list("pk", flat=True))
            for candidate in batch:
                a, b = candidate.instance_id, candidate.candidate_instance_id
                if a == b or a not in active or b not in active:
                    continue
                low, high = sorted((a, b))
                yield ReviewTask(
                    kind=TaskKind.HARD_NEGATIVE,
                    subject_key=f"instances:{low}:{high}",
                    instance_id=a,
                    candidate_instance_id=b,
                    similarity=_similarity(candidate.similarity, candidate.flagged_pairs),
                    payload={"flagged_pairs": [list(pair) for pair in candidate.flagged_pairs]},
                    priority=candidate.priority,
                )

    return _insert(TaskKind.HARD_NEGATIVE, tasks())


def hard_negative_tasks_obsolete_merged() -> int:
    """Closes the open hard-negative tasks whose instance or candidate was merged into another since: the
    shortlist of the merged instance replaces them. Returns how many it closed."""
    merged = Q(instance__merged_into__isnull=False) | Q(candidate_instance__merged_into__isnull=False)
    return ReviewTask.objects.filter(
        merged, kind=TaskKind.HARD_NEGATIVE, status=ReviewTask.Status.OPEN, is_gold=False
    ).update(status=ReviewTask.Status.OBSOLETE, resolved_at=timezone.now(), **NO_LEASE)


def synthetic_validation_tasks_create(
    *, images: QuerySet[Image] | None = None, priority: int = 0, prompts: Mapping[int, str] | None = None
) -> list[int]:
    """One task per generated image still pending review; ``prompts`` (image id -> the prompt that made it)
    is shown on the card."""
    if images is None:
        images = Image.objects.all()
    images = images.filter(origin=Image.Origin.GENERATED, review_status=ReviewStatus.PENDING).order_by("pk")
    prompts = prompts or {}
    tasks = (
        ReviewTask(
            kind=TaskKind.SYNTHETIC_VALIDATION,
            subject_key=f"image:{pk}",
            image_id=pk,
            instance_id=instance_id,
            priority=priority,
            payload={"prompt": prompts[pk]} if pk in prompts else {},
        )
        for pk, instance_id in images.values_list("pk", "generated_for_id").iterator(chunk_size=BATCH_SIZE)
    )
    return _insert(TaskKind.SYNTHETIC_VALIDATION, tasks)


@transaction.atomic
def gold_task_create(*, task: ReviewTask, answer: str) -> ReviewTask:
    """A gold copy of ``task`` whose expected verdict is ``answer``. Creating it twice returns the first."""
    if answer not in queue_definition(task.kind).verdicts:
        raise ValueError(f"{answer!r} is not a verdict of the {task.kind} queue")
    if task.is_gold:
        raise ValueError(f"task #{task.pk} is a gold task already")
    gold, created = ReviewTask.objects.get_or_create(
        kind=task.kind,
        subject_key=f"gold:{task.subject_key}",
        defaults={
            "image_id": task.image_id,
            "product_a_id": task.product_a_id,
            "product_b_id": task.product_b_id,
            "instance_id": task.instance_id,
            "candidate_instance_id": task.candidate_instance_id,
            "similarity": task.similarity,
            "payload": task.payload,
            "is_gold": True,
            "gold_answer": answer,
            "required_decisions": 1,
        },
    )
    if not created and gold.gold_answer != answer:
        gold.gold_answer = answer
        gold.save(update_fields=["gold_answer"])
    return gold


def _insert(kind: str, tasks: Iterable[ReviewTask]) -> list[int]:
    """Inserts the tasks whose subject is new to the queue; returns the ids of those created."""
    required = review_queue_get(kind=kind).required_decisions
    created: list[int] = []
    for batch in batched(tasks, BATCH_SIZE):
        keys = [task.subject_key for task in batch]
        existing = set(
            ReviewTask.objects.filter(kind=kind, subject_key__in=keys).values_list("subject_key", flat=True)
        )
        new: dict[str, ReviewTask] = {}
        for task in batch:  # the first proposal of a subject wins, as it does across batches
            if task.subject_key not in existing:
                new.setdefault(task.subject_key, task)
        for task in new.values():
            task.required_decisions = required
        ReviewTask.objects.bulk_create(new.values(), ignore_conflicts=True)
        created += (
            ReviewTask.objects.filter(kind=kind, subject_key__in=list(new))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return created


def _similarity(given: float | None, flagged: list) -> float | None:
    if given is not None:
        return float(given)
    return max((float(pair[2]) for pair in flagged), default=None)
