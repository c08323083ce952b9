"""A database error answers 503 with a retry hint: JSON for the review page's script and the API, a small page
for people, one log line and no traceback; other errors stay 500. (The real restart, under gunicorn on
PostgreSQL: test_database_restart.py.)"""

import logging

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory
from django.urls import reverse

from annotation.review import views as review_views
from config.database_errors import server_error
from tests.factories import ApiUserFactory

pytestmark = pytest.mark.django_db


def _database_gone(*args, **kwargs):
    raise OperationalError("terminating connection due to administrator command")


@pytest.fixture
def database_gone_for_reviews(monkeypatch):
    monkeypatch.setattr(review_views, "review_tasks_claim", _database_gone)
    monkeypatch.setattr(review_views, "review_decision_submit", _database_gone)


def test_the_review_page_answers_a_page_that_says_to_retry(
    client, annotator, database_gone_for_reviews, caplog
):
    client.force_login(annotator)
    with caplog.at_level(logging.WARNING, logger="config.database_errors"):
        response = client.get(reverse("review:queue", args=["images"]))
    assert response.status_code == 503
    assert response["Retry-After"] == "5" and response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert "Back in a moment" in page and "nothing was saved" in page
    assert "terminating connection" not in page  # the database's own words stay in the log
    (record,) = [r for r in caplog.records if r.name == "config.database_errors"]
    assert "GET /review/images/" in record.getMessage() and "terminating connection" in record.getMessage()
    assert record.exc_info is None


def test_a_decision_answers_json_that_the_page_s_outbox_retries(client, annotator, database_gone_for_reviews):
    client.force_login(annotator)
    response = client.post(
        reverse("review:decide", args=["images"]),
        {"task": "1", "key": "00000000-0000-0000-0000-000000000000", "action": "keep"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 503
    assert response.json() == {
        "ok": False,
        "code": "database_unavailable",
        "message": "The database can't be reached right now (it may be restarting); nothing was saved.",
    }


def test_the_api_answers_json(client, monkeypatch):
    from annotation import api

    client.force_login(ApiUserFactory())
    monkeypatch.setattr(api, "snapshots_frozen", _database_gone)
    response = client.get("/api/v1/snapshots/")
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


@pytest.mark.parametrize("error", [OperationalError("could not connect to server"), InterfaceError("closed")])
def test_the_error_handler_answers_503_for_errors_raised_outside_a_view(error):
    request = RequestFactory().get("/review/", HTTP_ACCEPT="text/html")
    try:
        raise error
    except type(error):
        response = server_error(request)
    assert response.status_code == 503 and b"Back in a moment" in response.content


def test_other_errors_stay_500():
    request = RequestFactory().get("/review/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500


def test_the_handler_is_the_project_s(monkeypatch):
    """An error raised in a middleware, after the view: the handler still turns it into a 503."""
    from django.contrib.sessions.middleware import SessionMiddleware

    monkeypatch.setattr(
        SessionMiddleware, "process_response", lambda self, request, response: _database_gone()
    )
    client = Client(raise_request_exception=False)
    response = client.get(reverse("login"))
    assert response.status_code == 503
