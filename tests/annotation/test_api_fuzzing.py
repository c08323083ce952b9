"""Schemathesis fuzzes every operation of the OpenAPI schema, signed in as an API user, over a real snapshot:
whatever it sends (odd ids, cursors, filters, page sizes), the server never answers with a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openapi_schema(reviewed_catalog):
    from config.wsgi import application

    snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0.3))
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
    # Valid inputs and invalid ones (wrong types, values outside the enums): neither may cause a 5xx.
    schema.config.generation.update(modes=list(GenerationMode), deterministic=True)
    return schema


@pytest.fixture
def api_user_token(api_user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=api_user)[0].key}"}


fuzzed = schemathesis.pytest.from_fixture("openapi_schema")


@fuzzed.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case, api_user_token):
    response = case.call(headers=api_user_token)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


@pytest.fixture
def evaluation_results(openapi_schema):
    """A built benchmark and a finished evaluation run with right, wrong and unreadable answers, so that the
    evaluation operations have something to return."""
    from evaluation.models import Benchmark, BenchmarkImage, BenchmarkQuery, EvaluationResponse, EvaluationRun

    benchmark = Benchmark.objects.create(
        name="fuzz", display_name="Fuzz", source="image_folder", status="ready", pair_count=2, multi_count=1
    )
    images = [
        BenchmarkImage.objects.create(benchmark=benchmark, file=f"evaluation/fuzz/{n}.png", label=str(n % 2))
        for n in range(4)
    ]
    run = EvaluationRun.objects.create(name="fuzz-run", backend="vllm", model="m")
    run.benchmarks.set([benchmark])
    answers = [
        ("pair", "yes", "<answer>yes</answer>", True),
        ("pair", "no", "", False),
        ("multi", "1", "2", False),
    ]
    for number, (kind, answer, text, correct) in enumerate(answers, start=1):
        query = BenchmarkQuery.objects.create(
            benchmark=benchmark,
            number=number,
            question_type=kind,
            question="?",
            answer=answer,
            image_ids=[image.pk for image in images[: 2 if kind == "pair" else 4]],
        )
        EvaluationResponse.objects.create(run=run, query=query, text=text, parsed=text[8:11], correct=correct)
    return openapi_schema


@pytest.fixture
def researcher_token(researcher) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=researcher)[0].key}"}


researcher_fuzzed = schemathesis.pytest.from_fixture("evaluation_results")


@researcher_fuzzed.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail_for_researchers(case, researcher_token):
    """The same, signed in as a researcher, who also reads the evaluation results."""
    response = case.call(headers=researcher_token)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
