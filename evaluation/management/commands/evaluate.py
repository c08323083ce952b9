"""manage.py evaluate RUN [--no-progress]

Carries out an evaluation run in this process, with a progress bar: the same work a worker does for a run
launched from the admin (the answers are stored, so the run can be stopped with Ctrl-C and resumed by running
this again). RUN is the run's id or name."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.models import EvaluationRun
from evaluation.reports import run_report
from evaluation.services.run_execution import evaluation_run_execute
from evaluation.services.runs import EvaluationRunError, evaluation_run_launch
from jobs.services import job_cancel


class Command(BaseCommand):
    help = "Runs an evaluation run here, with a progress bar, and prints its accuracy table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", help="The run's id or name.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args, **options) -> None:
        key = options["run"]
        runs = (
            EvaluationRun.objects.filter(pk=int(key))
            if key.isdigit()
            else EvaluationRun.objects.filter(name=key)
        )
        run = runs.order_by("-id").first()
        if run is None:
            raise CommandError(f"No evaluation run {key!r}.")
        try:
            job = evaluation_run_launch(run=run, enqueue=False)
        except EvaluationRunError as exc:
            raise CommandError(str(exc)) from exc
        bar = None
        if not options["no_progress"]:
            from tqdm import tqdm

            bar = tqdm(total=None, unit="query", desc=run.name)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            run = evaluation_run_execute(job=job, progress=progress)
        except KeyboardInterrupt:
            job_cancel(job=job)
            raise CommandError(
                "Stopped: the answers so far are kept; run the command again to resume."
            ) from None
        finally:
            if bar is not None:
                bar.close()
        job.refresh_from_db()
        if job.status != "succeeded":
            raise CommandError(
                f"The run {job.status}: {job.error.splitlines()[0] if job.error else job.message}"
            )
        report = run_report(run)
        for row in report.rows:
            cells = [
                f"{kind} {value:.1f}%"
                for kind, value in (("pair", row.pair), ("multi", row.multi), ("total", row.total))
                if value is not None
            ]
            self.stdout.write(f"{row.benchmark}: {', '.join(cells) or 'no answers'}")
        if report.mean_total is not None:
            self.stdout.write(f"Mean total: {report.mean_total:.1f}%")
