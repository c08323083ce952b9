"""Reading exports (and handing their archives out) and training runs (their metrics and log)."""

import base64
from collections.abc import Sequence

from django.db.models import QuerySet
from django.http import FileResponse

from jobs.models import JobLogEntry
from training.models import DatasetExport, TrainingMetric, TrainingRun


def exports_ready() -> QuerySet[DatasetExport]:
    return DatasetExport.objects.filter(status=DatasetExport.Status.READY).select_related("snapshot")


def exports_of_snapshot(*, snapshot_id: int) -> QuerySet[DatasetExport]:
    """All of a snapshot's exports, building and failed ones too (the snapshot page shows their jobs)."""
    return DatasetExport.objects.filter(snapshot_id=snapshot_id).select_related("job", "created_by")


def export_download_response(export: DatasetExport) -> FileResponse:
    """The archive, streamed from the media storage, with its checksum in the headers."""
    response = FileResponse(export.file.open("rb"), as_attachment=True, filename=export.file_name)
    response["X-Checksum-SHA256"] = export.sha256
    response["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(export.sha256)).decode()
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def runs_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("snapshot", "job", "created_by")


def run_metric_series(
    *, run: TrainingRun, names: Sequence[str], max_points: int = 500
) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (step, value) points, oldest first; long runs are thinned to at most about max_points per
    metric (the last point is always kept). Only the named values are read from the database, not whole rows."""
    rows = list(
        TrainingMetric.objects.filter(run=run)
        .order_by("step")
        .values_list("step", *[f"values__{name}" for name in names])
    )
    series: dict[str, list[tuple[int, float]]] = {name: [] for name in names}
    for step, *values in rows:
        for name, value in zip(names, values, strict=True):
            if isinstance(value, int | float) and not isinstance(value, bool):
                series[name].append((step, float(value)))
    for name, points in series.items():
        stride = max(1, -(-len(points) // max_points))
        if stride > 1:
            series[name] = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    return series


def run_log_tail(*, run: TrainingRun, limit: int = 200) -> list[JobLogEntry]:
    """The newest lines of the run's latest launch, oldest first."""
    if run.job_id is None:
        return []
    return list(reversed(JobLogEntry.objects.filter(job_id=run.job_id).order_by("-id")[:limit]))
