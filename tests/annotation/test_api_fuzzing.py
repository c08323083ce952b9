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
