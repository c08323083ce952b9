"""``/api/v1/``: the dataset (annotation.api), its exports (training.api), evaluation results (evaluation.api),
and the OpenAPI schema."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from annotation import api as dataset_api
from evaluation import api as evaluation_api
from training import api as export_api

app_name = "api"

urlpatterns = [
    path("snapshots/", dataset_api.SnapshotListApi.as_view(), name="snapshot-list"),
    path("snapshots/<int:snapshot_id>/", dataset_api.SnapshotDetailApi.as_view(), name="snapshot-detail"),
    path(
        "snapshots/<int:snapshot_id>/pairs/", dataset_api.SnapshotPairListApi.as_view(), name="snapshot-pairs"
    ),
    path(
        "snapshots/<int:snapshot_id>/pairs.jsonl",
        dataset_api.SnapshotDownloadApi.as_view(),
        name="snapshot-download",
    ),
    path(
        "snapshots/<int:snapshot_id>/compare/<int:other_id>/",
        dataset_api.SnapshotComparisonApi.as_view(),
        name="snapshot-compare",
    ),
    path(
        "snapshots/<int:snapshot_id>/exports/",
        export_api.SnapshotExportListApi.as_view(),
        name="snapshot-exports",
    ),
    path("exports/<int:export_id>/download/", export_api.ExportDownloadApi.as_view(), name="export-download"),
    path("instances/", dataset_api.InstanceListApi.as_view(), name="instance-list"),
    path("instances/<int:instance_id>/", dataset_api.InstanceDetailApi.as_view(), name="instance-detail"),
    path("images/", dataset_api.ImageListApi.as_view(), name="image-list"),
    path("images/<int:image_id>/", dataset_api.ImageDetailApi.as_view(), name="image-detail"),
    path("images/<int:image_id>/file/", dataset_api.ImageFileApi.as_view(), name="image-file"),
    path("evaluation/benchmarks/", evaluation_api.BenchmarkListApi.as_view(), name="evaluation-benchmarks"),
    path("evaluation/runs/", evaluation_api.RunListApi.as_view(), name="evaluation-runs"),
    path(
        "evaluation/runs/<int:run_id>/", evaluation_api.RunDetailApi.as_view(), name="evaluation-run-detail"
    ),
    path(
        "evaluation/runs/<int:run_id>/responses/",
        evaluation_api.RunResponseListApi.as_view(),
        name="evaluation-run-responses",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
