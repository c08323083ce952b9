"""The signed-in user, their permissions and their session come from the cache, yet a change to any of them
takes effect on the very next request (config/permission_cache.py, config/sessions.py)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.roles import ANNOTATOR
from tests.factories import AnnotatorFactory

pytestmark = pytest.mark.django_db

QUEUES = reverse("review:dashboard")


@pytest.fixture
def annotator_client(client):
    annotator = AnnotatorFactory(username="ann", password="pass-1234")
    assert client.login(username="ann", password="pass-1234")
    assert client.get(QUEUES).status_code == 200  # the caches are filled
    return client, annotator


def test_a_warm_request_reads_neither_the_session_nor_the_user_nor_the_permissions(annotator_client):
    client, _ = annotator_client
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("review:keys")).status_code == 200
    tables = " ".join(query["sql"] for query in queries.captured_queries)
    for table in ("django_session", "auth_user", "auth_permission", "auth_group"):
        assert f'"{table}"' not in tables


def test_leaving_the_annotator_group_closes_the_queues_at_once(annotator_client):
    client, annotator = annotator_client
    annotator.groups.remove(Group.objects.get(name=ANNOTATOR))
    assert client.get(QUEUES).status_code == 403


def test_a_permission_taken_from_the_group_is_gone_at_once(annotator_client):
    client, _ = annotator_client
    group = Group.objects.get(name=ANNOTATOR)
    group.permissions.remove(Permission.objects.get(codename="work_review_queues"))
    assert client.get(QUEUES).status_code == 403
    group.permissions.add(Permission.objects.get(codename="work_review_queues"))
    assert client.get(QUEUES).status_code == 200


def test_a_deactivated_user_is_signed_out_at_once(annotator_client):
    client, annotator = annotator_client
    annotator.is_active = False
    annotator.save()
    response = client.get(QUEUES)
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_new_password_signs_the_old_sessions_out_at_once(annotator_client):
    client, annotator = annotator_client
    annotator.set_password("another-pass-5678")
    annotator.save()
    response = client.get(QUEUES)
    assert response.status_code == 302 and "login" in response["Location"]


def test_signing_out_ends_the_session_in_the_cache_too(annotator_client):
    client, _ = annotator_client
    cookie = client.cookies["sessionid"].value
    client.post(reverse("logout"))
    client.cookies["sessionid"] = cookie  # a copy of the old cookie, replayed
    response = client.get(QUEUES)
    assert response.status_code == 302 and "login" in response["Location"]


def test_with_the_cache_down_everything_is_read_from_the_database(annotator_client, monkeypatch):
    client, annotator = annotator_client

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    for method in ("get", "set", "delete", "delete_many", "get_many"):
        monkeypatch.setattr(cache, method, down)
    assert client.get(QUEUES).status_code == 200
    annotator.groups.remove(Group.objects.get(name=ANNOTATOR))
    assert client.get(QUEUES).status_code == 403
