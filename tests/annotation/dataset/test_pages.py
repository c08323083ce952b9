"""The dataset pages: freezing from the form, a snapshot's statistics and plots, comparison, who sees what."""

import pytest
from django.urls import reverse

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import DatasetSnapshot, ReviewStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_researcher_freezes_a_snapshot_from_the_form_and_lands_on_its_page(
    reviewed_catalog, client, researcher
):
    client.force_login(researcher)
    form = client.get(reverse("dataset:freeze"))
    assert form.status_code == 200 and b"eval_fraction" in form.content
    response = client.post(
        reverse("dataset:freeze"),
        {
            "name": "twin",
            "verified_only": "on",
            "eval_fraction": "0",
            "seed": "0",
            "negatives": "hard",
            "sample_seed": "0",
            "description": "first cut",
        },
        follow=True,
    )
    snapshot = DatasetSnapshot.objects.get()
    assert response.redirect_chain[-1][0] == reverse("dataset:snapshot", args=[snapshot.pk])
    assert snapshot.is_frozen and snapshot.created_by == researcher and snapshot.description == "first cut"
    page = response.content.decode()
    assert "twin v1" in page and snapshot.content_hash in page
    assert page.count("<svg") == 4  # by source, split, supercategory, category
    assert "Pairs by category" in page and "hard_negative" in page
    assert reverse("exports:panel", args=[snapshot.pk]) in page
    listing = client.get(reverse("dataset:snapshots")).content.decode()
    assert "twin v1" in listing and "19" in listing


def test_invalid_parameters_are_shown_on_the_form(client, researcher):
    client.force_login(researcher)
    response = client.post(
        reverse("dataset:freeze"), {"name": "not a slug!", "eval_fraction": "2", "seed": "0"}
    )
    assert response.status_code == 200
    assert not DatasetSnapshot.objects.exists()
    assert response.context["form"].errors.keys() >= {"name", "eval_fraction"}


def test_annotators_see_no_dataset_pages_and_api_users_see_but_cannot_freeze(
    reviewed_catalog, client, annotator, api_user
):
    snapshot = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0))
    client.force_login(annotator)
    for url in (
        reverse("dataset:snapshots"),
        reverse("dataset:snapshot", args=[snapshot.pk]),
        reverse("dataset:freeze"),
        reverse("exports:panel", args=[snapshot.pk]),
    ):
        assert client.get(url).status_code == 403
    client.force_login(api_user)
    assert client.get(reverse("dataset:snapshot", args=[snapshot.pk])).status_code == 200
    assert client.get(reverse("dataset:freeze")).status_code == 403
    panel = client.get(reverse("exports:panel", args=[snapshot.pk])).content.decode()
    assert "Build export" not in panel
    assert client.post(reverse("exports:create", args=[snapshot.pk]), {"format": "plain"}).status_code == 403


def test_the_comparison_page_lists_what_was_added_and_removed(reviewed_catalog, client, researcher):
    old = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0))
    image = reviewed_catalog["a_images"][0]
    image.review_status = ReviewStatus.REJECTED
    image.save()
    new = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0))
    client.force_login(researcher)
    detail = client.get(reverse("dataset:snapshot", args=[new.pk])).content.decode()
    assert f'<option value="{old.pk}">' in detail
    response = client.get(reverse("dataset:compare", args=[new.pk]), {"other": old.pk})
    assert response.status_code == 200
    comparison = response.context["comparison"]
    assert comparison.removed_count == 2 + 2 + 1 and comparison.added_count == 0  # a0's pairs
    page = response.content.decode()
    assert "Removed (5)" in page and "pairs removed" in page
    assert client.get(reverse("dataset:compare", args=[new.pk]), {"other": 999}).status_code == 302
