"""The exports panel of a snapshot's page (loaded and refreshed by htmx), building one, downloading one."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from annotation.models import DatasetSnapshot
from annotation.roles import user_can_read_dataset
from training.forms import ExportCreateForm
from training.models import DatasetExport
from training.selectors import export_download_response, exports_of_snapshot, exports_ready
from training.services.exports import ExportError, export_create


def _panel(request: HttpRequest, snapshot: DatasetSnapshot, form: ExportCreateForm) -> HttpResponse:
    exports = list(exports_of_snapshot(snapshot_id=snapshot.pk))
    context = {
        "snapshot": snapshot,
        "exports": exports,
        "form": form,
        "building": any(export.status == DatasetExport.Status.BUILDING for export in exports),
    }
    return render(request, "dataset/_exports.html", context)


@login_required
def exports_panel(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    if not user_can_read_dataset(request.user):
        raise PermissionDenied
    snapshot = get_object_or_404(DatasetSnapshot, pk=snapshot_id)
    return _panel(request, snapshot, ExportCreateForm())


@login_required
@permission_required("training.add_datasetexport", raise_exception=True)
@require_POST
def export_create_view(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    snapshot = get_object_or_404(DatasetSnapshot, pk=snapshot_id)
    form = ExportCreateForm(request.POST)
    if form.is_valid():
        try:
            export_create(
                snapshot=snapshot,
                format=form.cleaned_data["format"],
                max_side=form.cleaned_data["max_side"],
                keep_original_size=form.cleaned_data["keep_original_size"],
                image_root=form.cleaned_data["image_root"],
                created_by=request.user,
            )
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            form = ExportCreateForm()
    return _panel(request, snapshot, form)


@login_required
def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    if not user_can_read_dataset(request.user):
        raise PermissionDenied
    return export_download_response(get_object_or_404(exports_ready(), pk=export_id))
