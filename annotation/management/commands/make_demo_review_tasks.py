"""manage.py make_demo_review_tasks --source NAME [--ground-truth PATH] [--seed S] [--gold-per-queue N] [--gold-only
[--kinds Q ...]]"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.demo_catalog.review_tasks import (
    GOLD_PER_QUEUE,
    DemoReviewTasksError,
    demo_gold_tasks_create,
    demo_review_tasks_create,
)
from annotation.models import TaskKind


class Command(BaseCommand):
    help = (
        "Fills the four review queues from an imported demo catalog (a stand-in for the mining stage): "
        "image verification, duplicate and hard-negative candidates, synthetic stand-ins, gold copies."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="The source the catalog was imported under.")
        parser.add_argument(
            "--ground-truth",
            type=Path,
            help="ground_truth.json of a generated demo catalog (omit for a catalog without one).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the random choices (default 0).")
        parser.add_argument(
            "--gold-per-queue",
            type=int,
            default=GOLD_PER_QUEUE,
            help=f"Gold copies per queue, where the answers are known (default {GOLD_PER_QUEUE}).",
        )
        parser.add_argument(
            "--gold-only",
            action="store_true",
            help="Only add gold copies of the tasks already in the queues (filled by the mining stage).",
        )
        parser.add_argument(
            "--kinds",
            nargs="+",
            choices=[kind.value for kind in TaskKind],
            help="With --gold-only: only these queues (default: all four).",
        )

    def handle(self, *args, **options) -> None:
        path = options["ground_truth"]
        if path is not None and not path.is_file():
            raise CommandError(f"no ground truth file at {path}")
        if options["kinds"] and not options["gold_only"]:
            raise CommandError("--kinds goes with --gold-only: the tasks of one queue feed the next")
        arguments = {
            "ground_truth_path": path,
            "source": options["source"],
            "seed": options["seed"],
            "gold_per_queue": options["gold_per_queue"],
        }
        started = time.monotonic()
        try:
            if options["gold_only"]:
                counts = demo_gold_tasks_create(**arguments, kinds=options["kinds"])
            else:
                counts = demo_review_tasks_create(**arguments)
        except DemoReviewTasksError as exc:
            raise CommandError(str(exc)) from None
        if options["gold_only"]:
            made = ", ".join(
                f"{counts[f'{kind.value}_gold']} {kind.label.lower()}"
                for kind in TaskKind
                if f"{kind.value}_gold" in counts
            )
            self.stdout.write(f"Gold tasks added for {options['source']!r}: {made}.")
            return
        seconds = time.monotonic() - started
        self.stdout.write(f"Review tasks created for {options['source']!r} in {seconds:.1f} s:")
        for kind in TaskKind:
            self.stdout.write(
                f"  {kind.label + ':':25} {counts[kind.value]:5} tasks, {counts[f'{kind.value}_gold']:2} gold"
            )
        self.stdout.write(f"  {'Generated stand-in images:':25} {counts['generated_images']:5}")
