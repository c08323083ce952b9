"""``/api/v1/evaluation/``: benchmarks, evaluation runs with their accuracy report, and their responses, for
researchers and API users who may see runs (``evaluation.view_evaluationrun``); anonymous callers get 401."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import IdCursorPagination, NewestFirstPagination, object_or_404, paginated
from evaluation.models import Benchmark, BenchmarkQuery, EvaluationResponse, EvaluationRun
from evaluation.reports import run_report
from evaluation.selectors import run_responses, runs_list


class CanViewEvaluation(BasePermission):
    message = "Evaluation results need the researcher role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("evaluation.view_evaluationrun"))


class EvaluationAPIView(APIView):
    permission_classes = [CanViewEvaluation]


class BenchmarkOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Benchmark
        fields = [
            "id",
            "name",
            "display_name",
            "source",
            "domain",
            "status",
            "pair_count",
            "multi_count",
            "open_count",
            "parameters",
            "notes",
            "built_at",
        ]


class BenchmarkListApi(EvaluationAPIView):
    pagination_class = IdCursorPagination

    @extend_schema(responses=BenchmarkOutputSerializer(many=True), operation_id="evaluation_benchmarks_list")
    def get(self, request: Request) -> Response:
        return paginated(self, request, Benchmark.objects.all(), BenchmarkOutputSerializer)


class RowSerializer(serializers.Serializer):
    benchmark_id = serializers.IntegerField()
    benchmark = serializers.CharField()
    pair = serializers.FloatField(allow_null=True, help_text="Accuracy in percent.")
    multi = serializers.FloatField(allow_null=True)
    total = serializers.FloatField(allow_null=True)
    pair_count = serializers.IntegerField()
    multi_count = serializers.IntegerField()
    correct = serializers.IntegerField()
    unreadable = serializers.IntegerField(help_text="Answers with no final answer the parser could read.")
    open_count = serializers.IntegerField()
    recognition = serializers.FloatField(allow_null=True, help_text="The judge's mean, 0 to 2.")
    content = serializers.FloatField(allow_null=True, help_text="The judge's mean, 0 to 3.")
    recognition_accuracy = serializers.FloatField(allow_null=True)


class ReportSerializer(serializers.Serializer):
    rows = RowSerializer(many=True)
    mean_pair = serializers.FloatField(allow_null=True)
    mean_multi = serializers.FloatField(allow_null=True)
    mean_total = serializers.FloatField(allow_null=True)
    answered = serializers.IntegerField()


class RunOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField()
    benchmarks = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationRun
        fields = [
            "id",
            "name",
            "status",
            "backend",
            "model",
            "model_resolved",
            "training_run",
            "training_set_size",
            "benchmarks",
            "options",
            "created_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_benchmarks(self, run: EvaluationRun) -> list[str]:
        return [benchmark.name for benchmark in run.benchmarks.all()]


class RunDetailOutputSerializer(RunOutputSerializer):
    report = serializers.SerializerMethodField()

    class Meta(RunOutputSerializer.Meta):
        fields = [*RunOutputSerializer.Meta.fields, "report"]

    @extend_schema_field(ReportSerializer)
    def get_report(self, run: EvaluationRun) -> dict:
        return ReportSerializer(run_report(run).to_json()).data


class RunListApi(EvaluationAPIView):
    pagination_class = NewestFirstPagination

    @extend_schema(responses=RunOutputSerializer(many=True), operation_id="evaluation_runs_list")
    def get(self, request: Request) -> Response:
        return paginated(self, request, runs_list(), RunOutputSerializer)


class RunDetailApi(EvaluationAPIView):
    @extend_schema(responses=RunDetailOutputSerializer, operation_id="evaluation_runs_retrieve")
    def get(self, request: Request, run_id: int) -> Response:
        run = object_or_404(runs_list(), run_id)
        return Response(RunDetailOutputSerializer(run, context={"request": request}).data)


class ResponseOutputSerializer(serializers.ModelSerializer):
    benchmark = serializers.CharField(source="query.benchmark.name")
    number = serializers.IntegerField(source="query.number")
    question_type = serializers.CharField(source="query.question_type")
    question = serializers.CharField(source="query.question")
    answer = serializers.CharField(source="query.answer")
    image_ids = serializers.ListField(source="query.image_ids", child=serializers.IntegerField())

    class Meta:
        model = EvaluationResponse
        fields = [
            "id",
            "query",
            "benchmark",
            "number",
            "question_type",
            "question",
            "answer",
            "image_ids",
            "text",
            "parsed",
            "correct",
            "recognition_score",
            "content_score",
            "judge_text",
            "seconds",
            "prompt_tokens",
            "completion_tokens",
        ]


class ResponseFilterSerializer(serializers.Serializer):
    benchmark = serializers.SlugField(required=False, help_text="A benchmark's name.")
    question_type = serializers.ChoiceField(choices=BenchmarkQuery.QuestionType.values, required=False)
    correct = serializers.BooleanField(required=False, allow_null=True, default=None)


class RunResponseListApi(EvaluationAPIView):
    pagination_class = IdCursorPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("benchmark", str),
            OpenApiParameter("question_type", str, enum=BenchmarkQuery.QuestionType.values),
            OpenApiParameter("correct", bool),
        ],
        responses=ResponseOutputSerializer(many=True),
        operation_id="evaluation_run_responses_list",
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = object_or_404(EvaluationRun.objects.all(), run_id)
        filters = ResponseFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        responses: QuerySet = run_responses(
            run=run, question_type=filters.validated_data.get("question_type", "")
        )
        if filters.validated_data.get("benchmark"):
            responses = responses.filter(query__benchmark__name=filters.validated_data["benchmark"])
        if filters.validated_data.get("correct") is not None:
            responses = responses.filter(correct=filters.validated_data["correct"])
        return paginated(self, request, responses, ResponseOutputSerializer)
