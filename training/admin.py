"""The training app in the admin: exports (read-only: built and downloaded from a snapshot's page) and training
runs (drafted, launched and cancelled here; watched on their own page)."""

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from training.forms import TrainingRunAdminForm
from training.models import DatasetExport, TrainingRun
from training.services.runs import TrainingRunError, training_run_cancel, training_run_launch


@admin.register(DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = ["id", "snapshot", "format", "status", "row_count", "size_bytes", "created_at", "download"]
    list_filter = ["format", "status"]
    list_select_related = ["snapshot"]
    fields = [
        "snapshot",
        "format",
        "parameters",
        "status",
        "file",
        "sha256",
        "size_bytes",
        "row_count",
        "job",
        "created_by",
        "created_at",
        "finished_at",
    ]
    readonly_fields = fields

    @admin.display(description="Download")
    def download(self, export: DatasetExport) -> str:
        if export.status != DatasetExport.Status.READY:
            return "–"
        return format_html(
            '<a href="{}">{}</a>', reverse("exports:download", args=[export.pk]), export.file_name
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # built from the snapshot's page

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Runs are drafted here and launched with "Save and launch" (or the list's action); their page shows them
    running. A launched run's settings are fixed, so its checkpoints and metrics keep meaning what they say."""

    form = TrainingRunAdminForm
    list_display = [
        "id",
        "name",
        "snapshot",
        "method",
        "backend",
        "base_model",
        "run_status",
        "created_at",
        "page",
    ]
    list_filter = ["method", "backend", "job__status"]
    list_select_related = ["snapshot", "job"]
    search_fields = ["name", "base_model", "notes"]
    actions = ["launch_selected", "cancel_selected"]
    change_form_template = "admin/training/trainingrun/change_form.html"
    settings_fields = list(TrainingRun.SETTINGS_FIELDS)
    launch_fields = [
        "run_status",
        "page",
        "launcher",
        "job",
        "export",
        "output_dir",
        "command",
        "checkpoint",
        "summary",
        "created_by",
        "created_at",
    ]

    def get_fields(self, request: HttpRequest, obj: TrainingRun | None = None) -> list[str]:
        fields = ["name", *self.settings_fields, "notes"]
        return fields + self.launch_fields if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: TrainingRun | None = None) -> list[str]:
        if obj is None:
            return []
        locked = self.settings_fields if obj.job_id else []
        return [*locked, *self.launch_fields]

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        context["training_gpu_queue"] = settings.TRAINING_GPU_QUEUE
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: TrainingRun, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: TrainingRun, post_url_continue: str | None = None):
        if "_launch" in request.POST:
            return self._launch_and_show(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: TrainingRun):
        if "_launch" in request.POST:
            return self._launch_and_show(request, obj)
        if "_cancel" in request.POST:
            try:
                training_run_cancel(run=obj)
                self.message_user(request, f"Run {obj} cancelled: its processes are being stopped.")
            except TrainingRunError as exc:
                self.message_user(request, str(exc), level=messages.WARNING)
            return redirect("training:run_detail", run_id=obj.pk)
        return super().response_change(request, obj)

    def _launch_and_show(self, request: HttpRequest, run: TrainingRun):
        if not request.user.has_perm("jobs.add_job"):
            self.message_user(request, "You don't have permission to start jobs.", level=messages.ERROR)
            return redirect("admin:training_trainingrun_change", run.pk)
        try:
            job = training_run_launch(run=run, launched_by=request.user)
        except TrainingRunError as exc:
            self.message_user(request, f"Not launched: {exc}", level=messages.ERROR)
            return redirect("admin:training_trainingrun_change", run.pk)
        self.message_user(
            request, f"Run {run} launched (job #{job.pk}, queue {settings.TRAINING_GPU_QUEUE})."
        )
        return redirect("training:run_detail", run_id=run.pk)

    @admin.action(description="Launch the selected runs", permissions=["change"])
    def launch_selected(self, request: HttpRequest, queryset: Any) -> None:
        for run in queryset:
            try:
                training_run_launch(run=run, launched_by=request.user)
                self.message_user(request, f"Run {run} launched.")
            except TrainingRunError as exc:
                self.message_user(request, f"Run {run} not launched: {exc}", level=messages.WARNING)

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> None:
        for run in queryset.select_related("job"):
            try:
                training_run_cancel(run=run)
                self.message_user(request, f"Run {run} cancelled.")
            except TrainingRunError as exc:
                self.message_user(request, f"Run {run}: {exc}", level=messages.WARNING)

    @admin.display(description="Status", ordering="job__status")
    def run_status(self, run: TrainingRun) -> str:
        return run.status

    @admin.display(description="Run page")
    def page(self, run: TrainingRun) -> str:
        return format_html('<a href="{}">Open</a>', reverse("training:run_detail", args=[run.pk]))
