"""A snapshot's exports over REST: what was built, its checksum, and the archive itself."""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.api import DatasetAPIView, frozen_snapshot_or_404, object_or_404
from training.models import DatasetExport
from training.selectors import export_download_response, exports_ready


class ExportOutputSerializer(serializers.ModelSerializer):
    snapshot = serializers.IntegerField(source="snapshot_id")
    file_name = serializers.CharField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "snapshot",
            "format",
            "parameters",
            "file_name",
            "sha256",
            "size_bytes",
            "row_count",
            "created_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, export: DatasetExport) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:export-download", args=[export.pk]))


class SnapshotExportListApi(DatasetAPIView):
    @extend_schema(responses=ExportOutputSerializer(many=True), operation_id="snapshots_exports_list")
    def get(self, request: Request, snapshot_id: int) -> Response:
        snapshot = frozen_snapshot_or_404(snapshot_id)
        exports = exports_ready().filter(snapshot=snapshot)
        return Response(ExportOutputSerializer(exports, many=True, context={"request": request}).data)


class ExportDownloadApi(DatasetAPIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The export archive.")
        },
        operation_id="exports_download",
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        """The archive; its SHA-256 is in the ``Digest`` and ``X-Checksum-SHA256`` headers."""
        return export_download_response(object_or_404(exports_ready(), export_id))
