"""Simulated annotators for the demo: they work through a demo catalog's review queues from its ground truth.

Nobody answers the queues of the demo, so without this a frozen snapshot of it has no verified images, no
merged duplicates, no approved hard negatives and no accepted generated images. The oracle is a handful of
annotator accounts ("demo-oracle-1", "demo-oracle-2", ...) that go through the same services as people on
the review page: each claims one task at a time under a lease (``review_task_claim_one``) and submits a
decision with that lease's token (``review_decision_submit``), so overlap, outcomes, merges, obsoleted tasks
and statistics all behave as they do for real reviews. Where a queue asks for several decisions per task,
the next oracle gives the same answer, so the task resolves instead of waiting for adjudication. The one
exception is the queue named by ``overlap_kind``: two simulated annotators who make mistakes answer it, each
task twice, so the agreement screens have real disagreements to show (see ``overlap.py``).

The queues are worked in dependency order: image verification (a rejected photo leaves the dataset),
duplicate merge (merges change which instances exist), hard negatives (a pair judged "the same object"
sends a new duplicate task), synthetic validation. The round is repeated until it answers nothing, which
picks up the duplicate tasks the hard-negative queue sent.

**Answers.** The ground truth's verdict where it has one (the same answers the gold copies get, see
``_GoldAnswers``), else a fallback, the policy a careful annotator without the truth would follow:

- image verification: "keep": the generator spoils only the photos the truth lists as bad;
- duplicate merge: "different" unless the truth says same: merging is the costly mistake;
- hard negative: "hard_negative" when the two instances share a category, else "too_easy": the paper keeps
  only genuinely hard pairs, and objects of different categories are easy to tell apart;
- synthetic validation: the stand-in's verdict, else "drop_dissimilar": real DreamBooth outputs of the demo's
  tiny random-weight model are noise, not the instance.

**Scope.** Only tasks about the source's products, images and instances (an instance merged away counts
for the instance it was merged into). A task of another source that the queue hands out is skipped, the way
a person passes on a card, and the skips are cleared when the oracle is done with the queue.

**Gold.** Like the review page, the oracle is served gold tasks at the queue's gold rate, drawn from a
seeded generator, so the demo's statistics show gold accuracy for it too. It answers them the same way as
regular tasks (never by reading ``gold_answer``); gold copies come from the same ground truth, so it is right
(the noisy annotators of the overlap queue are not always: their gold accuracy shows it).

Running it again answers only what is still open: decided tasks aren't served again, and a task an oracle
already answered is served to the next oracle.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Q

from annotation.demo_catalog.overlap import NOISY_ANNOTATORS, NoisyAnnotator, demo_overlap_raise
from annotation.demo_catalog.review_tasks import (
    DemoReviewTasksError,
    _GoldAnswers,
    _instance_keys,
    _source_products,
    _truth_load,
    instances_with_merged,
    stand_in_verdict,
)
from annotation.models import ReviewTask, TaskKind
from annotation.review.decisions import DecisionRejected, review_decision_submit
from annotation.review.leases import (
    review_queue_get,
    review_skips_clear,
    review_task_claim_one,
    review_task_release,
    review_task_skip,
    review_tasks_held,
)
from annotation.review.queues import queue_definition
from annotation.roles import ANNOTATOR

# Later queues depend on earlier outcomes: verified photos, then merged instances, then pairs of them.
QUEUE_ORDER = (
    TaskKind.IMAGE_VERIFICATION,
    TaskKind.DUPLICATE_MERGE,
    TaskKind.HARD_NEGATIVE,
    TaskKind.SYNTHETIC_VALIDATION,
)
ORACLE_USERNAME = "demo-oracle-{number}"
# A queue asks for at most 9 decisions per task (``ReviewQueue.required_decisions``).
ORACLES_MAX = 9

# Not the streams of review_tasks.py: the gold draws stay the same whatever that module draws.
_STREAM_ORACLE = 4


def demo_queues_answer(
    *,
    source: str,
    ground_truth_path: Path | None,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    limit_per_queue: int | None = None,
    overlap_kind: str | None = None,
) -> dict[str, dict[str, int]]:
    """Answers the open review tasks of the imported demo catalog ``source``; returns what it answered.

    ``ground_truth_path`` is the catalog's ``ground_truth.json`` (None: the fallback answers only, e.g. for
    the DreamBooth subset). ``kinds`` restricts the work to some queues (still in dependency order).
    ``limit_per_queue`` caps the regular tasks each oracle answers per queue in this run, so the demo can
    leave some of every queue to people; with overlap the next oracle answers the same first tasks.
    ``overlap_kind`` names the queue whose open tasks of the source get two decisions each, from the two
    ``NOISY_ANNOTATORS`` instead of the oracles (None: every queue is answered by the oracles).

    The result has, per queue worked, the number of decisions per verdict on regular tasks (``<queue>``),
    and on gold tasks (``<queue>_gold``). With overlap a task counts once per oracle that answered it.
    """
    wanted = {str(kind) for kind in kinds} if kinds is not None else {kind.value for kind in QUEUE_ORDER}
    unknown = wanted - {kind.value for kind in QUEUE_ORDER}
    if unknown:
        raise DemoReviewTasksError(f"no review queue {sorted(unknown)[0]!r}")
    if overlap_kind is not None and overlap_kind not in {kind.value for kind in QUEUE_ORDER}:
        raise DemoReviewTasksError(f"no review queue {overlap_kind!r} to answer with overlap")
    order = [kind.value for kind in QUEUE_ORDER if kind.value in wanted]
    products = _source_products(source)
    truth = _truth_load(ground_truth_path, {external_id for _, external_id, _, _ in products})

    work = _Work(
        rng=np.random.default_rng((seed, _STREAM_ORACLE)),
        seed=seed,
        overlap_kind=overlap_kind,
        limit_per_queue=limit_per_queue,
        counts={key: Counter() for kind in order for key in (kind, f"{kind}_gold")},
    )
    while sum(_queue_answer(kind, source=source, truth=truth, work=work) for kind in order):
        pass  # another round, for the tasks this one sent to an earlier queue
    return {key: dict(sorted(counter.items())) for key, counter in work.counts.items()}


@dataclass
class _Work:
    """What a run carries from queue to queue: the gold draws, the seed of the mistakes, the queue answered
    with overlap, the limit and the tallies."""

    rng: np.random.Generator
    seed: int
    overlap_kind: str | None
    limit_per_queue: int | None
    counts: dict[str, Counter]
    # (queue, user name) -> regular tasks answered in this run
    answered: Counter = field(default_factory=Counter)

    def limit_reached(self, kind: str, username: str) -> bool:
        return self.limit_per_queue is not None and self.answered[kind, username] >= self.limit_per_queue

    def reviewers(self, kind: str, needed: int) -> list[tuple[str, NoisyAnnotator | None]]:
        """Who answers the queue, in turn: (user name, their mistakes or None for none). The queue with
        overlap gets the noisy annotators first; oracles make up any further decisions a task needs."""
        noisy = list(NOISY_ANNOTATORS) if kind == self.overlap_kind else []
        panel = [(annotator.username, annotator) for annotator in noisy]
        panel += [(ORACLE_USERNAME.format(number=number), None) for number in range(1, ORACLES_MAX + 1)]
        return panel[: max(needed, len(noisy))]


@dataclass
class _Answers:
    """The source as it stands now (merges move products), and the answer to each of its tasks."""

    gold_answers: _GoldAnswers
    instance_ids: set[int]  # the source's instances, merged-away ones included

    @classmethod
    def now(cls, *, source: str, truth: dict | None) -> "_Answers":
        products = _source_products(source)
        key_of_instance = _instance_keys(products, truth)
        instance_ids = instances_with_merged(products, key_of_instance)
        gold_answers = _GoldAnswers(
            truth=truth, key_of_instance=key_of_instance, external_id={pk: e for pk, e, _, _ in products}
        )
        return cls(gold_answers=gold_answers, instance_ids=instance_ids)

    def scope(self, kind: str, source: str) -> Q:
        """The tasks about the source (how ``make_demo_review_tasks`` scopes its gold copies)."""
        return {
            TaskKind.IMAGE_VERIFICATION: Q(image__product__source=source),
            TaskKind.DUPLICATE_MERGE: Q(product_a__source=source),
            TaskKind.HARD_NEGATIVE: Q(instance__in=self.instance_ids),
            TaskKind.SYNTHETIC_VALIDATION: Q(image__generated_for__in=self.instance_ids),
        }[kind]

    def verdict(self, task: ReviewTask) -> str:
        known = self.gold_answers.for_kind(task.kind)(task)
        if known is not None:
            return known
        return _fallback(task)


def _fallback(task: ReviewTask) -> str:
    """The verdict where the ground truth has none (the policy of the module docstring)."""
    if task.kind == TaskKind.IMAGE_VERIFICATION:
        return "keep"
    if task.kind == TaskKind.DUPLICATE_MERGE:
        return "different"
    if task.kind == TaskKind.HARD_NEGATIVE:
        same_category = task.instance.category_id == task.candidate_instance.category_id
        return "hard_negative" if same_category else "too_easy"
    if task.kind == TaskKind.SYNTHETIC_VALIDATION:
        return stand_in_verdict(task.image.source_path) or "drop_dissimilar"
    raise ValueError(f"no review queue {task.kind!r}")


def _queue_answer(kind: str, *, source: str, truth: dict | None, work: _Work) -> int:
    """One pass over a queue: oracle 1 (or the first noisy annotator) answers every task of the source it is
    served, then the next one the tasks that still need a decision, and so on. Returns how many decisions it
    submitted."""
    answers = _Answers.now(source=source, truth=truth)
    if kind == work.overlap_kind:
        # Every pass, not once: a pass over an earlier queue may have sent this one new tasks at overlap one.
        demo_overlap_raise(tasks=ReviewTask.objects.filter(answers.scope(kind, source), kind=kind))
    open_tasks = ReviewTask.objects.filter(
        answers.scope(kind, source), kind=kind, status=ReviewTask.Status.OPEN
    )
    in_scope = set(open_tasks.values_list("pk", flat=True))
    regular = open_tasks.filter(is_gold=False)
    required = list(regular.values_list("required_decisions", flat=True))
    if not required:
        return 0  # gold tasks only: they never close, and the queue serves them only among regular ones
    reviewers = work.reviewers(kind, needed=min(ORACLES_MAX, max(required)))
    verdicts = queue_definition(kind).verdicts
    action_of = {}
    for action in queue_definition(kind).actions:
        action_of.setdefault(action.verdict, action.code)  # the first button of each verdict
    gold_rate = review_queue_get(kind=kind).gold_rate

    submitted = 0
    for username, mistakes in reviewers:
        if not regular.exists():  # a fresh query: all decided by the reviewers before this one
            break
        reviewer = _simulated_user(username)
        # Cards an interrupted run left held, and passes from a run over another source, would hide tasks.
        for held in review_tasks_held(annotator=reviewer, kind=kind):
            review_task_release(annotator=reviewer, task_id=held.pk)
        review_skips_clear(annotator=reviewer, kind=kind)
        while not work.limit_reached(kind, username):
            # The page's draw (gold at the queue's rate), made here from the seeded generator: with a rate of
            # 1.0 the service serves a gold task whenever one is left, with 0.0 never; either way it is
            # the service that picks and leases the task.
            wants_gold = work.rng.random() < gold_rate
            task = review_task_claim_one(annotator=reviewer, kind=kind, gold_rate=1.0 if wants_gold else 0.0)
            if task is None:
                break
            if task.pk not in in_scope:
                review_task_skip(annotator=reviewer, task_id=task.pk)  # another source's task
                continue
            verdict = answers.verdict(task)
            if mistakes is not None:
                verdict = mistakes.verdict(verdict, task=task, verdicts=verdicts, seed=work.seed)
            try:
                review_decision_submit(
                    annotator=reviewer,
                    task_id=task.pk,
                    submission_key=task.lease_token,
                    action=action_of[verdict],
                )
            except DecisionRejected:
                # Closed meanwhile (e.g. by a merge a person made) or the lease was lost: not ours to answer.
                review_task_skip(annotator=reviewer, task_id=task.pk)
                continue
            submitted += 1
            work.counts[f"{kind}_gold" if task.is_gold else kind][verdict] += 1
            if not task.is_gold:
                work.answered[kind, username] += 1
        review_skips_clear(annotator=reviewer, kind=kind)
    return submitted


def _simulated_user(username: str) -> AbstractBaseUser:
    """A simulated annotator's account, an annotator without a password (nobody logs in as it)."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        user.groups.add(Group.objects.get_or_create(name=ANNOTATOR)[0])
    return user
