"""The permission matrix: every URL of the site and the API, for anonymous visitors, annotators, API users,
researchers and administrators.

Each URL name is given the least role that may use it. Below it, a page sends anonymous visitors to sign in and
answers 403 to the others; the API answers 401 and 403. At or above it, the answer is never 401, 403 or a server
error (200, a redirect, 404 for an id that doesn't exist, 405 for a method the view doesn't take). A URL added
later without an entry here fails the test, so every new page gets a decision. Every state-changing request is
also refused without a CSRF token.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import AnnotatorFactory, ApiUserFactory, ResearcherFactory, UserFactory

pytestmark = pytest.mark.django_db

PUBLIC, SIGNED_IN, ANNOTATOR, API_USER, RESEARCHER = (
    "public",
    "signed in",
    "annotator",
    "api user",
    "researcher",
)

REVIEW_WORK = [
    "review:dashboard",
    "review:dashboard_figures",
    "review:keys",
    "review:image",
    "review:queue",
    "review:decide",
    "review:change",
    "review:skip",
    "review:undo",
    "review:heartbeat",
    "review:cards",
    "review:skips_clear",
]
DATASET_API = [
    "api:snapshot-list",
    "api:snapshot-detail",
    "api:snapshot-pairs",
    "api:snapshot-download",
    "api:snapshot-compare",
    "api:snapshot-exports",
    "api:export-download",
    "api:instance-list",
    "api:instance-detail",
    "api:image-list",
    "api:image-detail",
    "api:image-file",
    # the dataset's pages, which API users read too (annotation.read_dataset)
    "dataset:snapshots",
    "dataset:snapshot",
    "dataset:compare",
    "exports:panel",
    "exports:download",
]
LEAST_ROLE = {
    "login": PUBLIC,
    "logout": SIGNED_IN,
    "api:schema": PUBLIC,
    "api:docs": PUBLIC,
    "api:redoc": PUBLIC,
    "home": SIGNED_IN,
    "media": SIGNED_IN,
    "catalog": ANNOTATOR,
    **{name: ANNOTATOR for name in REVIEW_WORK},
    **{name: API_USER for name in DATASET_API},
}
# Everything else is the researchers' (jobs, building exports, freezing, training, evaluation, statistics,
# adjudication, the evaluation API): listed, so that a new URL must be placed in the matrix.
RESEARCHER_ONLY = [
    "api:evaluation-benchmarks",
    "api:evaluation-runs",
    "api:evaluation-run-detail",
    "api:evaluation-run-responses",
    "jobs:detail",
    "jobs:progress",
    "jobs:result_file",
    "jobs:cancel",
    "exports:create",
    "training:run_list",
    "training:run_detail",
    "training:run_live",
    "training:run_launch",
    "training:run_cancel",
    "evaluation:run_list",
    "evaluation:run_detail",
    "evaluation:run_live",
    "evaluation:run_launch",
    "evaluation:run_cancel",
    "evaluation:run_responses",
    "evaluation:run_report_csv",
    "evaluation:run_responses_csv",
    "evaluation:compare",
    "evaluation:scaling",
    "dataset:freeze",
    "review:statistics",
    "review:adjudication",
    "review:adjudicate",
]
LEAST_ROLE.update({name: RESEARCHER for name in RESEARCHER_ONLY})
# What each role may do, by the least role of a URL.
ALLOWED = {
    "anonymous": {PUBLIC},
    "signed in": {PUBLIC, SIGNED_IN},
    "annotator": {PUBLIC, SIGNED_IN, ANNOTATOR},
    "api user": {PUBLIC, SIGNED_IN, API_USER},
    "researcher": {PUBLIC, SIGNED_IN, ANNOTATOR, API_USER, RESEARCHER},
    "admin": {PUBLIC, SIGNED_IN, ANNOTATOR, API_USER, RESEARCHER},
}
# URLs that change state: POST (the others are read with GET).
POSTED = {
    "logout",
    "jobs:cancel",
    "exports:create",
    "training:run_launch",
    "training:run_cancel",
    "evaluation:run_launch",
    "evaluation:run_cancel",
    "dataset:freeze",
    "review:decide",
    "review:change",
    "review:skip",
    "review:undo",
    "review:heartbeat",
    "review:skips_clear",
    "review:adjudicate",
}
SAMPLE_KWARGS = {"slug": "image-verification", "width": 320, "path": "images/none.jpg"}


def url_patterns(patterns=None, prefix: str = "", namespace: str = ""):
    """(name, a concrete path) for every URL outside the admin."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern).startswith("admin/"):
                continue
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            route = prefix + str(pattern.pattern)
            for converter in ("<int:", "<slug:"):
                while converter in route:
                    start = route.index(converter)
                    end = route.index(">", start)
                    key = route[start + len(converter) : end]
                    route = route[:start] + str(SAMPLE_KWARGS.get(key, 1)) + route[end + 1 :]
            if route.startswith("^"):  # the media pattern
                route = "media/" + SAMPLE_KWARGS["path"]
            yield namespace + pattern.name, "/" + route


def users():
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    return {
        "anonymous": None,
        "signed in": UserFactory(username="nobody"),
        "annotator": AnnotatorFactory(username="annie"),
        "api user": ApiUserFactory(username="engineer"),
        "researcher": ResearcherFactory(username="rhea"),
        "admin": admin,
    }


def request(client: Client, name: str, path: str):
    if name in POSTED:
        return client.post(path, {})
    return client.get(path)


def test_every_url_has_a_place_in_the_matrix():
    names = {name for name, _ in url_patterns()}
    assert names - set(LEAST_ROLE) == set(), "new URLs: give each its least role in LEAST_ROLE"
    assert set(LEAST_ROLE) - names == set(), "URLs that no longer exist"


@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_gets_what_its_role_allows_and_nothing_more(role):
    user = users()[role]
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    wrong = []
    for name, path in url_patterns():
        if name == "logout":  # it would sign the client out for the URLs after it
            continue
        response = request(client, name, path)
        status = response.status_code
        allowed = LEAST_ROLE[name] in ALLOWED[role]
        is_api = path.startswith("/api/")
        if status >= 500:
            wrong.append(f"{role} {path}: server error {status}")
        elif allowed and status in (401, 403):
            wrong.append(f"{role} {path}: refused ({status}), but {role} may use it")
        elif not allowed:
            if user is None and is_api:
                expected = {401}
            elif user is None:
                expected = {302}
            else:
                expected = {403}
            if status not in expected:
                wrong.append(f"{role} {path}: {status}, expected {sorted(expected)}")
            if (
                user is None
                and not is_api
                and status == 302
                and not response.url.startswith("/accounts/login/")
            ):
                wrong.append(f"{role} {path}: redirected to {response.url}, not to sign in")
    assert wrong == []


@pytest.mark.parametrize("role", ["annotator", "researcher", "admin"])
def test_every_state_change_needs_a_csrf_token(role):
    user = users()[role]
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    for name, path in url_patterns():
        if name in POSTED and name != "logout":
            response = client.post(path, {})
            assert response.status_code == 403, f"{path} took a POST without a CSRF token"
