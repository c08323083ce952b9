"""The accuracy tables: one run's (the paper's Table 1 layout), runs side by side with their deltas, and the
scaling series (accuracy against training-set size). Read from the stored responses, so a running run's table
fills in as it goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from django.db.models import Avg, Count, Q

from evaluation.models import EvaluationResponse, EvaluationRun


def _percent(right: int, count: int) -> float | None:
    return 100.0 * right / count if count else None


@dataclass(frozen=True)
class BenchmarkRow:
    benchmark_id: int
    benchmark: str  # the display name, the table's column
    pair: float | None  # accuracy in percent; None when no pair query was answered
    multi: float | None
    total: float | None  # pair and multi queries together
    pair_count: int
    multi_count: int
    correct: int
    unreadable: int = 0  # pair and multi answers with no final answer the parser could read (format failures)
    open_count: int = 0
    recognition: float | None = None  # the judge's mean, 0 to 2
    content: float | None = None  # 0 to 3
    recognition_accuracy: float | None = None  # percent of open answers with recognition 2


@dataclass(frozen=True)
class RunReport:
    run_id: int
    run: str
    rows: list[BenchmarkRow] = field(default_factory=list)
    mean_pair: float | None = None  # means over the benchmarks, as the paper's "Mean" column
    mean_multi: float | None = None
    mean_total: float | None = None
    answered: int = 0

    def row(self, benchmark_id: int) -> BenchmarkRow | None:
        return next((row for row in self.rows if row.benchmark_id == benchmark_id), None)

    def to_json(self) -> dict:
        return asdict(self)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def run_report(run: EvaluationRun) -> RunReport:
    counts = (
        EvaluationResponse.objects.filter(run=run)
        .values("query__benchmark_id", "query__question_type")
        .annotate(
            count=Count("id"),
            right=Count("id", filter=Q(correct=True)),
            unreadable=Count("id", filter=Q(parsed="")),
            exact=Count("id", filter=Q(recognition_score=2)),
            scored=Count("id", filter=Q(recognition_score__isnull=False)),
            recognition=Avg("recognition_score"),
            content=Avg("content_score"),
        )
    )
    by_benchmark: dict[int, dict[str, dict]] = {}
    for entry in counts:
        by_benchmark.setdefault(entry["query__benchmark_id"], {})[entry["query__question_type"]] = entry
    benchmarks = list(run.benchmarks.order_by("name")) if run.pk else []
    rows = []
    for benchmark in benchmarks:
        kinds = by_benchmark.get(benchmark.pk, {})
        pair, multi, open_ = kinds.get("pair", {}), kinds.get("multi", {}), kinds.get("open", {})
        pair_count, multi_count = pair.get("count", 0), multi.get("count", 0)
        pair_right, multi_right = pair.get("right", 0), multi.get("right", 0)
        rows.append(
            BenchmarkRow(
                benchmark_id=benchmark.pk,
                benchmark=str(benchmark),
                pair=_percent(pair_right, pair_count),
                multi=_percent(multi_right, multi_count),
                total=_percent(pair_right + multi_right, pair_count + multi_count),
                pair_count=pair_count,
                multi_count=multi_count,
                correct=pair_right + multi_right,
                unreadable=pair.get("unreadable", 0) + multi.get("unreadable", 0),
                open_count=open_.get("count", 0),
                recognition=open_.get("recognition"),
                content=open_.get("content"),
                recognition_accuracy=_percent(open_.get("exact", 0), open_.get("scored", 0)),
            )
        )
    return RunReport(
        run_id=run.pk,
        run=run.name,
        rows=rows,
        mean_pair=_mean([row.pair for row in rows]),
        mean_multi=_mean([row.multi for row in rows]),
        mean_total=_mean([row.total for row in rows]),
        answered=sum(entry["count"] for entry in counts),
    )


@dataclass(frozen=True)
class Comparison:
    """Runs side by side on the benchmarks they share; deltas are against the first run (the base)."""

    runs: list[RunReport]
    benchmarks: list[tuple[int, str]]  # (id, display name), in column order

    def cell(self, report: RunReport, benchmark_id: int, kind: str) -> float | None:
        row = report.row(benchmark_id)
        return getattr(row, kind) if row else None

    def delta(self, report: RunReport, benchmark_id: int, kind: str) -> float | None:
        base, value = self.cell(self.runs[0], benchmark_id, kind), self.cell(report, benchmark_id, kind)
        return None if base is None or value is None else value - base

    def mean(self, report: RunReport, kind: str) -> float | None:
        """The mean over the shared benchmarks only, so every run's mean averages the same columns."""
        return _mean([self.cell(report, benchmark_id, kind) for benchmark_id, _ in self.benchmarks])


def runs_compare(runs: Sequence[EvaluationRun]) -> Comparison:
    reports = [run_report(run) for run in runs]
    shared: list[tuple[int, str]] | None = None
    for report in reports:
        columns = [(row.benchmark_id, row.benchmark) for row in report.rows]
        shared = columns if shared is None else [column for column in shared if column in columns]
    return Comparison(runs=reports, benchmarks=shared or [])


@dataclass(frozen=True)
class ScalingPoint:
    run_id: int
    run: str
    training_set_size: int
    accuracy: float  # total accuracy in percent


def scaling_series(runs: Sequence[EvaluationRun]) -> dict[str, list[ScalingPoint]]:
    """Per benchmark (and "Mean"), each run's total accuracy at its training-set size, by size."""
    from evaluation.services.runs import evaluation_run_training_set_size

    series: dict[str, list[ScalingPoint]] = {}
    for run in runs:
        report = run_report(run)
        size = evaluation_run_training_set_size(run)
        for row in report.rows:
            if row.total is not None:
                series.setdefault(row.benchmark, []).append(ScalingPoint(run.pk, run.name, size, row.total))
        if report.mean_total is not None:
            series.setdefault("Mean", []).append(ScalingPoint(run.pk, run.name, size, report.mean_total))
    return {
        name: sorted(points, key=lambda point: point.training_set_size) for name, points in series.items()
    }
