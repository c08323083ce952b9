"""The dataset over REST: who may read it, snapshots, cursor-paginated and filtered pairs, streamed JSON lines,
instances and images with their files, comparison, and the OpenAPI schema."""

import json

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import DatasetSnapshot
from tests.annotation.dataset.builders import hard_negative, instance_with_images
from tests.factories import CategoryFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def snapshot(reviewed_catalog) -> DatasetSnapshot:
    lamp = CategoryFactory(name="lamp", supercategory="Tools & Home Improvement")
    d, _ = instance_with_images(lamp, 3)
    e, _ = instance_with_images(lamp, 2)
    hard_negative(d, e)
    created = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0.3, seed=2))
    created.refresh_from_db()
    assert created.is_frozen
    return created


def client_with_token(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(api_user) -> APIClient:
    return client_with_token(api_user)


def test_anonymous_callers_get_401_annotators_403_researchers_and_api_users_200(
    snapshot, annotator, researcher, api_user
):
    url = "/api/v1/snapshots/"
    anonymous = APIClient().get(url)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    assert client_with_token(annotator).get(url).status_code == 403
    assert client_with_token(api_user).get(url).status_code == 200
    session = APIClient()
    session.force_login(researcher)
    assert session.get(url).status_code == 200
    for path in (
        f"/api/v1/snapshots/{snapshot.pk}/pairs/",
        f"/api/v1/snapshots/{snapshot.pk}/pairs.jsonl",
        "/api/v1/instances/",
        "/api/v1/images/",
    ):
        assert APIClient().get(path).status_code == 401
        assert client_with_token(annotator).get(path).status_code == 403


def test_snapshots_list_only_frozen_ones_with_their_statistics(snapshot, api):
    snapshot_create(name="building", parameters=SnapshotParameters(), enqueue=False)  # not frozen yet
    listed = api.get("/api/v1/snapshots/").json()
    assert [s["id"] for s in listed["results"]] == [snapshot.pk]
    detail = api.get(f"/api/v1/snapshots/{snapshot.pk}/").json()
    assert detail["content_hash"] == snapshot.content_hash and len(detail["content_hash"]) == 64
    assert detail["pair_count"] == snapshot.pair_count == detail["positive_count"] + detail["negative_count"]
    assert {row["name"] for row in detail["statistics"]["by_category"]} == {"vase", "lamp"}
    assert detail["parameters"]["eval_fraction"] == 0.3
    building = DatasetSnapshot.objects.get(name="building")
    assert api.get(f"/api/v1/snapshots/{building.pk}/").status_code == 404
    assert api.get("/api/v1/snapshots/99999999999999999999999/").status_code == 404


def test_walking_the_cursor_pages_gives_every_pair_once_in_order(snapshot, api):
    seen, url = [], f"/api/v1/snapshots/{snapshot.pk}/pairs/?page_size=4"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 4
        seen += [pair["id"] for pair in page["results"]]
        url = page["next"]
    assert seen == list(snapshot.pairs.order_by("id").values_list("id", flat=True))
    assert api.get(f"/api/v1/snapshots/{snapshot.pk}/pairs/?cursor=garbage").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("label=yes", {"same": True}),
        ("label=no", {"same": False}),
        ("source=hard_negative", {"source": "hard_negative"}),
        ("source=synthetic", {"source": "synthetic"}),
        ("category=lamp", {"category__name": "lamp"}),
        ("split=eval", {"split": "eval"}),
        ("split=train&label=no&category=vase", {"split": "train", "same": False, "category__name": "vase"}),
    ],
)
def test_pairs_filter_by_label_source_category_and_split(snapshot, api, query, expected):
    results = api.get(f"/api/v1/snapshots/{snapshot.pk}/pairs/?{query}&page_size=1000").json()["results"]
    wanted = list(snapshot.pairs.filter(**expected).order_by("id").values_list("id", flat=True))
    assert [pair["id"] for pair in results] == wanted


def test_a_pair_says_its_answer_and_where_its_images_are(snapshot, api):
    pair = api.get(f"/api/v1/snapshots/{snapshot.pk}/pairs/?source=synthetic").json()["results"][0]
    assert pair["answer"] == "no" and pair["same"] is False and pair["source"] == "synthetic"
    assert pair["category"] == "vase" and pair["supercategory"] == "Home & Kitchen"
    assert pair["image_b_url"].endswith(f"/api/v1/images/{pair['image_b']}/file/")
    file = api.get(pair["image_b_url"])
    assert file.status_code == 200 and b"".join(file.streaming_content) == b"not decoded in these tests"


@pytest.mark.parametrize("query", ["label=maybe", "source=made_up", "split=test", "snapshot=abc"])
def test_a_bad_filter_is_a_400_that_names_it(snapshot, api, query):
    path = "/api/v1/images/" if query.startswith("snapshot") else f"/api/v1/snapshots/{snapshot.pk}/pairs/"
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_the_jsonl_download_streams_every_pair_with_filters(snapshot, api):
    response = api.get(f"/api/v1/snapshots/{snapshot.pk}/pairs.jsonl")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["X-Content-Hash"] == snapshot.content_hash
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["pair_id"] for line in lines] == list(
        snapshot.pairs.order_by("id").values_list("id", flat=True)
    )
    first = lines[0]
    assert set(first) >= {
        "pair_id",
        "image_a_id",
        "image_b_id",
        "answer",
        "source",
        "split",
        "category",
        "image_a_url",
        "image_b_url",
        "image_a_sha256",
    }
    assert "image_a_file" not in first
    assert api.get(first["image_a_url"]).status_code == 200
    filtered = api.get(f"/api/v1/snapshots/{snapshot.pk}/pairs.jsonl?label=yes&split=train")
    rows = [json.loads(line) for line in b"".join(filtered.streaming_content).splitlines()]
    assert rows and all(row["answer"] == "yes" and row["split"] == "train" for row in rows)
    assert len(rows) == snapshot.pairs.filter(same=True, split="train").count()


def test_instances_and_images_of_a_snapshot_with_image_urls(snapshot, reviewed_catalog, api):
    instances = api.get(f"/api/v1/instances/?snapshot={snapshot.pk}&page_size=1000").json()["results"]
    shown = set(snapshot.pairs.values_list("instance_a", flat=True)) | set(
        snapshot.pairs.values_list("instance_b", flat=True)
    )
    assert {instance["id"] for instance in instances} == shown
    vase = next(instance for instance in instances if instance["id"] == reviewed_catalog["a"].pk)
    assert vase["category"] == "vase" and len(vase["images"]) == 5  # 3 accepted, 1 pending, 1 rejected
    assert all(image["url"].endswith("/file/") for image in vase["images"])
    lamps = api.get("/api/v1/instances/?category=lamp").json()["results"]
    assert {instance["category"] for instance in lamps} == {"lamp"} and len(lamps) == 2

    images = api.get(f"/api/v1/images/?snapshot={snapshot.pk}&page_size=1000").json()["results"]
    assert len(images) == snapshot.image_count
    generated = [image for image in images if image["origin"] == "generated"]
    assert [image["instance"] for image in generated] == [reviewed_catalog["a"].pk]
    detail = api.get(f"/api/v1/images/{generated[0]['id']}/").json()
    assert detail["sha256"] == generated[0]["sha256"]
    assert api.get(f"/api/v1/instances/{reviewed_catalog['a'].pk}/").json()["id"] == reviewed_catalog["a"].pk


def test_comparing_two_snapshots_over_the_api(snapshot, reviewed_catalog, api):
    from annotation.models import ReviewStatus

    image = reviewed_catalog["b_images"][0]
    image.review_status = ReviewStatus.REJECTED
    image.save()
    later = snapshot_create(name="twin", parameters=SnapshotParameters(eval_fraction=0.3, seed=2))
    comparison = api.get(f"/api/v1/snapshots/{later.pk}/compare/{snapshot.pk}/").json()
    assert comparison["added"] == 0
    assert (
        comparison["removed"] == snapshot.pair_count - DatasetSnapshot.objects.get(pk=later.pk).pair_count > 0
    )
    assert comparison["removed_by_source"]["positive"] == 1  # b had two images: one pair


def test_the_openapi_schema_is_served_and_valid(api, tmp_path):
    response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert "/api/v1/snapshots/{snapshot_id}/pairs/" in schema["paths"]
    assert schema["components"]["securitySchemes"].keys() >= {"tokenAuth", "cookieAuth"}
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert APIClient().get("/api/v1/docs/").status_code == 200
