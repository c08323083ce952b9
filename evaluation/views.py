"""The evaluation pages: runs with their live progress and report (Table 1's layout, plots), the comparison
of runs with deltas, the scaling plot, the wrong-answer browser, and CSV downloads. Researchers only; runs
are drafted and launched in the admin, and can be launched again or cancelled from here too."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from evaluation.charts import accuracy_bars_svg, scaling_lines_svg
from evaluation.models import Benchmark, BenchmarkQuery, EvaluationRun
from evaluation.reports import RunReport, runs_compare, scaling_series
from evaluation.reports_csv import reports_csv, responses_csv_lines
from evaluation.selectors import responses_with_images, run_responses, runs_list
from evaluation.services.runs import EvaluationRunError, evaluation_run_cancel, evaluation_run_launch
from jobs.selectors import job_log_tail, job_pace

VIEW = "evaluation.view_evaluationrun"
CHANGE = "evaluation.change_evaluationrun"
RESPONSES_PER_PAGE = 20


def _run_plot(report: RunReport):
    groups = [(row.benchmark, [row.pair, row.multi, row.total]) for row in report.rows]
    if len(report.rows) > 1:
        groups.insert(0, ("Mean", [report.mean_pair, report.mean_multi, report.mean_total]))
    return accuracy_bars_svg(groups, series=["Pair", "Multi", "Total"], title="Accuracy per benchmark")


def _run_context(run: EvaluationRun) -> dict:
    from evaluation.reports import run_report

    report = run_report(run)
    job = run.job
    return {
        "run": run,
        "job": job,
        "report": report,
        "plot": _run_plot(report) if report.answered else None,
        "has_open": any(row.open_count for row in report.rows),
        "pace": job_pace(job=job) if job else None,
        "log": job_log_tail(job=job, limit=30) if job else [],
        "queue": settings.EVALUATION_QUEUE,
    }


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    benchmarks = Benchmark.objects.order_by("name")
    return render(request, "evaluation/run_list.html", {"runs": runs_list()[:200], "benchmarks": benchmarks})


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(runs_list(), pk=run_id)
    return render(request, "evaluation/run_detail.html", _run_context(run))


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(runs_list(), pk=run_id)
    return render(request, "evaluation/_run_live.html", _run_context(run))


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_POST
def run_launch(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EvaluationRun, pk=run_id)
    if not request.user.has_perm("jobs.add_job"):
        messages.error(request, "You don't have permission to start jobs.")
    else:
        try:
            evaluation_run_launch(run=run, launched_by=request.user)
            messages.success(request, f"Run {run} launched.")
        except EvaluationRunError as exc:
            messages.error(request, f"Not launched: {exc}")
    return redirect("evaluation:run_detail", run_id=run.pk)


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EvaluationRun.objects.select_related("job"), pk=run_id)
    try:
        evaluation_run_cancel(run=run)
        messages.success(request, f"Run {run} cancelled.")
    except EvaluationRunError as exc:
        messages.error(request, str(exc))
    return redirect("evaluation:run_detail", run_id=run.pk)


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_responses_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """The responses with the images side by side, the model's explanation and the parsed answer; wrong
    answers by default."""
    run = get_object_or_404(EvaluationRun, pk=run_id)
    benchmark_id = _int(request.GET.get("benchmark"))
    question_type = request.GET.get("type", "")
    if question_type not in BenchmarkQuery.QuestionType.values:
        question_type = ""
    wrong_only = request.GET.get("all") != "1"
    responses = run_responses(
        run=run, benchmark_id=benchmark_id, question_type=question_type, wrong_only=wrong_only
    )
    page = Paginator(responses, RESPONSES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "evaluation/run_responses.html",
        {
            "run": run,
            "page": page,
            "items": responses_with_images(page.object_list),
            "benchmarks": run.benchmarks.order_by("name"),
            "benchmark_id": benchmark_id,
            "question_type": question_type,
            "question_types": BenchmarkQuery.QuestionType.choices,
            "wrong_only": wrong_only,
        },
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_report_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    from evaluation.reports import run_report

    run = get_object_or_404(EvaluationRun, pk=run_id)
    response = HttpResponse(reports_csv([run_report(run)]), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="evaluation-run-{run.pk}-report.csv"'
    return response


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def run_responses_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = get_object_or_404(EvaluationRun, pk=run_id)
    lines = responses_csv_lines(run_responses(run=run).iterator(chunk_size=500))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="evaluation-run-{run.pk}-responses.csv"'
    return response


def _selected_runs(request: HttpRequest) -> list[EvaluationRun]:
    """The ticked runs, oldest first, the chosen base (if ticked) moved to the front."""
    ids = sorted({run_id for run_id in (_int(value) for value in request.GET.getlist("runs")) if run_id})
    base = _int(request.GET.get("base"))
    if base in ids:
        ids.remove(base)
        ids.insert(0, base)
    by_id = runs_list().in_bulk(ids)
    return [by_id[run_id] for run_id in ids if run_id in by_id]


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    """Runs side by side on their shared benchmarks, with each run's deltas against the first (the base)."""
    runs = _selected_runs(request)
    comparison = runs_compare(runs) if runs else None
    if comparison and request.GET.get("format") == "csv":
        response = HttpResponse(reports_csv(comparison.runs), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="evaluation-comparison.csv"'
        return response
    table, plot = [], None
    if comparison:
        for index, report in enumerate(comparison.runs):
            cells = []
            for kind in ("total", "pair", "multi"):
                cells.append(
                    {
                        "kind": kind,
                        "mean": comparison.mean(report, kind),
                        "mean_delta": None if index == 0 else _delta(comparison, report, kind),
                        "values": [
                            (
                                comparison.cell(report, benchmark_id, kind),
                                None if index == 0 else comparison.delta(report, benchmark_id, kind),
                            )
                            for benchmark_id, _ in comparison.benchmarks
                        ],
                    }
                )
            table.append({"report": report, "cells": cells})
        groups = [
            (name, [comparison.cell(report, benchmark_id, "total") for report in comparison.runs])
            for benchmark_id, name in comparison.benchmarks
        ]
        groups.insert(0, ("Mean", [comparison.mean(report, "total") for report in comparison.runs]))
        plot = accuracy_bars_svg(
            groups, series=[report.run for report in comparison.runs], title="Total accuracy per benchmark"
        )
    return render(
        request,
        "evaluation/compare.html",
        {
            "comparison": comparison,
            "table": table,
            "plot": plot,
            "all_runs": runs_list()[:200],
            "selected": runs,
        },
    )


def _delta(comparison, report: RunReport, kind: str) -> float | None:
    base, value = comparison.mean(comparison.runs[0], kind), comparison.mean(report, kind)
    return None if base is None or value is None else value - base


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def scaling(request: HttpRequest) -> HttpResponse:
    """Accuracy against training-set size: the chosen runs, or every finished run."""
    runs = _selected_runs(request) or list(runs_list().filter(job__status="succeeded")[:50])
    series = scaling_series(runs)
    plot = None
    if series:
        plot = scaling_lines_svg(
            {
                name: [(point.training_set_size, point.accuracy) for point in points]
                for name, points in series.items()
            },
            title="Total accuracy against training-set size",
        )
    return render(
        request,
        "evaluation/scaling.html",
        {"plot": plot, "series": series, "runs": runs, "all_runs": runs_list()[:200]},
    )
