"""manage.py mine STAGE [--source NAME ...] [--embedder SPEC] [--set NAME=VALUE ...] [--enqueue]

STAGE is one of verification, embed, duplicates, hard_negatives, synthetic, or pipeline (all of them in
order). Runs in this process by default; --enqueue sends the job to the Celery workers instead.
"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.models import Job
from mining.services.runs import mining_job_enqueue, mining_job_run_inline
from mining.services.stages import PIPELINE, Stage, mining_job_create, stage_defaults


class Command(BaseCommand):
    help = "Runs a mining stage (or the whole pipeline) on the catalog and records it as a job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("stage", choices=[*Stage, PIPELINE])
        parser.add_argument(
            "--source", action="append", default=[], help="Catalog source to mine (repeatable; default: all)."
        )
        parser.add_argument(
            "--embedder",
            help='"descriptor", or "open_clip:MODEL:PRETRAINED" (a tag or a weights file; default: the settings).',
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="Any other parameter of the stage, e.g. --set train_steps=200 (values are read as JSON when "
            "they parse, text otherwise). --list-parameters shows them.",
        )
        parser.add_argument("--stages", help="Pipeline only: comma-separated stages to run, in order.")
        parser.add_argument(
            "--enqueue", action="store_true", help="Send to the workers instead of running here."
        )
        parser.add_argument(
            "--list-parameters", action="store_true", help="Print the stage's parameters and stop."
        )

    def handle(self, *args, **options) -> None:
        stage = options["stage"]
        if options["list_parameters"]:
            defaults = stage_defaults()
            shown = defaults if stage == PIPELINE else {stage: defaults[stage]}
            self.stdout.write(json.dumps(shown, indent=2, default=str))
            return
        parameters: dict = {"sources": options["source"]}
        if options["embedder"]:
            parameters["embedder"] = options["embedder"]
        if options["stages"]:
            parameters["stages"] = [s.strip() for s in options["stages"].split(",") if s.strip()]
        for assignment in options["set"]:
            name, sep, text = assignment.partition("=")
            if not sep:
                raise CommandError(f"--set {assignment!r}: expected NAME=VALUE")
            try:
                parameters[name.strip()] = json.loads(text)
            except json.JSONDecodeError:
                parameters[name.strip()] = text
        try:
            job = mining_job_create(stage=stage, parameters=parameters)
        except Exception as exc:  # invalid parameters, refused random weights...
            raise CommandError(str(exc)) from None
        if options["enqueue"]:
            mining_job_enqueue(job=job)
            self.stdout.write(f"Job #{job.pk} ({job.kind}) sent to the workers; /jobs/{job.pk}/ follows it.")
            return
        job = mining_job_run_inline(job=job)
        self._report(job)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} ended {job.status}: {job.error or job.message}")

    def _report(self, job: Job) -> None:
        self.stdout.write(f"Job #{job.pk} ({job.kind}): {job.status}. {job.message}")
        for child in job.children.order_by("pk"):
            self.stdout.write(f"  #{child.pk} {child.kind}: {child.status}. {child.message}")
