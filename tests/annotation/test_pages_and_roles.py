"""Roles from the data migration, and who sees which page."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.roles import ANNOTATOR, RESEARCHER
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db


def test_groups_exist_with_their_permissions():
    researcher = set(Group.objects.get(name=RESEARCHER).permissions.values_list("codename", flat=True))
    annotator = set(Group.objects.get(name=ANNOTATOR).permissions.values_list("codename", flat=True))
    assert {"add_product", "change_instance", "view_job", "change_job", "view_instancemerge"} <= researcher
    assert annotator == {"view_category", "view_product", "view_instance", "view_image", "work_review_queues"}
    assert {"view_review_statistics", "adjudicate_reviewtask"} <= researcher


def test_researcher_and_annotator_permissions(researcher, annotator):
    assert researcher.has_perm("annotation.add_product") and researcher.has_perm("jobs.change_job")
    assert annotator.has_perm("annotation.view_image")
    assert not annotator.has_perm("annotation.change_product") and not annotator.has_perm("jobs.view_job")


def test_anonymous_users_are_sent_to_log_in(client):
    for url in (reverse("home"), reverse("catalog")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_login_page_signs_in(client, annotator):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "annotator", "password": "pass-1234"})
    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_home_page_per_role(client, researcher, annotator, plain_user):
    client.force_login(annotator)
    page = client.get(reverse("home")).content.decode()
    assert "Open the catalog" in page and "Recent jobs" not in page
    client.force_login(researcher)
    page = client.get(reverse("home")).content.decode()
    assert "Recent jobs" in page and "Import a catalog" in page and "Start mining" in page
    client.force_login(plain_user)
    page = client.get(reverse("home")).content.decode()
    assert "Open the catalog" not in page


def test_catalog_page_shows_products_with_their_images(
    client, annotator, plain_user, django_assert_max_num_queries
):
    images = [ImageFactory() for _ in range(3)]
    client.force_login(annotator)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("catalog")).content.decode()
    for image in images:
        assert image.product.external_id in page and image.file.url in page
    category = images[0].product.category
    filtered = client.get(reverse("catalog"), {"category": category.pk}).content.decode()
    assert images[0].product.external_id in filtered and images[1].product.external_id not in filtered
    client.force_login(plain_user)
    assert client.get(reverse("catalog")).status_code == 403


def test_catalog_page_query_count_does_not_grow_with_products(
    client, annotator, django_assert_max_num_queries
):
    for _ in range(30):
        ImageFactory()
    client.force_login(annotator)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("catalog")).status_code == 200


def test_demo_users_are_debug_only(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("create_demo_users")
    settings.DEBUG = True
    call_command("create_demo_users")
    from django.contrib.auth import authenticate

    user = authenticate(username="researcher", password="twin-researcher")
    assert user is not None and user.is_staff and user.groups.filter(name=RESEARCHER).exists()
    assert (
        authenticate(username="annotator", password="twin-annotator").groups.filter(name=ANNOTATOR).exists()
    )
    engineer = authenticate(username="engineer", password="twin-engineer")
    assert engineer.has_perm("annotation.read_dataset") and not engineer.has_perm(
        "annotation.work_review_queues"
    )
    assert not engineer.is_staff and engineer.auth_token.key


def test_media_files_are_served_to_signed_in_users_only(client, annotator, media_root):
    image = ImageFactory()
    url = image.file.url
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(annotator)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"not decoded in these tests"
    assert "immutable" in response["Cache-Control"]  # content-addressed names never change
    for escaping in ("/media/../config/settings/base.py", "/media/%2e%2e/manage.py", "/media/images/../../x"):
        assert client.get(escaping).status_code in (400, 404)
