"""manage.py answer_demo_tasks --source NAME [--ground-truth PATH] [--seed S] [--kinds Q ...] [--limit-per-queue N]
[--overlap-queue Q]"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.demo_catalog.oracle import QUEUE_ORDER, demo_queues_answer
from annotation.demo_catalog.overlap import NOISY_ANNOTATORS, OVERLAP
from annotation.demo_catalog.review_tasks import DemoReviewTasksError
from annotation.models import TaskKind
from annotation.review.statistics import annotator_figures, queue_agreement

NO_OVERLAP = "none"


class Command(BaseCommand):
    help = (
        "Answers the open review tasks of an imported demo catalog as simulated annotators (demo-oracle-N) "
        "would, through the real lease and decision services, from the catalog's ground truth."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="The source the catalog was imported under.")
        parser.add_argument(
            "--ground-truth",
            type=Path,
            help="ground_truth.json of a generated demo catalog (omit: the fallback answers only).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the gold-task draws (default 0).")
        parser.add_argument(
            "--kinds",
            nargs="+",
            choices=[kind.value for kind in QUEUE_ORDER],
            help="Only these queues (default: all four, in dependency order).",
        )
        parser.add_argument(
            "--limit-per-queue",
            type=int,
            help="At most this many tasks per queue and oracle, leaving the rest to people (default: all).",
        )
        parser.add_argument(
            "--overlap-queue",
            choices=[NO_OVERLAP, *(kind.value for kind in QUEUE_ORDER)],
            default=NO_OVERLAP,
            help=(
                f"This queue's open tasks of the source get {OVERLAP} decisions each, from two simulated "
                "annotators who make mistakes, so agreement and adjudication have something to show "
                f"(default {NO_OVERLAP}: the oracles answer every queue, once per task)."
            ),
        )

    def handle(self, *args, **options) -> None:
        path = options["ground_truth"]
        if path is not None and not path.is_file():
            raise CommandError(f"no ground truth file at {path}")
        limit = options["limit_per_queue"]
        if limit is not None and limit < 0:
            raise CommandError("--limit-per-queue must not be negative")
        overlap_kind = None if options["overlap_queue"] == NO_OVERLAP else options["overlap_queue"]
        started = time.monotonic()
        try:
            counts = demo_queues_answer(
                source=options["source"],
                ground_truth_path=path,
                seed=options["seed"],
                kinds=options["kinds"],
                limit_per_queue=limit,
                overlap_kind=overlap_kind,
            )
        except DemoReviewTasksError as exc:
            raise CommandError(str(exc)) from None
        seconds = time.monotonic() - started
        self.stdout.write(f"Review tasks answered for {options['source']!r} in {seconds:.1f} s:")
        for kind in TaskKind:
            if kind.value not in counts:
                continue
            regular, gold = counts[kind.value], counts[f"{kind.value}_gold"]
            self.stdout.write(
                f"  {kind.label + ':':25} {sum(regular.values()):5} decisions ({_verdicts(regular)}), "
                f"{sum(gold.values())} on gold tasks"
            )
        if overlap_kind is not None:
            self._agreement_write(overlap_kind)

    def _agreement_write(self, kind: str) -> None:
        """What the statistics page shows of the queue answered with overlap (all sources, as the page does)."""
        agreement = next(row for row in queue_agreement() if row.kind == kind)
        kappa = "none" if agreement.kappa is None else f"{agreement.kappa:.3f}"
        unanimous = agreement.unanimous_share
        self.stdout.write(
            f"Agreement in {agreement.title} (overlap {OVERLAP}): {agreement.tasks} tasks answered twice, "
            f"{'-' if unanimous is None else f'{unanimous:.0%}'} unanimous, Fleiss' kappa {kappa}, "
            f"{agreement.disputed_open} waiting for adjudication."
        )
        figures = {person.username: person for person in annotator_figures()}
        for annotator in NOISY_ANNOTATORS:
            person = figures.get(annotator.username)
            queue = person.per_queue.get(kind) if person else None
            if queue is None:
                self.stdout.write(f"  {annotator.username}: no decisions in this queue")
                continue
            self.stdout.write(
                f"  {annotator.username} (errs on {annotator.error_rate:.0%}): {queue.decisions} decisions, "
                f"gold accuracy {_share(queue.gold_correct, queue.gold_answered)}, "
                f"agreement with the outcome {_share(queue.agreed, queue.compared)}"
            )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%} ({part} of {whole})" if whole else "- (none yet)"


def _verdicts(counts: dict[str, int]) -> str:
    return ", ".join(f"{verdict} {count}" for verdict, count in counts.items()) or "none"
