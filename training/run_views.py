"""The training runs' pages: the list, and a run's page with its status, metric plots, log tail, command and
checkpoint (its live part refreshed by htmx while the run is active). Researchers only; runs are drafted and
launched in the admin, and can be launched again or cancelled from here too."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from jobs.selectors import job_pace
from training.backends import run_output
from training.charts import metric_line_svg
from training.models import TrainingRun
from training.selectors import run_log_tail, run_metric_series, runs_list
from training.services.run_commands import training_command
from training.services.runs import TrainingRunError, training_run_cancel, training_run_launch

# The plots of the run page: (canonical metric, title, unit).
PLOTS = (
    (run_output.REWARD, "Reward (training responses)", ""),
    (run_output.HELDOUT_ACCURACY, "Held-out accuracy", ""),
    (run_output.KL, "KL to the reference model", ""),
    (run_output.RESPONSE_LENGTH, "Response length (tokens)", ""),
    (run_output.LOSS, "Loss", ""),
)


@login_required
@permission_required("training.view_trainingrun", raise_exception=True)
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "training/run_list.html", {"runs": runs_list()[:200]})


@login_required
@permission_required("training.view_trainingrun", raise_exception=True)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(runs_list(), pk=run_id)
    return render(request, "training/run_detail.html", _context(run))


@login_required
@permission_required("training.view_trainingrun", raise_exception=True)
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(runs_list(), pk=run_id)
    return render(request, "training/_run_live.html", _context(run))


def _context(run: TrainingRun) -> dict:
    series = run_metric_series(run=run, names=[name for name, _, _ in PLOTS])
    plots = [
        metric_line_svg(series[name], title=title, unit=unit)
        for name, title, unit in PLOTS
        if series[name] or name != run_output.LOSS  # the loss only when the backend reports it
    ]
    command = run.command
    command_error = ""
    if not command:
        try:  # the command it will run, shown before launch (with the worker's folders)
            command = training_command(run).text
        except (TypeError, ValueError) as exc:
            command_error = str(exc)
    return {
        "run": run,
        "summary": _summary_items(run.summary),
        "job": run.job,
        "pace": job_pace(job=run.job) if run.job else None,
        "plots": plots,
        "log": run_log_tail(run=run),
        "command": command,
        "command_error": command_error,
        "gpu_queue": settings.TRAINING_GPU_QUEUE,
    }


def _summary_items(summary: dict) -> list[tuple[str, str]]:
    """The figures of a finished run worth a line on its page, formatted."""
    items = []
    if "steps" in summary:
        items.append(("Steps", f"{summary['steps']:,}"))
    if isinstance(summary.get("seconds"), int | float):
        items.append(("Training time", f"{summary['seconds']:,.1f} s"))
    if isinstance(summary.get("steps_per_second"), int | float):
        items.append(("Steps per second", f"{summary['steps_per_second']:.3g}"))
    final = summary.get("final_metrics", {})
    if isinstance(final.get(run_output.HELDOUT_ACCURACY), int | float):
        items.append(("Final held-out accuracy", f"{final[run_output.HELDOUT_ACCURACY]:.1%}"))
    if isinstance(final.get(run_output.REWARD), int | float):
        items.append(("Final reward", f"{final[run_output.REWARD]:.3g}"))
    return items


@require_POST
@login_required
@permission_required("training.change_trainingrun", raise_exception=True)
def run_launch(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    if not request.user.has_perm("jobs.add_job"):
        messages.error(request, "You don't have permission to start jobs.")
        return redirect("training:run_detail", run_id=run.pk)
    try:
        job = training_run_launch(run=run, launched_by=request.user)
        messages.success(request, f"Run launched: job #{job.pk} on the {settings.TRAINING_GPU_QUEUE} queue.")
    except TrainingRunError as exc:
        messages.error(request, f"Not launched: {exc}")
    return redirect("training:run_detail", run_id=run.pk)


@require_POST
@login_required
@permission_required("training.change_trainingrun", raise_exception=True)
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("job"), pk=run_id)
    try:
        training_run_cancel(run=run)
        messages.success(request, "Run cancelled: its training processes are being stopped.")
    except TrainingRunError as exc:
        messages.warning(request, str(exc))
    return redirect("training:run_detail", run_id=run.pk)
