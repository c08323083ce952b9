"""manage.py export_snapshot SNAPSHOT FORMAT [FORMAT ...] [--max-side N | --original-size] [--image-root DIR]
[--enqueue] [--again]

SNAPSHOT is an id, or a name (its latest frozen version)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.dataset.selectors import snapshot_frozen_named
from training.models import DatasetExport
from training.services.exports import ExportError, export_create, export_run_inline


class Command(BaseCommand):
    help = "Builds exports of a frozen snapshot (verl, huggingface, plain): here, or with --enqueue on the workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("snapshot", help="The snapshot's id, or its name for the latest frozen version.")
        parser.add_argument("formats", nargs="+", choices=DatasetExport.Format.values)
        parser.add_argument(
            "--max-side", type=int, default=None, help="Longest image side (default: the format's)."
        )
        parser.add_argument("--original-size", action="store_true", help="Keep the images' stored size.")
        parser.add_argument(
            "--image-root", default="", help="verl: where the archive is unpacked on the nodes."
        )
        parser.add_argument("--enqueue", action="store_true", help="Send the jobs to the workers instead.")
        parser.add_argument(
            "--again",
            action="store_true",
            help="Build a format even if the snapshot has a ready export in it.",
        )

    def handle(self, *args, **options) -> None:
        snapshot = snapshot_frozen_named(options["snapshot"])
        if snapshot is None:
            raise CommandError(f"No frozen snapshot {options['snapshot']!r}.")
        for export_format in options["formats"]:
            ready = snapshot.exports.filter(format=export_format, status=DatasetExport.Status.READY).first()
            if ready is not None and not options["again"]:
                self.stdout.write(f"{ready} is built already (--again builds another): sha256 {ready.sha256}")
                continue
            try:
                export = export_create(
                    snapshot=snapshot,
                    format=export_format,
                    max_side=options["max_side"],
                    keep_original_size=options["original_size"],
                    image_root=options["image_root"],
                    enqueue=options["enqueue"],
                )
                if not options["enqueue"]:
                    export = export_run_inline(export=export)
            except ExportError as exc:
                raise CommandError(str(exc)) from None
            except Exception as exc:
                raise CommandError(f"The {export_format} export of {snapshot} failed: {exc}") from None
            if options["enqueue"]:
                self.stdout.write(f"{export}: job #{export.job_id} queued.")
            else:
                self.stdout.write(
                    f"{export}: {export.file.name} ({export.size_bytes / 1e6:,.1f} MB, {export.row_count:,} pairs), "
                    f"sha256 {export.sha256}"
                )
