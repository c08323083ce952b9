"""The evaluation app in the admin: benchmarks (drafted, then built on a worker with "Save and build") and
evaluation runs (drafted, launched and cancelled here; watched and compared on their own pages)."""

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from evaluation.forms import BenchmarkAdminForm, EvaluationRunAdminForm
from evaluation.models import Benchmark, EvaluationRun
from evaluation.services.benchmarks import BenchmarkError, benchmark_build_launch
from evaluation.services.runs import EvaluationRunError, evaluation_run_cancel, evaluation_run_launch


def _may_start_jobs(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    if request.user.has_perm("jobs.add_job"):
        return True
    model_admin.message_user(request, "You don't have permission to start jobs.", level=messages.ERROR)
    return False


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    form = BenchmarkAdminForm
    list_display = [
        "name",
        "display_name",
        "source",
        "domain",
        "status",
        "pair_count",
        "multi_count",
        "open_count",
    ]
    list_filter = ["source", "domain", "status"]
    search_fields = ["name", "display_name", "source_path"]
    actions = ["build_selected"]
    change_form_template = "admin/evaluation/benchmark/change_form.html"
    built_fields = [
        "status",
        "pair_count",
        "multi_count",
        "open_count",
        "notes",
        "job",
        "built_at",
        "created_at",
    ]

    def get_fields(self, request: HttpRequest, obj: Benchmark | None = None) -> list[str]:
        fields = list(BenchmarkAdminForm.Meta.fields)
        return fields + self.built_fields if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Benchmark | None = None) -> list[str]:
        if obj is None:
            return []
        # Built queries are what runs answer: the source and counts are fixed once built.
        locked = [field for field in BenchmarkAdminForm.Meta.fields if field not in ("name", "display_name")]
        return [*(locked if obj.status == Benchmark.Status.READY else []), *self.built_fields]

    def save_model(self, request: HttpRequest, obj: Benchmark, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Benchmark, post_url_continue: str | None = None):
        if "_build" in request.POST:
            return self._build(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Benchmark):
        if "_build" in request.POST:
            return self._build(request, obj)
        return super().response_change(request, obj)

    def _build(self, request: HttpRequest, benchmark: Benchmark):
        if _may_start_jobs(self, request):
            try:
                job = benchmark_build_launch(benchmark=benchmark, launched_by=request.user)
                self.message_user(request, f"Building {benchmark} (job #{job.pk}).")
            except BenchmarkError as exc:
                self.message_user(request, f"Not built: {exc}", level=messages.ERROR)
        return redirect("admin:evaluation_benchmark_change", benchmark.pk)

    @admin.action(description="Build the selected benchmarks", permissions=["change"])
    def build_selected(self, request: HttpRequest, queryset: Any) -> None:
        for benchmark in queryset:
            try:
                benchmark_build_launch(benchmark=benchmark, launched_by=request.user)
                self.message_user(request, f"Building {benchmark}.")
            except BenchmarkError as exc:
                self.message_user(request, f"{benchmark} not built: {exc}", level=messages.WARNING)


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    """Runs are drafted here and launched with "Save and launch"; their page shows them running and their
    report. A launched run's settings are fixed, so its responses keep meaning what they say."""

    form = EvaluationRunAdminForm
    list_display = ["id", "name", "backend", "model", "training_run", "run_status", "created_at", "page"]
    list_filter = ["backend", "job__status"]
    list_select_related = ["job", "training_run"]
    search_fields = ["name", "model", "notes"]
    actions = ["launch_selected", "cancel_selected"]
    change_form_template = "admin/evaluation/evaluationrun/change_form.html"
    launch_fields = ["run_status", "page", "job", "model_resolved", "created_by", "created_at"]

    def get_fields(self, request: HttpRequest, obj: EvaluationRun | None = None) -> list[str]:
        fields = list(EvaluationRunAdminForm.Meta.fields)
        return fields + self.launch_fields if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: EvaluationRun | None = None) -> list[str]:
        if obj is None:
            return []
        locked = ["benchmarks", *EvaluationRun.SETTINGS_FIELDS] if obj.job_id else []
        return [*locked, *self.launch_fields]

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        context["evaluation_queue"] = settings.EVALUATION_QUEUE
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: EvaluationRun, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: EvaluationRun, post_url_continue: str | None = None):
        if "_launch" in request.POST:
            return self._launch_and_show(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: EvaluationRun):
        if "_launch" in request.POST:
            return self._launch_and_show(request, obj)
        if "_cancel" in request.POST:
            try:
                evaluation_run_cancel(run=obj)
                self.message_user(request, f"Run {obj} cancelled.")
            except EvaluationRunError as exc:
                self.message_user(request, str(exc), level=messages.WARNING)
            return redirect("evaluation:run_detail", run_id=obj.pk)
        return super().response_change(request, obj)

    def _launch_and_show(self, request: HttpRequest, run: EvaluationRun):
        if not _may_start_jobs(self, request):
            return redirect("admin:evaluation_evaluationrun_change", run.pk)
        try:
            job = evaluation_run_launch(run=run, launched_by=request.user)
        except EvaluationRunError as exc:
            self.message_user(request, f"Not launched: {exc}", level=messages.ERROR)
            return redirect("admin:evaluation_evaluationrun_change", run.pk)
        self.message_user(request, f"Run {run} launched (job #{job.pk}, queue {settings.EVALUATION_QUEUE}).")
        return redirect("evaluation:run_detail", run_id=run.pk)

    @admin.action(description="Launch the selected runs", permissions=["change"])
    def launch_selected(self, request: HttpRequest, queryset: Any) -> None:
        for run in queryset:
            try:
                evaluation_run_launch(run=run, launched_by=request.user)
                self.message_user(request, f"Run {run} launched.")
            except EvaluationRunError as exc:
                self.message_user(request, f"Run {run} not launched: {exc}", level=messages.WARNING)

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> None:
        for run in queryset.select_related("job"):
            try:
                evaluation_run_cancel(run=run)
                self.message_user(request, f"Run {run} cancelled.")
            except EvaluationRunError as exc:
                self.message_user(request, f"Run {run}: {exc}", level=messages.WARNING)

    @admin.display(description="Status", ordering="job__status")
    def run_status(self, run: EvaluationRun) -> str:
        return run.status

    @admin.display(description="Run page")
    def page(self, run: EvaluationRun) -> str:
        return format_html('<a href="{}">Open</a>', reverse("evaluation:run_detail", args=[run.pk]))
