"""Reading exports, and handing their archives out."""

import base64

from django.db.models import QuerySet
from django.http import FileResponse

from training.models import DatasetExport


def exports_ready() -> QuerySet[DatasetExport]:
    return DatasetExport.objects.filter(status=DatasetExport.Status.READY).select_related("snapshot")


def exports_of_snapshot(*, snapshot_id: int) -> QuerySet[DatasetExport]:
    """All of a snapshot's exports, building and failed ones too (the snapshot page shows their jobs)."""
    return DatasetExport.objects.filter(snapshot_id=snapshot_id).select_related("job", "created_by")


def export_download_response(export: DatasetExport) -> FileResponse:
    """The archive, streamed from the media storage, with its checksum in the headers."""
    response = FileResponse(export.file.open("rb"), as_attachment=True, filename=export.file_name)
    response["X-Checksum-SHA256"] = export.sha256
    response["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(export.sha256)).decode()
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
