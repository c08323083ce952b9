"""Researchers' view of every job: progress, errors, results, the report file, and cancelling."""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from jobs.models import Job
from jobs.services import JobStateError, job_cancel


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "progress", "message", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["kind", "message", "error"]
    list_select_related = ["created_by"]
    readonly_fields = [
        "kind",
        "status",
        "parameters",
        "progress",
        "message",
        "result",
        "download",
        "error",
        "created_by",
        "celery_task_id",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "live_page",
    ]
    exclude = ["result_file", "progress_done", "progress_total"]
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are started by the stages' own pages and commands

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        if job.progress_total:
            return (
                f"{job.progress_done:,} / {job.progress_total:,} ({100 * (job.progress_fraction or 0):.0f}%)"
            )
        return f"{job.progress_done:,}"

    @admin.display(description="result file")
    def download(self, job: Job) -> str:
        if not job.result_file:
            return "-"
        return format_html('<a href="{}">Download</a>', reverse("jobs:result_file", args=[job.pk]))

    @admin.display(description="live progress")
    def live_page(self, job: Job) -> str:
        return format_html('<a href="{}">Open the job page</a>', reverse("jobs:detail", args=[job.pk]))

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request: HttpRequest, queryset) -> None:
        for job in queryset:
            try:
                job_cancel(job=job)
            except JobStateError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Cancelled job #{job.pk}.")
