"""One demo queue with overlap: two simulated annotators who make mistakes, so the agreement screens have
something to show.

The demo oracles (``oracle.py``) answer every task exactly as the ground truth says, and each task once: the
statistics page then has no kappa and the adjudication page nothing to settle. For one queue (the demo picks
hard-negative selection: the paper's judgement call, "genuinely hard or too easy", is where annotators
really disagree, and its outcomes approve pairs rather than merge instances) the answer step instead:

- raises the overlap of the source's open tasks in that queue to two (``demo_overlap_raise``), so each task
  waits for two independent decisions; the queue's own setting and other sources' tasks (the ones the
  human ``annotator`` account works) are left as they were;
- lets two annotator accounts, ``annotator-sim-a`` and ``annotator-sim-b``, answer them through the same
  lease and decision services as people. Each knows the ground truth's verdict (or the oracle's fallback)
  and gets it wrong on a share of the tasks: a careful annotator and a hasty one. A mistake is one of the
  queue's other verdicts, drawn at random.

Where the two disagree the task goes to adjudication; where they agree on the truth it is decided, and
(rarely) where they make the same mistake it is decided wrongly, as it would be with people. They answer the
gold tasks they are served the same way, never by reading ``gold_answer``, so the page's gold accuracy
measures their error rates.

Each mistake is drawn from a generator seeded with (seed, annotator, task), not from one stream: an
interrupted run and its rerun give every task the same answers as one uninterrupted run.
"""

from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import QuerySet

from annotation.models import ReviewTask, TaskKind

# The queue the demo answers with overlap (``answer_demo_tasks --overlap-queue``).
OVERLAP_QUEUE_DEMO = TaskKind.HARD_NEGATIVE
# Two decisions per task: the least overlap that shows agreement, and what the queue pays per task twice over.
OVERLAP = 2

# Not the streams of review_tasks.py or oracle.py: the mistakes stay put whatever those draw.
_STREAM_MISTAKES = 5


@dataclass(frozen=True)
class NoisyAnnotator:
    """A simulated annotator who answers from the ground truth but gets ``error_rate`` of the tasks wrong."""

    username: str
    error_rate: float
    number: int  # keeps the annotators' mistakes apart in the seeded draws

    def verdict(self, truth: str, *, task: ReviewTask, verdicts: list[str], seed: int) -> str:
        """The answer this annotator gives ``task`` whose right answer is ``truth``."""
        rng = np.random.default_rng((seed, _STREAM_MISTAKES, self.number, task.pk))
        wrong = [verdict for verdict in verdicts if verdict != truth]
        if not wrong or rng.random() >= self.error_rate:
            return truth
        return wrong[int(rng.integers(len(wrong)))]


# A careful annotator and a hasty one: different rates, so the page tells them apart by gold accuracy and
# agreement with the outcome. Together they disagree on about one task in six, enough to show adjudication
# without burying the researcher (about 50 disputes on the 60-instance demo).
NOISY_ANNOTATORS = (
    NoisyAnnotator("annotator-sim-a", error_rate=0.05, number=1),
    NoisyAnnotator("annotator-sim-b", error_rate=0.12, number=2),
)


@transaction.atomic
def demo_overlap_raise(*, tasks: QuerySet[ReviewTask], required: int = OVERLAP) -> int:
    """Raises to ``required`` the overlap of the open regular tasks among ``tasks`` that nobody has answered
    yet; returns how many it raised.

    Tasks copy their queue's overlap when they are created, so tasks mined before anyone asked for overlap
    keep one decision each. A task with a decision keeps its overlap: raising it would reopen an answered
    question under different rules. Decided tasks are never touched, so running it again changes nothing.
    """
    if not 1 <= required <= 9:
        raise ValueError(f"overlap must be between 1 and 9, not {required}")
    return tasks.filter(
        status=ReviewTask.Status.OPEN,
        is_gold=False,
        decision_count=0,
        required_decisions__lt=required,
    ).update(required_decisions=required)
