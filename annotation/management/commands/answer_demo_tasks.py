"""manage.py answer_demo_tasks --source NAME [--ground-truth PATH] [--seed S] [--kinds Q ...] [--limit-per-queue N]"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.demo_catalog.oracle import QUEUE_ORDER, demo_queues_answer
from annotation.demo_catalog.review_tasks import DemoReviewTasksError
from annotation.models import TaskKind


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

    def handle(self, *args, **options) -> None:
        path = options["ground_truth"]
        if path is not None and not path.is_file():
            raise CommandError(f"no ground truth file at {path}")
        limit = options["limit_per_queue"]
        if limit is not None and limit < 0:
            raise CommandError("--limit-per-queue must not be negative")
        started = time.monotonic()
        try:
            counts = demo_queues_answer(
                source=options["source"],
                ground_truth_path=path,
                seed=options["seed"],
                kinds=options["kinds"],
                limit_per_queue=limit,
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


def _verdicts(counts: dict[str, int]) -> str:
    return ", ".join(f"{verdict} {count}" for verdict, count in counts.items()) or "none"
