"""manage.py freeze_snapshot NAME [--source S ...] [--include-pending] [--eval-fraction F] [--seed N]
[--negatives hard|random] [--sample-size M] [--sample-seed N] [--description TEXT] [--enqueue] [--unless-frozen]"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create, snapshot_run_inline
from annotation.models import DatasetSnapshot


class Command(BaseCommand):
    help = (
        "Freezes a dataset snapshot (the next version of NAME) from the reviewed work: runs the job here, "
        "or with --enqueue sends it to the workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help='What the dataset is, e.g. "twin".')
        parser.add_argument("--source", action="append", default=[], help="A catalog source (repeatable).")
        parser.add_argument(
            "--include-pending",
            action="store_true",
            help="Take images not reviewed yet along with accepted ones.",
        )
        parser.add_argument("--eval-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--negatives", choices=["hard", "random"], default="hard")
        parser.add_argument("--sample-size", type=int, default=None)
        parser.add_argument("--sample-seed", type=int, default=0)
        parser.add_argument("--description", default="")
        parser.add_argument("--enqueue", action="store_true", help="Send the job to the workers instead.")
        parser.add_argument(
            "--unless-frozen", action="store_true", help="Do nothing when NAME has a frozen snapshot already."
        )

    def handle(self, *args, **options) -> None:
        frozen = DatasetSnapshot.objects.filter(name=options["name"], status=DatasetSnapshot.Status.FROZEN)
        if options["unless_frozen"] and frozen.exists():
            self.stdout.write(f"{frozen.order_by('-version').first()} is frozen already; nothing to do.")
            return
        try:
            parameters = SnapshotParameters(
                sources=tuple(options["source"]),
                verified_only=not options["include_pending"],
                eval_fraction=options["eval_fraction"],
                seed=options["seed"],
                negatives=options["negatives"],
                sample_size=options["sample_size"],
                sample_seed=options["sample_seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        snapshot = snapshot_create(
            name=options["name"],
            parameters=parameters,
            description=options["description"],
            enqueue=options["enqueue"],
        )
        if options["enqueue"]:
            self.stdout.write(f"{snapshot}: job #{snapshot.job_id} queued.")
            return
        try:
            snapshot = snapshot_run_inline(snapshot=snapshot)
        except Exception as exc:
            raise CommandError(f"Freezing {snapshot} failed: {exc}") from None
        self.stdout.write(
            f"{snapshot} (#{snapshot.pk}): {snapshot.pair_count:,} pairs ({snapshot.positive_count:,} positive, "
            f"{snapshot.negative_count:,} negative), {snapshot.image_count:,} images, "
            f"{snapshot.instance_count:,} instances; content hash {snapshot.content_hash}"
        )
