"""Pages of the catalog for signed-in users. The review queues come with their own views."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.static import serve

from annotation.models import Category
from annotation.roles import user_can_read_dataset, user_is_annotator, user_is_researcher
from annotation.selectors import catalog_counts, category_list_with_counts, product_list
from jobs.selectors import job_list


@login_required
def home(request: HttpRequest) -> HttpResponse:
    is_researcher = user_is_researcher(request.user)
    context = {
        "counts": catalog_counts(),
        "is_researcher": is_researcher,
        "is_annotator": user_is_annotator(request.user),
        "recent_jobs": job_list()[:8] if is_researcher else [],
    }
    return render(request, "annotation/home.html", context)


@login_required
@permission_required("annotation.view_product", raise_exception=True)
def catalog(request: HttpRequest) -> HttpResponse:
    category = None
    if request.GET.get("category"):
        category = get_object_or_404(Category, pk=request.GET["category"])
    page = Paginator(product_list(category=category), 24).get_page(request.GET.get("page"))
    context = {"categories": category_list_with_counts(), "category": category, "page": page}
    return render(request, "annotation/catalog.html", context)


@login_required
def media_file(request: HttpRequest, path: str) -> HttpResponse:
    """A file under MEDIA_ROOT, for signed-in users only (exports: for those who may read the dataset).
    ``serve`` refuses paths that leave the root."""
    if path.startswith("exports/") and not user_can_read_dataset(request.user):
        raise PermissionDenied
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    if path.startswith("images/"):
        # Image names are their content's hash, so a cached copy never goes stale.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
    else:
        response["Cache-Control"] = "private, no-cache"
    return response
