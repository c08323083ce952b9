"""The dataset pages: the snapshots, one snapshot's statistics and plots, freezing one, comparing two.

Researchers and API users see them; freezing needs the researcher's ``add_datasetsnapshot`` permission. The
exports panel on a snapshot's page is the training app's (``training.views``), loaded by htmx.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotation.dataset.charts import label_bars_svg
from annotation.dataset.comparison import snapshot_compare
from annotation.dataset.forms import SnapshotCompareForm, SnapshotFreezeForm
from annotation.dataset.snapshots import snapshot_create
from annotation.dataset.statistics import statistics_warnings
from annotation.models import DatasetSnapshot
from annotation.roles import user_can_read_dataset

COMPARISON_ROWS_SHOWN = 50


def _require_dataset_reader(request: HttpRequest) -> None:
    if not user_can_read_dataset(request.user):
        raise PermissionDenied


@login_required
def snapshot_list(request: HttpRequest) -> HttpResponse:
    _require_dataset_reader(request)
    snapshots = DatasetSnapshot.objects.select_related("created_by", "job")
    if not request.user.has_perm("annotation.add_datasetsnapshot"):
        snapshots = snapshots.filter(status=DatasetSnapshot.Status.FROZEN)
    return render(request, "dataset/snapshot_list.html", {"snapshots": snapshots})


@login_required
@permission_required("annotation.add_datasetsnapshot", raise_exception=True)
def snapshot_freeze(request: HttpRequest) -> HttpResponse:
    form = SnapshotFreezeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            parameters = form.parameters()
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            snapshot = snapshot_create(
                name=form.cleaned_data["name"],
                parameters=parameters,
                description=form.cleaned_data["description"],
                created_by=request.user,
            )
            messages.success(request, f"Freezing {snapshot}: job #{snapshot.job_id} is building its pairs.")
            return redirect("dataset:snapshot", snapshot_id=snapshot.pk)
    return render(request, "dataset/snapshot_freeze.html", {"form": form})


@login_required
def snapshot_detail(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    _require_dataset_reader(request)
    snapshot = get_object_or_404(DatasetSnapshot.objects.select_related("created_by", "job"), pk=snapshot_id)
    if not snapshot.is_frozen and not request.user.has_perm("annotation.add_datasetsnapshot"):
        raise PermissionDenied
    statistics = snapshot.statistics
    charts = []
    if snapshot.is_frozen:
        for key, title in (
            ("by_source", "Pairs by source"),
            ("by_split", "Pairs by split"),
            ("by_supercategory", "Pairs by supercategory"),
            ("by_category", "Pairs by category"),
        ):
            charts.append({"key": key, "title": title, "svg": label_bars_svg(statistics[key], title=title)})
    context = {
        "snapshot": snapshot,
        "statistics": statistics,
        "charts": charts,
        "compare_form": SnapshotCompareForm(snapshot=snapshot),
        "warnings": statistics_warnings(statistics) if snapshot.is_frozen else [],
    }
    return render(request, "dataset/snapshot_detail.html", context)


@login_required
def snapshot_comparison(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    _require_dataset_reader(request)
    snapshot = get_object_or_404(DatasetSnapshot, pk=snapshot_id, status=DatasetSnapshot.Status.FROZEN)
    form = SnapshotCompareForm(request.GET or None, snapshot=snapshot)
    if not form.is_valid():
        messages.error(request, "Pick a frozen snapshot to compare with.")
        return redirect("dataset:snapshot", snapshot_id=snapshot.pk)
    comparison = snapshot_compare(old=form.cleaned_data["other"], new=snapshot)
    shown = COMPARISON_ROWS_SHOWN
    context = {
        "snapshot": snapshot,
        "comparison": comparison,
        "added": comparison.added.select_related("category")[:shown],
        "removed": comparison.removed.select_related("category")[:shown],
        "answer_changed": comparison.answer_changed.select_related("category")[:shown],
        "answer_changed_count": comparison.answer_changed.count(),
        "rows_shown": shown,
    }
    return render(request, "dataset/snapshot_comparison.html", context)
