"""The dataset over REST (``/api/v1/``): frozen snapshots, their pairs, instances and images.

Thin views in the HackSoft style: a filter serializer validates the query (a bad value is a 400, never a
500), a selector reads, an output serializer writes. Lists use cursor pagination, which stays fast at any
depth of a 561K-pair snapshot and never skips or repeats a row. Only researchers and API users read the
dataset (the ``annotation.read_dataset`` permission): anonymous callers get 401, annotators 403.
"""

import json
from collections.abc import Iterator

from django.core.files.storage import default_storage
from django.db.models import Model, Prefetch, QuerySet
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.dataset.comparison import snapshot_compare
from annotation.dataset.pairs import PairSource, Split
from annotation.dataset.selectors import (
    snapshot_images,
    snapshot_instances,
    snapshot_pair_rows,
    snapshot_pairs,
    snapshots_frozen,
)
from annotation.models import DatasetSnapshot, Image, Instance, SnapshotPair

MAX_DATABASE_ID = 2**63 - 1


class CanReadDataset(BasePermission):
    message = "Reading the dataset needs the researcher or API user role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("annotation.read_dataset"))


class DatasetAPIView(APIView):
    permission_classes = [CanReadDataset]


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class NewestFirstPagination(IdCursorPagination):
    ordering = "-id"


def object_or_404(queryset: QuerySet, pk: int) -> Model:
    """The row with that id; a 404 (not a database overflow error) for ids no row can have."""
    if not 0 < pk <= MAX_DATABASE_ID:
        raise Http404
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


def frozen_snapshot_or_404(pk: int) -> DatasetSnapshot:
    return object_or_404(snapshots_frozen(), pk)


def image_file_url(request: Request, image_id: int) -> str:
    return request.build_absolute_uri(reverse("api:image-file", args=[image_id]))


def paginated(view: APIView, request: Request, queryset: QuerySet, serializer: type) -> Response:
    """A page of ``queryset`` by the view's ``pagination_class`` (which drf-spectacular documents too)."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    data = serializer(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)


# --- Snapshots ---------------------------------------------------------------------------------------


class SnapshotOutputSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    pairs_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "name",
            "version",
            "description",
            "author",
            "parameters",
            "content_hash",
            "pair_count",
            "positive_count",
            "negative_count",
            "image_count",
            "instance_count",
            "created_at",
            "frozen_at",
            "pairs_url",
            "download_url",
        ]

    def get_pairs_url(self, snapshot: DatasetSnapshot) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:snapshot-pairs", args=[snapshot.pk]))

    def get_download_url(self, snapshot: DatasetSnapshot) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("api:snapshot-download", args=[snapshot.pk])
        )


class SnapshotDetailOutputSerializer(SnapshotOutputSerializer):
    class Meta(SnapshotOutputSerializer.Meta):
        fields = [*SnapshotOutputSerializer.Meta.fields, "statistics"]


class SnapshotListApi(DatasetAPIView):
    pagination_class = NewestFirstPagination

    @extend_schema(responses=SnapshotOutputSerializer(many=True), operation_id="snapshots_list")
    def get(self, request: Request) -> Response:
        return paginated(self, request, snapshots_frozen(), SnapshotOutputSerializer)


class SnapshotDetailApi(DatasetAPIView):
    @extend_schema(responses=SnapshotDetailOutputSerializer, operation_id="snapshots_retrieve")
    def get(self, request: Request, snapshot_id: int) -> Response:
        snapshot = frozen_snapshot_or_404(snapshot_id)
        return Response(SnapshotDetailOutputSerializer(snapshot, context={"request": request}).data)


class SnapshotComparisonApi(DatasetAPIView):
    class OutputSerializer(serializers.Serializer):
        old = serializers.IntegerField()
        new = serializers.IntegerField()
        added = serializers.IntegerField()
        removed = serializers.IntegerField()
        kept = serializers.IntegerField()
        answer_changed = serializers.IntegerField()
        added_by_source = serializers.DictField(child=serializers.IntegerField())
        removed_by_source = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(responses=OutputSerializer, operation_id="snapshots_compare")
    def get(self, request: Request, snapshot_id: int, other_id: int) -> Response:
        """What ``snapshot_id`` added and removed relative to ``other_id`` (pairs keyed by their two images)."""
        comparison = snapshot_compare(
            old=frozen_snapshot_or_404(other_id), new=frozen_snapshot_or_404(snapshot_id)
        )
        data = {
            "old": other_id,
            "new": snapshot_id,
            "added": comparison.added_count,
            "removed": comparison.removed_count,
            "kept": comparison.kept_count,
            "answer_changed": comparison.answer_changed.count(),
            "added_by_source": comparison.added_by_source,
            "removed_by_source": comparison.removed_by_source,
        }
        return Response(self.OutputSerializer(data).data)


# --- Pairs -------------------------------------------------------------------------------------------


class PairFilterSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=["yes", "no"], required=False, help_text="The answer.")
    source = serializers.ChoiceField(choices=[s.value for s in PairSource], required=False)
    category = serializers.CharField(required=False, max_length=200, help_text="A category name.")
    split = serializers.ChoiceField(choices=[s.value for s in Split], required=False)


PAIR_FILTER_PARAMETERS = [
    OpenApiParameter("label", OpenApiTypes.STR, enum=["yes", "no"], description="The answer."),
    OpenApiParameter("source", OpenApiTypes.STR, enum=[s.value for s in PairSource]),
    OpenApiParameter("category", OpenApiTypes.STR, description="A category name."),
    OpenApiParameter("split", OpenApiTypes.STR, enum=[s.value for s in Split]),
]


def pair_filters(request: Request) -> dict[str, str]:
    filters = PairFilterSerializer(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return dict(filters.validated_data)


class PairOutputSerializer(serializers.ModelSerializer):
    answer = serializers.CharField()
    category = serializers.CharField(source="category.name")
    supercategory = serializers.CharField(source="category.supercategory")
    image_a_url = serializers.SerializerMethodField()
    image_b_url = serializers.SerializerMethodField()

    class Meta:
        model = SnapshotPair
        fields = [
            "id",
            "image_a",
            "image_b",
            "answer",
            "same",
            "source",
            "split",
            "category",
            "supercategory",
            "instance_a",
            "instance_b",
            "image_a_url",
            "image_b_url",
        ]

    def get_image_a_url(self, pair: SnapshotPair) -> str:
        return image_file_url(self.context["request"], pair.image_a_id)

    def get_image_b_url(self, pair: SnapshotPair) -> str:
        return image_file_url(self.context["request"], pair.image_b_id)


class SnapshotPairListApi(DatasetAPIView):
    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=PAIR_FILTER_PARAMETERS,
        responses=PairOutputSerializer(many=True),
        operation_id="snapshots_pairs_list",
    )
    def get(self, request: Request, snapshot_id: int) -> Response:
        snapshot = frozen_snapshot_or_404(snapshot_id)
        pairs = snapshot_pairs(snapshot=snapshot, **pair_filters(request)).select_related("category")
        return paginated(self, request, pairs, PairOutputSerializer)


class SnapshotDownloadApi(DatasetAPIView):
    @extend_schema(
        parameters=PAIR_FILTER_PARAMETERS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="JSON lines.")
        },
        operation_id="snapshots_download",
    )
    def get(self, request: Request, snapshot_id: int) -> StreamingHttpResponse:
        """Every pair of the snapshot (filtered) as JSON lines, streamed in constant memory."""
        snapshot = frozen_snapshot_or_404(snapshot_id)
        filters = pair_filters(request)
        url_of_zero = image_file_url(request, 0)
        response = StreamingHttpResponse(
            _jsonl_lines(snapshot, filters, url_of_zero), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = f'attachment; filename="{snapshot.name}-v{snapshot.version}.jsonl"'
        response["X-Content-Hash"] = snapshot.content_hash
        return response


def _jsonl_lines(snapshot: DatasetSnapshot, filters: dict[str, str], url_of_zero: str) -> Iterator[bytes]:
    prefix, suffix = url_of_zero.rsplit("/0/", 1)
    for row in snapshot_pair_rows(snapshot=snapshot, **filters):
        data = row.to_json(with_files=False)
        data["image_a_url"] = f"{prefix}/{row.image_a_id}/{suffix}"
        data["image_b_url"] = f"{prefix}/{row.image_b_id}/{suffix}"
        yield (json.dumps(data, separators=(",", ":")) + "\n").encode()


# --- Instances and images ----------------------------------------------------------------------------


class ImageOutputSerializer(serializers.ModelSerializer):
    instance = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "instance", "origin", "width", "height", "sha256", "review_status", "url"]

    def get_instance(self, image: Image) -> int | None:
        return image.generated_for_id if image.product_id is None else image.product.instance_id

    def get_url(self, image: Image) -> str:
        return image_file_url(self.context["request"], image.pk)


class InstanceOutputSerializer(serializers.ModelSerializer):
    category = serializers.CharField(source="category.name")
    supercategory = serializers.CharField(source="category.supercategory")
    images = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = ["id", "name", "category", "supercategory", "merged_into", "images"]

    @extend_schema_field(ImageOutputSerializer(many=True))
    def get_images(self, instance: Instance) -> list[dict]:
        images = [image for product in instance.products.all() for image in product.images.all()]
        return ImageOutputSerializer(images, many=True, context=self.context).data


class CollectionFilterSerializer(serializers.Serializer):
    snapshot = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DATABASE_ID)
    category = serializers.CharField(required=False, max_length=200)


def collection_filters(request: Request) -> tuple[DatasetSnapshot | None, str | None]:
    filters = CollectionFilterSerializer(data=request.query_params)
    filters.is_valid(raise_exception=True)
    snapshot_id = filters.validated_data.get("snapshot")
    snapshot = frozen_snapshot_or_404(snapshot_id) if snapshot_id else None
    return snapshot, filters.validated_data.get("category")


COLLECTION_PARAMETERS = [
    OpenApiParameter("snapshot", OpenApiTypes.INT, description="Only what this frozen snapshot shows."),
    OpenApiParameter("category", OpenApiTypes.STR, description="A category name."),
]


def instances_with_images(instances: QuerySet[Instance]) -> QuerySet[Instance]:
    listed = Image.objects.filter(is_listed=True).order_by("position", "pk")
    return instances.select_related("category").prefetch_related(
        Prefetch("products__images", queryset=listed)
    )


class InstanceListApi(DatasetAPIView):
    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=COLLECTION_PARAMETERS,
        responses=InstanceOutputSerializer(many=True),
        operation_id="instances_list",
    )
    def get(self, request: Request) -> Response:
        snapshot, category = collection_filters(request)
        instances = (
            snapshot_instances(snapshot=snapshot) if snapshot else Instance.objects.filter(merged_into=None)
        )
        if category:
            instances = instances.filter(category__name=category)
        return paginated(self, request, instances_with_images(instances), InstanceOutputSerializer)


class InstanceDetailApi(DatasetAPIView):
    @extend_schema(responses=InstanceOutputSerializer, operation_id="instances_retrieve")
    def get(self, request: Request, instance_id: int) -> Response:
        instance = object_or_404(instances_with_images(Instance.objects.all()), instance_id)
        return Response(InstanceOutputSerializer(instance, context={"request": request}).data)


class ImageListApi(DatasetAPIView):
    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=COLLECTION_PARAMETERS,
        responses=ImageOutputSerializer(many=True),
        operation_id="images_list",
    )
    def get(self, request: Request) -> Response:
        snapshot, category = collection_filters(request)
        images = snapshot_images(snapshot=snapshot) if snapshot else Image.objects.all()
        if category:
            images = images.filter(product__category__name=category) | images.filter(
                generated_for__category__name=category
            )
        images = images.select_related("product")
        return paginated(self, request, images, ImageOutputSerializer)


class ImageDetailApi(DatasetAPIView):
    @extend_schema(responses=ImageOutputSerializer, operation_id="images_retrieve")
    def get(self, request: Request, image_id: int) -> Response:
        image = object_or_404(Image.objects.select_related("product"), image_id)
        return Response(ImageOutputSerializer(image, context={"request": request}).data)


class ImageFileApi(DatasetAPIView):
    @extend_schema(
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The stored image file.")
        },
        operation_id="images_file",
    )
    def get(self, request: Request, image_id: int) -> FileResponse:
        image = object_or_404(Image.objects.all(), image_id)
        response = FileResponse(default_storage.open(image.file.name, "rb"))
        # Image files are named by their content's hash: a cached copy never goes stale.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        response["ETag"] = f'"{image.sha256}"'
        return response
