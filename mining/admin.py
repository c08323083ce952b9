"""Researchers start mining from the admin: a page with each stage's parameters, reached from the embeddings
list and from an action on selected products (which mines their sources)."""

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from mining.forms import MiningStartForm
from mining.models import ImageEmbedding
from mining.services.runs import mining_job_enqueue
from mining.services.stages import mining_job_create, stage_defaults


@admin.register(ImageEmbedding)
class ImageEmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "embedder_key", "dim", "created_at"]
    list_filter = ["embedder_key"]
    list_select_related = ["image__product"]
    search_fields = ["image__product__external_id", "image__sha256"]
    fields = ["image", "embedder_key", "dim", "created_at"]
    readonly_fields = fields
    change_list_template = "admin/mining/imageembedding/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # vectors come from the embed stage

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self):
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="mining_start"),
            *super().get_urls(),
        ]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("jobs.add_job"):
            messages.error(request, "You don't have permission to start jobs.")
            return redirect("admin:index")
        initial = {"sources": [s for s in request.GET.get("sources", "").split(",") if s]}
        form = MiningStartForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                job = mining_job_create(
                    stage=form.cleaned_data["stage"], parameters=form.parameters(), created_by=request.user
                )
            except Exception as exc:  # invalid parameters, random weights refused: shown on the form
                form.add_error(None, str(exc))
            else:
                mining_job_enqueue(job=job)
                messages.success(request, f"Mining job #{job.pk} ({job.kind}) queued.")
                return redirect("jobs:detail", job_id=job.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "defaults": stage_defaults(),
            "title": "Start mining",
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/mining/start.html", context)
