"""manage.py import_catalog MANIFEST.jsonl --images-root DIR [--source NAME] [--report REPORT.json]"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.services.catalog_import import CatalogImportError
from annotation.services.catalog_import_jobs import catalog_import_job_create, catalog_import_job_run


class Command(BaseCommand):
    help = (
        "Imports a catalog manifest (JSON lines, one product per line). Exits 0 once the manifest was processed, "
        "whatever was rejected (see the report); non-zero only if it could not be read at all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", type=Path, help="The manifest, one JSON object per line.")
        parser.add_argument(
            "--images-root", type=Path, required=True, help="Image paths are relative to this."
        )
        parser.add_argument(
            "--source", default="default", help="Name of the listing source (default: default)."
        )
        parser.add_argument("--report", type=Path, help="Also write the JSON report to this file.")
        parser.add_argument("--no-progress", action="store_true", help="Don't draw a progress bar.")

    def handle(self, *args, **options) -> None:
        manifest = Path(options["manifest"])
        if not manifest.is_file():
            raise CommandError(f"manifest {manifest} is not a readable file")
        job = catalog_import_job_create(
            manifest_path=manifest.resolve(),
            images_root=Path(options["images_root"]).resolve(),
            source=options["source"],
        )
        show_progress = not options["no_progress"] and options["verbosity"] > 0
        # tqdm draws with carriage returns, so it writes to the raw stream, not Django's line-ending wrapper.
        stream = getattr(self.stderr, "_out", sys.stderr)
        bar = tqdm(total=0, unit=" lines", desc="Importing", disable=not show_progress, file=stream)

        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = catalog_import_job_run(job=job, on_progress=on_progress)
        except CatalogImportError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        job.refresh_from_db()
        if report is None:
            raise CommandError(f"import job #{job.pk} ended {job.status}: {job.error or job.message}")

        if options["report"]:
            Path(options["report"]).write_text(report.to_json(), encoding="utf-8")
        if options["verbosity"] == 0:
            return
        if options["verbosity"] >= 2:
            self.stdout.write(json.dumps({"job": job.pk, **report.summary()}, indent=2))
        if report.rejections:
            self.stdout.write(f"{len(report.rejections)} rejection(s); the first ones:")
            for problem in report.rejections[:10]:
                where = f" {problem.image}" if problem.image else ""
                self.stdout.write(
                    f"  line {problem.line} {problem.product_id or '?'}{where}: {problem.reason}"
                )
        self.stdout.write(self.style.SUCCESS(f"Import job #{job.pk} {job.status}: {job.message}"))
