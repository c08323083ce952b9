"""The review pages over HTTP: permissions, the page's background endpoints, query counts, images, keys,
statistics and adjudication."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image as PILImage

from annotation.models import ReviewDecision, ReviewQueue, ReviewTask
from annotation.review.task_creation import (
    DuplicateCandidate,
    duplicate_merge_tasks_create,
    image_verification_tasks_create,
)
from tests.conftest import image_bytes
from tests.factories import AnnotatorFactory, ImageFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_gold(db):
    ReviewQueue.objects.all().update(gold_rate=0.0)


@pytest.fixture
def verification_tasks(db) -> list[int]:
    for _ in range(4):
        ImageFactory()
    return image_verification_tasks_create()


def _signed_in(client, user):
    client.force_login(user)
    return client


def _held_cards(response) -> list[tuple[int, str]]:
    """(task id, lease token) of each card in a review page or card fragment, in page order."""
    html = response.content.decode() if hasattr(response, "content") else response
    cards = []
    for chunk in html.split('class="review-card"')[1:]:
        task = int(chunk.split('data-task="', 1)[1].split('"', 1)[0])
        key = chunk.split('data-key="', 1)[1].split('"', 1)[0]
        cards.append((task, key))
    return cards


# --- permissions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["review:dashboard", "review:statistics", "review:adjudication", "review:keys"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_queue_page_is_sent_to_log_in(client):
    response = client.get(reverse("review:queue", args=["images"]))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_user_without_a_role_cannot_review(client, plain_user):
    _signed_in(client, plain_user)
    assert client.get(reverse("review:dashboard")).status_code == 403
    assert client.get(reverse("review:queue", args=["images"])).status_code == 403
    assert client.post(reverse("review:decide", args=["images"]), {}).status_code == 403


def test_annotators_see_queues_but_not_others_statistics_or_adjudication(client, annotator):
    _signed_in(client, annotator)
    assert client.get(reverse("review:dashboard")).status_code == 200
    assert client.get(reverse("review:statistics")).status_code == 403
    assert client.get(reverse("review:adjudication")).status_code == 403
    assert client.post(reverse("review:adjudicate", args=[1]), {"action": "keep"}).status_code == 403


def test_researchers_see_everything(client, researcher, verification_tasks):
    _signed_in(client, researcher)
    for name in ("review:dashboard", "review:statistics", "review:adjudication", "review:keys"):
        assert client.get(reverse(name)).status_code == 200
    assert client.get(reverse("review:queue", args=["images"])).status_code == 200


def test_an_unknown_queue_is_not_found(client, annotator):
    _signed_in(client, annotator)
    assert client.get(reverse("review:queue", args=["nope"])).status_code == 404


# --- the review page --------------------------------------------------------------------------------------------


def test_the_page_holds_two_cards_and_a_reload_shows_the_same_ones(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    first = client.get(reverse("review:queue", args=["images"]))
    assert first.status_code == 200
    assert "no-store" in first["Cache-Control"] or "no-cache" in first["Cache-Control"]
    cards = _held_cards(first)
    assert [task for task, _ in cards] == verification_tasks[:2]
    again = _held_cards(client.get(reverse("review:queue", args=["images"])))
    assert again == cards


def test_the_review_page_query_count_does_not_grow_with_the_queue(client, db):
    def page_queries() -> int:
        user = AnnotatorFactory()
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("review:queue", args=["images"]))
        assert response.status_code == 200 and len(_held_cards(response)) == 2
        return len(queries)

    for _ in range(5):
        ImageFactory()
    image_verification_tasks_create()
    page_queries()  # reads the queue's settings into this process's cache
    small = page_queries()
    product = ProductFactory()
    for _ in range(300):
        ImageFactory(product=product)
    image_verification_tasks_create()
    assert ReviewTask.objects.count() > 300
    assert page_queries() == small


def test_the_dashboard_query_count_does_not_grow_with_the_queue(client, annotator):
    _signed_in(client, annotator)
    ImageFactory()
    image_verification_tasks_create()
    client.get(reverse("review:dashboard"))  # fills the cache of the user's permissions
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("review:dashboard"))
    for _ in range(50):
        ImageFactory()
    image_verification_tasks_create()
    with CaptureQueriesContext(connection) as large:
        response = client.get(reverse("review:dashboard"))
    assert len(large) == len(small)
    assert b"51" in response.content  # the open count of the verification queue


def test_a_decision_returns_the_next_card_the_page_lacks(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    cards = _held_cards(client.get(reverse("review:queue", args=["images"])))
    (first, first_key), (second, _) = cards
    response = client.post(
        reverse("review:decide", args=["images"]),
        {"task": first, "key": first_key, "action": "keep", "duration_ms": "1500", "have": str(second)},
    )
    data = response.json()
    assert response.status_code == 200 and data["ok"] and not data["replayed"]
    assert data["held"] == [second, verification_tasks[2]]
    assert [task for task, _ in _held_cards(data["cards"])] == [verification_tasks[2]]
    decision = ReviewDecision.objects.get(task_id=first)
    assert (decision.action, decision.duration_ms, decision.annotator) == ("keep", 1500, annotator)


def test_sending_the_same_decision_twice_records_it_once(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (task, key), _ = _held_cards(client.get(reverse("review:queue", args=["images"])))
    url = reverse("review:decide", args=["images"])
    assert (
        client.post(url, {"task": task, "key": key, "action": "reject_unclear"}).json()["replayed"] is False
    )
    retry = client.post(url, {"task": task, "key": key, "action": "reject_unclear"}).json()
    assert retry["ok"] and retry["replayed"] is True
    assert ReviewDecision.objects.filter(task_id=task).count() == 1


def test_another_answer_from_a_second_tab_is_a_conflict_and_can_be_changed(
    client, annotator, verification_tasks
):
    _signed_in(client, annotator)
    (task, key), _ = _held_cards(client.get(reverse("review:queue", args=["images"])))
    url = reverse("review:decide", args=["images"])
    assert client.post(url, {"task": task, "key": key, "action": "reject_unclear"}).json()["ok"]
    response = client.post(url, {"task": task, "key": key, "action": "keep"})  # the other tab's answer
    data = response.json()
    assert response.status_code == 409 and data["ok"] is False and data["code"] == "conflict"
    recorded = ReviewDecision.objects.get(task_id=task)
    assert data["task"] == task
    assert data["conflict"] == {
        "decision": recorded.pk,
        "action": "reject_unclear",
        "label": "Unclear",
        "by": "you",
        "mine": True,
        "at": recorded.created_at.isoformat(),
        "can_change": True,
        "given": "keep",
        "given_label": "Keep",
    }
    change = reverse("review:change", args=["images"])
    changed = client.post(change, {"task": task, "decision": recorded.pk, "action": "keep"}).json()
    assert changed["ok"] and changed["changed"] is True and "Keep" in changed["message"]
    again = client.post(change, {"task": task, "decision": recorded.pk, "action": "keep"}).json()
    assert again["ok"] and again["changed"] is False
    standing = ReviewDecision.objects.get(task_id=task, undone_at=None)
    assert (standing.action, standing.replaces_id) == ("keep", recorded.pk)
    assert client.post(change, {"task": task, "decision": "x"}).status_code == 400


def test_a_decision_on_a_lost_lease_is_refused_and_said_so(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (task, key), _ = _held_cards(client.get(reverse("review:queue", args=["images"])))
    ReviewTask.objects.filter(pk=task).update(leased_by=AnnotatorFactory())
    response = client.post(
        reverse("review:decide", args=["images"]), {"task": task, "key": key, "action": "keep"}
    )
    data = response.json()
    assert response.status_code == 409
    assert data["ok"] is False and data["code"] == "lease_lost" and "someone else" in data["message"]
    assert not ReviewDecision.objects.filter(task_id=task).exists()


def test_an_unknown_action_is_a_bad_request(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (task, key), _ = _held_cards(client.get(reverse("review:queue", args=["images"])))
    response = client.post(
        reverse("review:decide", args=["images"]), {"task": task, "key": key, "action": "same"}
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_action"
    incomplete = client.post(reverse("review:decide", args=["images"]), {"task": task})
    assert incomplete.status_code == 400


def test_skip_releases_the_task_and_hands_out_another(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (task, _), (second, _) = _held_cards(client.get(reverse("review:queue", args=["images"])))
    data = client.post(reverse("review:skip", args=["images"]), {"task": task, "have": str(second)}).json()
    assert data["ok"] and data["skipped"] == task
    assert task not in data["held"] and second in data["held"]
    assert ReviewTask.objects.get(pk=task).leased_by is None
    # The skipped task comes back after asking for the skipped ones again.
    client.post(reverse("review:skips_clear", args=["images"]))
    for held_task in data["held"]:
        ReviewTask.objects.filter(pk=held_task).update(status=ReviewTask.Status.DECIDED)
    assert task in [t for t, _ in _held_cards(client.get(reverse("review:queue", args=["images"])))]


def test_undo_gives_the_card_back(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (task, key), _ = _held_cards(client.get(reverse("review:queue", args=["images"])))
    client.post(
        reverse("review:decide", args=["images"]), {"task": task, "key": key, "action": "reject_unclear"}
    )
    data = client.post(reverse("review:undo", args=["images"])).json()
    assert data["ok"] and data["task"] == task
    assert [t for t, _ in _held_cards(data["card"])] == [task]
    assert ReviewDecision.objects.get(task_id=task).undone_at is not None
    # Reloading shows the undone task first.
    assert _held_cards(client.get(reverse("review:queue", args=["images"])))[0][0] == task
    nothing = client.post(reverse("review:undo", args=["duplicates"]))
    assert nothing.status_code == 409 and nothing.json()["code"] == "cannot_undo"


def test_the_heartbeat_reports_lost_leases(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    (first, _), (second, _) = _held_cards(client.get(reverse("review:queue", args=["images"])))
    ReviewTask.objects.filter(pk=second).update(leased_by=AnnotatorFactory())
    data = client.post(reverse("review:heartbeat", args=["images"]), {"have": f"{first},{second}"}).json()
    assert data == {"ok": True, "held": [first], "lost": [second]}


def test_the_cards_endpoint_tops_the_deck_up(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    data = client.get(reverse("review:cards", args=["images"]), {"have": ""}).json()
    assert [t for t, _ in _held_cards(data["cards"])] == verification_tasks[:2]


def test_the_duplicate_card_shows_both_products_and_the_flagged_pair(client, annotator):
    first, second = ProductFactory(title="Blue vase"), ProductFactory(title="Cobalt vase")
    image_a, image_b = ImageFactory(product=first), ImageFactory(product=second)
    duplicate_merge_tasks_create(
        candidates=[DuplicateCandidate(first.pk, second.pk, [(image_a.pk, image_b.pk, 0.9731)])]
    )
    _signed_in(client, annotator)
    html = client.get(reverse("review:queue", args=["duplicates"])).content.decode()
    assert "Blue vase" in html and "Cobalt vase" in html
    assert "0.973" in html and 'class="flagged"' in html
    assert 'data-action="same"' in html and 'data-action="different"' in html


def test_gold_tasks_look_like_any_other_task(client, annotator, verification_tasks):
    from annotation.review.task_creation import gold_task_create

    gold = gold_task_create(task=ReviewTask.objects.get(pk=verification_tasks[0]), answer="keep")
    ReviewQueue.objects.update_or_create(kind="image_verification", defaults={"gold_rate": 1.0})
    _signed_in(client, annotator)
    response = client.get(reverse("review:queue", args=["images"]))
    assert _held_cards(response)[0][0] == gold.pk
    assert b"gold" not in response.content.lower()


# --- images -------------------------------------------------------------------------------------------------------


def _real_image(size=(900, 600)):
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 40, 40)).save(buffer, "JPEG")
    return ImageFactory(file=ContentFile(buffer.getvalue(), name="big.jpg"), width=size[0], height=size[1])


def test_images_are_scaled_down_once_and_cached(client, annotator, media_root):
    image = _real_image()
    _signed_in(client, annotator)
    response = client.get(reverse("review:image", args=[image.pk, 320]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "immutable" in response["Cache-Control"]
    thumbnail = PILImage.open(io.BytesIO(b"".join(response.streaming_content)))
    assert thumbnail.size == (320, 213)
    assert len(list((media_root / "thumbs" / "320").rglob("*.jpg"))) == 1
    # Widths in between are rounded up to an offered one; a width above the original sends the original.
    assert (
        PILImage.open(
            io.BytesIO(b"".join(client.get(reverse("review:image", args=[image.pk, 500])).streaming_content))
        ).width
        == 640
    )
    original = client.get(reverse("review:image", args=[image.pk, 1280]))
    assert PILImage.open(io.BytesIO(b"".join(original.streaming_content))).size == (900, 600)


def test_images_need_a_signed_in_reviewer(client, plain_user):
    image = ImageFactory(file=ContentFile(image_bytes(), name="small.jpg"))
    url = reverse("review:image", args=[image.pk, 320])
    assert client.get(url).status_code == 302
    _signed_in(client, plain_user)
    assert client.get(url).status_code == 403


# --- keys ------------------------------------------------------------------------------------------------------------


def test_an_annotator_changes_their_keys(client, annotator, verification_tasks):
    _signed_in(client, annotator)
    fields = {"kind": "image_verification", "keep": "j", "skip": "ArrowRight"}
    response = client.post(reverse("review:keys"), fields, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"Saved." in response.content
    page = client.get(reverse("review:queue", args=["images"])).content.decode()
    config = json.loads(
        page.split('id="review-config" type="application/json">', 1)[1].split("</script>", 1)[0]
    )
    assert config["keys"]["keep"] == "j" and config["keys"]["skip"] == "ArrowRight"
    assert config["keys"]["reject_unclear"] == "2"  # untouched keys keep their default


def test_one_key_for_two_answers_is_refused(client, annotator):
    _signed_in(client, annotator)
    response = client.post(
        reverse("review:keys"),
        {"kind": "duplicate_merge", "same": "d", "different": "d"},
        HTTP_HX_REQUEST="true",
    )
    assert b"each key can do one thing" in response.content
    assert (
        client.post(reverse("review:keys"), {"kind": "duplicate_merge", "same": "Enter"}).status_code == 200
    )
    from annotation.review.keymaps import keymap_get

    assert keymap_get(user=annotator, kind="duplicate_merge")["same"] == "s"


# --- statistics and adjudication ------------------------------------------------------------------------------


def _decide(user, kind, action):
    from annotation.review.decisions import review_decision_submit
    from annotation.review.leases import review_tasks_claim

    [task] = review_tasks_claim(annotator=user, kind=kind, hold=1)
    review_decision_submit(annotator=user, task_id=task.pk, submission_key=task.lease_token, action=action)
    return task


def test_a_disagreement_is_adjudicated_by_a_researcher(client, researcher):
    ReviewQueue.objects.filter(kind="image_verification").update(required_decisions=2)
    ImageFactory()
    [task_id] = image_verification_tasks_create()
    first, second = AnnotatorFactory(username="ann"), AnnotatorFactory(username="bob")
    _decide(first, "image_verification", "keep")
    _decide(second, "image_verification", "reject_unclear")
    assert ReviewTask.objects.get(pk=task_id).status == ReviewTask.Status.NEEDS_ADJUDICATION

    _signed_in(client, researcher)
    page = client.get(reverse("review:adjudication")).content.decode()
    assert f"task #{task_id}" in page and "ann: Keep" in page and "bob: Unclear" in page
    response = client.post(
        reverse("review:adjudicate", args=[task_id]), {"action": "reject_unclear"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and b"Reject image" in response.content
    task = ReviewTask.objects.get(pk=task_id)
    assert (task.status, task.outcome, task.outcome_reason) == ("decided", "reject_image", "unclear")
    assert task.image.review_status == "rejected"
    again = client.post(
        reverse("review:adjudicate", args=[task_id]), {"action": "keep"}, HTTP_HX_REQUEST="true"
    )
    assert b"not disputed" in again.content


def test_statistics_show_each_annotator_and_the_agreement(client, researcher):
    ReviewQueue.objects.filter(kind="image_verification").update(required_decisions=2)
    for _ in range(2):
        ImageFactory()
    image_verification_tasks_create()
    first, second = AnnotatorFactory(username="ann"), AnnotatorFactory(username="bob")
    for _ in range(2):
        _decide(first, "image_verification", "keep")
        _decide(second, "image_verification", "keep")

    _signed_in(client, researcher)
    html = client.get(reverse("review:statistics")).content.decode()
    assert "ann" in html and "bob" in html
    agreement_row = html.split('id="agreement"', 1)[1].split("Duplicate merge", 1)[0]
    assert "100.0%" in agreement_row  # two tasks, both unanimous


def test_my_figures_on_the_dashboard(client, annotator):
    from annotation.review.task_creation import gold_task_create

    for _ in range(3):
        ImageFactory()
    ids = image_verification_tasks_create()
    gold_task_create(task=ReviewTask.objects.get(pk=ids[0]), answer="reject_image")
    ReviewQueue.objects.update_or_create(kind="image_verification", defaults={"gold_rate": 1.0})
    _decide(annotator, "image_verification", "keep")  # the gold task, answered wrongly
    _decide(annotator, "image_verification", "keep")
    _signed_in(client, annotator)
    html = client.get(reverse("review:dashboard_figures")).content.decode()
    assert "my accuracy on check tasks (1)" in html and "0.0%" in html
    assert "Mine: 2 decisions" in html
