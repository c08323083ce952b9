"""Reads for the evaluation pages and API: runs, a run's responses with their images."""

from dataclasses import dataclass

from django.db.models import QuerySet

from evaluation.models import BenchmarkImage, EvaluationResponse, EvaluationRun


def runs_list() -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.select_related("job", "training_run").prefetch_related("benchmarks")


@dataclass(frozen=True)
class ResponseView:
    response: EvaluationResponse
    images: list[BenchmarkImage]


def run_responses(
    *, run: EvaluationRun, benchmark_id: int | None = None, question_type: str = "", wrong_only: bool = False
) -> QuerySet[EvaluationResponse]:
    responses = (
        EvaluationResponse.objects.filter(run=run).select_related("query__benchmark").order_by("query_id")
    )
    if benchmark_id:
        responses = responses.filter(query__benchmark_id=benchmark_id)
    if question_type:
        responses = responses.filter(query__question_type=question_type)
    if wrong_only:
        responses = responses.filter(correct=False)
    return responses


def responses_with_images(responses) -> list[ResponseView]:
    """The page's responses with the images each query showed, in order (one query for all images)."""
    responses = list(responses)
    ids = {image_id for response in responses for image_id in response.query.image_ids}
    images = BenchmarkImage.objects.in_bulk(ids)
    return [
        ResponseView(
            response, [images[image_id] for image_id in response.query.image_ids if image_id in images]
        )
        for response in responses
    ]
