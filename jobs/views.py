"""A job's page with live progress (htmx polling), its downloadable result file, and cancelling it.

Anonymous visitors are sent to the login page; a signed-in user without the permission gets 403 rather than
the login form again.
"""

import mimetypes
from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from jobs.models import Job
from jobs.selectors import job_log_tail, job_pace
from jobs.services import JobStateError, job_cancel


@login_required
@permission_required("jobs.view_job", raise_exception=True)
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("created_by", "parent"), pk=job_id)
    return render(request, "jobs/detail.html", _progress_context(job))


@login_required
@permission_required("jobs.view_job", raise_exception=True)
def job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    response = render(request, "jobs/_progress.html", _progress_context(job))
    if job.is_finished and request.htmx:
        # Stop polling and let the page refresh its result section.
        response["HX-Trigger"] = "job-finished"
    return response


def _progress_context(job: Job) -> dict:
    return {
        "job": job,
        "pace": job_pace(job=job),
        "log": job_log_tail(job=job),
        "stages": list(job.children.order_by("pk")),
    }


@login_required
@permission_required("jobs.view_job", raise_exception=True)
def job_result_file(request: HttpRequest, job_id: int) -> FileResponse:
    job = get_object_or_404(Job, pk=job_id)
    if not job.result_file:
        raise Http404("This job has no file.")
    name = PurePosixPath(job.result_file.name).name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(
        job.result_file.open("rb"), as_attachment=True, filename=name, content_type=content_type
    )


@require_POST
@login_required
@permission_required("jobs.change_job", raise_exception=True)
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    try:
        job_cancel(job=job)
        messages.success(request, f"Job #{job.pk} cancelled.")
    except JobStateError as exc:
        messages.warning(request, str(exc))
    return redirect("jobs:detail", job_id=job.pk)
