"""Exports in the admin: read-only; they are built from a snapshot's page and downloaded from there."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from training.models import DatasetExport


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
