"""The review queues in a real browser: headless Chromium driven by Playwright against the live server.

Each test works the page the way an annotator does (keys, reloads, a second annotator, a network failure)
and then checks in the database what was recorded and applied.
"""

import re

from django.db.models import Count

from annotation.models import (
    HardNegativePair,
    Image,
    InstanceMerge,
    Product,
    ProductDistinction,
    ReviewDecision,
    ReviewTask,
    TaskKind,
)
from annotation.review.queues import QUEUE_SLUGS, queue_definition
from tests.browser.conftest import BROWSER_TEST, CHROMIUM
from tests.factories import AnnotatorFactory, UserFactory

pytestmark = BROWSER_TEST

if CHROMIUM is not None:
    from playwright.sync_api import expect

PASSWORD = "pass-1234"
DECK_CARDS = "#deck > .review-card"
SHOWN_CARD = "#deck > .review-card:first-child"

# The images of the card on screen that lie in the viewport (the others load lazily) have all loaded.
CARD_IMAGES_LOADED = """() => {
  const card = document.querySelector('#deck > .review-card');
  if (!card) return false;
  const images = [...card.querySelectorAll('img')].filter(
    (img) => img.getBoundingClientRect().top < window.innerHeight);
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""

# A card that takes answers (on screen long enough: ``data-seen``), or the queue's "done" state.
CARD_OR_EMPTY = """() => document.querySelector('#deck > .review-card:first-child[data-seen]')
  || !document.getElementById('empty').hidden"""


# --- helpers -------------------------------------------------------------------------------------------------


def queue_url(kind: str) -> str:
    return f"/review/{QUEUE_SLUGS[kind]}/"


def action_of_key(kind: str, key: str) -> str:
    return next(action.code for action in queue_definition(kind).actions if action.default_key == key)


def shown_task(page) -> int:
    """The card on screen, once it takes answers (``data-seen``: painted and on screen for a moment)."""
    card = page.locator(f"{SHOWN_CARD}[data-seen]")
    expect(card).to_be_visible()
    return int(card.get_attribute("data-task"))


def deck_tasks(page) -> list[int]:
    return [
        int(task) for task in page.locator(DECK_CARDS).evaluate_all("cards => cards.map(c => c.dataset.task)")
    ]


def answer(page, key: str) -> int:
    """Presses ``key`` on the card on screen and waits until the answer is saved; returns the card's task."""
    task = shown_task(page)
    page.keyboard.press(key)
    expect(page.locator(f'{DECK_CARDS}[data-task="{task}"]')).to_have_count(0)
    expect(page.locator("#save-status")).to_have_text("All saved")
    return task


def answer_without_waiting(page, key: str) -> int:
    task = shown_task(page)
    page.keyboard.press(key)
    return task


def work_through(page, kind: str, keys: list[str]) -> dict[int, str]:
    """Answers one card per key; returns {task id: action} and checks the queue then says it is done."""
    answered: dict[int, str] = {}
    for key in keys:
        task = answer(page, key)
        assert task not in answered, f"task #{task} was shown again after it was answered"
        answered[task] = action_of_key(kind, key)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator(DECK_CARDS)).to_have_count(0)
    expect(page.locator("#session-count")).to_have_text(re.compile(rf"^{len(keys)} done"))
    return answered


def recorded(kind: str) -> dict[int, str]:
    """{task id: action} of the queue's standing decisions; each task has one at most."""
    decisions = ReviewDecision.objects.filter(kind=kind, undone_at=None)
    mapping = dict(decisions.values_list("task_id", "action"))
    assert len(mapping) == decisions.count(), "a task got two standing decisions"
    return mapping


def open_queue_from_dashboard(page, kind: str) -> None:
    page.goto("/review/")
    page.locator(f'a.queue-tile[data-queue="{QUEUE_SLUGS[kind]}"]').click()
    expect(page).to_have_url(re.compile(re.escape(queue_url(kind)) + "$"))
    expect(page.locator("#save-status")).to_have_text("All saved")


def screenshot(page, folder, name: str) -> None:
    page.wait_for_function(CARD_IMAGES_LOADED)
    page.screenshot(path=str(folder / f"{name}.png"))


# --- 1. every queue, keyboard only ------------------------------------------------------------------------------


def test_an_annotator_signs_in_and_works_through_every_queue_with_the_keyboard(
    catalog, new_page, live_server, screenshots
):
    AnnotatorFactory(username="ann")
    listing = [instance.products.get() for instance in catalog.instances]
    instances = catalog.instances
    image_tasks = catalog.image_tasks(2)
    duplicate_tasks = catalog.duplicate_tasks([(listing[0], listing[1]), (listing[2], listing[3])])
    hard_tasks = catalog.hard_negative_tasks(
        [(instances[4], instances[5]), (instances[6], instances[7]), (instances[8], instances[9])]
    )
    synthetic_tasks = catalog.synthetic_tasks([instances[4], instances[6], instances[8]])

    page = new_page()
    page.goto("/accounts/login/?next=/review/")
    # The login form by keyboard too: the user name field has the focus.
    page.keyboard.type("ann")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/review/")
    expect(page.locator("h1")).to_have_text("Review queues")
    for kind, tasks in (
        (TaskKind.IMAGE_VERIFICATION, image_tasks),
        (TaskKind.DUPLICATE_MERGE, duplicate_tasks),
        (TaskKind.HARD_NEGATIVE, hard_tasks),
        (TaskKind.SYNTHETIC_VALIDATION, synthetic_tasks),
    ):
        tile = page.locator(f'a.queue-tile[data-queue="{QUEUE_SLUGS[kind]}"]')
        expect(tile.locator(".big")).to_have_text(f"{len(tasks)} open")
    page.screenshot(path=str(screenshots / "dashboard.png"))

    # Image verification: keep one image, reject the other as unclear.
    open_queue_from_dashboard(page, TaskKind.IMAGE_VERIFICATION)
    expect(page.locator(f"{SHOWN_CARD} .featured img")).to_have_count(1)
    screenshot(page, screenshots, "queue-images")
    answered = work_through(page, TaskKind.IMAGE_VERIFICATION, ["k", "2"])
    assert set(answered) == {task.pk for task in image_tasks}
    assert recorded(TaskKind.IMAGE_VERIFICATION) == answered
    for task_id, action in answered.items():
        image = Image.objects.select_related("product").get(pk=ReviewTask.objects.get(pk=task_id).image_id)
        if action == "keep":
            assert (image.review_status, image.product.review_status) == ("accepted", "accepted")
        else:
            assert action == "reject_unclear"
            assert (image.review_status, image.rejection_reason) == ("rejected", "unclear")

    # Duplicates: one pair is the same object (merged), the other two different objects.
    open_queue_from_dashboard(page, TaskKind.DUPLICATE_MERGE)
    expect(page.locator(f"{SHOWN_CARD} .flagged-pairs li")).to_have_count(1)
    screenshot(page, screenshots, "queue-duplicates")
    answered = work_through(page, TaskKind.DUPLICATE_MERGE, ["s", "d"])
    assert set(answered) == {task.pk for task in duplicate_tasks}
    assert recorded(TaskKind.DUPLICATE_MERGE) == answered
    for task_id, action in answered.items():
        task = ReviewTask.objects.get(pk=task_id)
        a, b = Product.objects.get(pk=task.product_a_id), Product.objects.get(pk=task.product_b_id)
        distinct = ProductDistinction.objects.filter(product_a=a, product_b=b, task=task).exists()
        if action == "same":
            assert a.instance_id == b.instance_id, "'same' should have merged the two products' instances"
            assert InstanceMerge.objects.filter(pk=task.outcome_effects["merge"], undone_at=None).exists()
            assert not distinct
        else:
            assert action == "different"
            assert a.instance_id != b.instance_id and distinct

    # Hard negatives: keep one pair, drop one as too easy, send one to the duplicate queue.
    open_queue_from_dashboard(page, TaskKind.HARD_NEGATIVE)
    screenshot(page, screenshots, "queue-hard-negatives")
    answered = work_through(page, TaskKind.HARD_NEGATIVE, ["h", "e", "s"])
    assert set(answered) == {task.pk for task in hard_tasks}
    assert recorded(TaskKind.HARD_NEGATIVE) == answered
    for task_id, action in answered.items():
        task = ReviewTask.objects.get(pk=task_id)
        low, high = sorted((task.instance_id, task.candidate_instance_id))
        pair = HardNegativePair.objects.filter(instance_a_id=low, instance_b_id=high).exists()
        sent = ReviewTask.objects.filter(
            kind=TaskKind.DUPLICATE_MERGE, status=ReviewTask.Status.OPEN, payload__sent_by_task=task_id
        )
        assert pair == (action == "hard_negative"), action
        assert sent.count() == (1 if action == "same_object" else 0), action

    # Synthetic images: keep one, drop one as dissimilar, one as indistinguishable.
    open_queue_from_dashboard(page, TaskKind.SYNTHETIC_VALIDATION)
    expect(page.locator(f"{SHOWN_CARD} .panel.generated .featured img")).to_have_count(1)
    screenshot(page, screenshots, "queue-synthetic")
    answered = work_through(page, TaskKind.SYNTHETIC_VALIDATION, ["k", "d", "i"])
    assert set(answered) == {task.pk for task in synthetic_tasks}
    assert recorded(TaskKind.SYNTHETIC_VALIDATION) == answered
    expected_status = {
        "keep": ("accepted", ""),
        "drop_dissimilar": ("rejected", "dissimilar"),
        "drop_indistinguishable": ("rejected", "indistinguishable"),
    }
    for task_id, action in answered.items():
        image = Image.objects.get(pk=ReviewTask.objects.get(pk=task_id).image_id)
        assert (image.review_status, image.rejection_reason) == expected_status[action]

    every = image_tasks + duplicate_tasks + hard_tasks + synthetic_tasks
    statuses = set(ReviewTask.objects.filter(pk__in=[t.pk for t in every]).values_list("status", flat=True))
    assert statuses == {ReviewTask.Status.DECIDED}
    # The dashboard counts what is left: only the duplicate task the hard-negative queue sent.
    page.goto("/review/")
    expect(page.locator('a.queue-tile[data-queue="duplicates"] .big')).to_have_text("1 open")
    expect(page.locator('a.queue-tile[data-queue="images"] .big')).to_have_text("0 open")


# --- 2. undo ---------------------------------------------------------------------------------------------------


def test_undo_brings_the_card_back_and_reverts_the_merge(catalog, new_page):
    annotator = AnnotatorFactory(username="ann")
    listing = [instance.products.get() for instance in catalog.instances]
    tasks = catalog.duplicate_tasks(
        [(listing[0], listing[1]), (listing[2], listing[3]), (listing[4], listing[5])]
    )
    page = new_page(annotator)
    page.goto(queue_url(TaskKind.DUPLICATE_MERGE))
    status, notices = page.locator("#save-status"), page.locator("#notices")

    # An answer already saved: undone on the server, its outcome reverted, its card shown again.
    task_id = answer(page, "s")
    task = ReviewTask.objects.get(pk=task_id)
    a, b = task.product_a, task.product_b
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.instance_id == b.instance_id and task.status == ReviewTask.Status.DECIDED
    assert shown_task(page) != task_id
    merge_id = task.outcome_effects["merge"]

    page.keyboard.press("u")
    expect(page.locator(DECK_CARDS).first).to_have_attribute("data-task", str(task_id))
    expect(notices).to_contain_text(f"Undid your answer “Same instance: merge” on task #{task_id}")
    # The card that came back says what the annotator had answered.
    expect(page.locator(f"{SHOWN_CARD} .previous-answer")).to_contain_text("Same instance: merge")
    expect(page.locator(f'{SHOWN_CARD} .action.previous[data-action="same"]')).to_have_count(1)
    assert deck_tasks(page)[0] == task_id and set(deck_tasks(page)) == {t.pk for t in tasks}
    expect(page.locator("#session-count")).to_have_text(re.compile(r"^0 done"))

    decision = ReviewDecision.objects.get(task_id=task_id)
    assert decision.action == "same" and decision.undone_at is not None
    a.refresh_from_db()
    b.refresh_from_db()
    task.refresh_from_db()
    assert a.instance_id != b.instance_id, "undo should have split the merged instances again"
    assert InstanceMerge.objects.get(pk=merge_id).undone_at is not None
    assert (task.status, task.outcome, task.leased_by_id) == (ReviewTask.Status.OPEN, "", annotator.pk)

    # The card came back with a fresh lease: answering it again is recorded as a new decision.
    assert answer(page, "d") == task_id
    assert recorded(TaskKind.DUPLICATE_MERGE) == {task_id: "different"}
    assert ReviewDecision.objects.filter(task_id=task_id).count() == 2
    assert ProductDistinction.objects.filter(task_id=task_id).exists()

    # An answer still waiting in the outbox (behind one in flight) is taken back in the page: the server
    # never hears of it.
    held_routes, holding = [], [True]

    def hold(route):
        if holding[0]:
            held_routes.append(route)
        else:
            route.continue_()

    page.route("**/review/duplicates/decide/", hold)
    in_flight = answer_without_waiting(page, "d")
    waiting = answer_without_waiting(page, "s")
    expect(status).to_have_text("Saving 2…")
    page.keyboard.press("u")
    expect(page.locator(DECK_CARDS).first).to_have_attribute("data-task", str(waiting))
    expect(notices).to_contain_text("Taken back before it was sent.")
    expect(status).to_have_text("Saving 1…")
    expect(page.locator("#session-count")).to_have_text(re.compile(r"^2 done"))
    holding[0] = False
    while not held_routes:
        page.wait_for_timeout(20)
    held_routes[0].continue_()
    expect(status).to_have_text("All saved")
    assert len(held_routes) == 1, "the taken-back answer should never have been sent"
    assert recorded(TaskKind.DUPLICATE_MERGE) == {task_id: "different", in_flight: "different"}
    assert shown_task(page) == waiting
    # Its card kept its lease: answering it now is recorded.
    assert answer(page, "d") == waiting
    assert recorded(TaskKind.DUPLICATE_MERGE)[waiting] == "different"
    assert ReviewDecision.objects.filter(task_id=waiting).count() == 1


# --- 3. reloading --------------------------------------------------------------------------------------------


def test_reloading_shows_the_same_task_and_never_duplicates_a_decision(catalog, new_page):
    annotator = AnnotatorFactory(username="ann")
    tasks = catalog.image_tasks(4)
    page = new_page(annotator)
    page.goto(queue_url(TaskKind.IMAGE_VERIFICATION))

    first = shown_task(page)
    deck = deck_tasks(page)
    page.reload()
    assert shown_task(page) == first
    assert deck_tasks(page) == deck

    assert answer(page, "k") == first
    page.reload()
    second = shown_task(page)
    assert second != first and first not in deck_tasks(page)

    # Reloading straight after a key press: the answer may or may not have reached the server; the outbox
    # sends it (again) from the reloaded page and it is recorded once.
    page.keyboard.press("2")
    page.reload()
    expect(page.locator("#save-status")).to_have_text("All saved")
    third = shown_task(page)
    assert third not in (first, second) and second not in deck_tasks(page)

    # The server records an answer but its reply is lost: the answer stays in the outbox, is sent again
    # from the reloaded page, and the second copy finds the first.
    replies = {"lost": 0, "refused": 0, "let_through": False}

    def lose_the_reply(route):
        if replies["let_through"]:
            route.continue_()
        elif not replies["lost"]:
            replies["lost"] += 1
            route.fetch()
            route.abort("connectionreset")
        else:
            replies["refused"] += 1
            route.abort("internetdisconnected")

    page.route("**/review/images/decide/", lose_the_reply)
    page.keyboard.press("k")
    status = page.locator("#save-status")
    expect(status).to_contain_text("1 not saved yet")
    assert ReviewDecision.objects.filter(task_id=third).count() == 1
    page.reload()
    expect(page.locator("#notices")).to_contain_text("Sending 1 answer from before the page was reloaded")
    expect(status).to_contain_text("1 not saved yet")
    fourth = shown_task(page)
    assert third not in deck_tasks(page)
    replies["let_through"] = True
    expect(status).to_have_text("All saved")
    # The second copy was recognised as the same answer, not refused as one on a closed task.
    expect(page.locator("#notices .notice.error")).to_have_count(0)
    assert replies["lost"] == 1 and replies["refused"] >= 1

    assert answer(page, "k") == fourth
    expect(page.locator("#empty")).to_be_visible()
    page.reload()
    expect(page.locator("#empty")).to_be_visible()

    counts = dict(
        ReviewDecision.objects.filter(task__in=tasks)
        .values_list("task_id")
        .annotate(n=Count("id"))
        .values_list("task_id", "n")
    )
    assert counts == {task.pk: 1 for task in tasks}
    assert recorded(TaskKind.IMAGE_VERIFICATION) == {
        first: "keep",
        second: "reject_unclear",
        third: "keep",
        fourth: "keep",
    }


# --- 4. two annotators at once ---------------------------------------------------------------------------------


def test_two_annotators_on_one_queue_never_see_the_same_task(catalog, new_page):
    tasks = catalog.image_tasks(8)
    annotators = [AnnotatorFactory(username="ann"), AnnotatorFactory(username="bea")]
    pages = {annotator.pk: new_page(annotator) for annotator in annotators}
    for page in pages.values():
        page.goto(queue_url(TaskKind.IMAGE_VERIFICATION))
    seen: dict[int, list[int]] = {pk: [] for pk in pages}

    # Both answer in turns without waiting for their saves: their requests overlap on the server.
    done: set[int] = set()
    for _ in range(len(tasks) + 4):
        for pk, page in pages.items():
            if pk in done:
                continue
            page.wait_for_function(CARD_OR_EMPTY)
            cards = page.locator(DECK_CARDS)
            if cards.count() == 0:
                done.add(pk)
                continue
            seen[pk] += [task for task in deck_tasks(page) if task not in seen[pk]]
            page.keyboard.press("k" if len(seen[pk]) % 2 else "2")
        if len(done) == len(pages):
            break
    assert done == set(pages), "both pages should end on the empty queue"
    for page in pages.values():
        expect(page.locator("#save-status")).to_have_text("All saved")
        expect(page.locator("#empty")).to_be_visible()

    first, second = (set(ids) for ids in seen.values())
    assert not first & second, f"both annotators were shown tasks {sorted(first & second)}"
    assert first | second == {task.pk for task in tasks}
    assert first and second, "each annotator should have had a share of the queue"
    decisions = ReviewDecision.objects.filter(task__in=tasks)
    by_task = {}
    for task_id, annotator_id in decisions.values_list("task_id", "annotator_id"):
        by_task.setdefault(task_id, []).append(annotator_id)
    assert by_task == {task: [pk] for pk, ids in seen.items() for task in ids}


# --- 5. help ------------------------------------------------------------------------------------------------


def test_the_help_overlay_lists_the_keys_and_answers_nothing(catalog, new_page):
    """(Clicking an image opens the compare view: tests/browser/test_review_compare.py.)"""
    annotator = AnnotatorFactory(username="ann")
    [task] = catalog.image_tasks(1)
    page = new_page(annotator)
    page.goto(queue_url(TaskKind.IMAGE_VERIFICATION))
    help_overlay = page.locator("#help")
    expect(help_overlay).to_be_hidden()

    page.keyboard.press("?")
    expect(help_overlay).to_be_visible()
    expect(help_overlay).to_contain_text("Unclear")
    expect(help_overlay).to_contain_text("side by side")
    page.keyboard.press("Escape")
    expect(help_overlay).to_be_hidden()

    assert shown_task(page) == task.pk
    assert not ReviewDecision.objects.exists()


# --- 6. a failed save ---------------------------------------------------------------------------------------


def test_a_failed_save_is_shown_and_sent_again(catalog, new_page):
    annotator = AnnotatorFactory(username="ann")
    tasks = catalog.image_tasks(3)
    page = new_page(annotator)
    blocked = {"on": True, "aborted": 0}

    def decide_route(route):
        if blocked["on"]:
            blocked["aborted"] += 1
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/review/images/decide/", decide_route)
    page.goto(queue_url(TaskKind.IMAGE_VERIFICATION))
    status = page.locator("#save-status")

    first = shown_task(page)
    page.keyboard.press("k")
    expect(status).to_contain_text("1 not saved yet")
    expect(status).to_have_class(re.compile(r"\bfailed\b"))
    # The next card is on screen meanwhile, and a second answer waits behind the first.
    second = shown_task(page)
    assert second != first
    page.keyboard.press("2")
    expect(status).to_contain_text("2 not saved yet")
    assert not ReviewDecision.objects.exists()

    blocked["on"] = False
    expect(status).to_have_text("All saved")
    expect(page.locator("#notices .notice.error")).to_have_count(0)
    assert blocked["aborted"] >= 2
    assert recorded(TaskKind.IMAGE_VERIFICATION) == {first: "keep", second: "reject_unclear"}
    assert ReviewDecision.objects.count() == 2
    # The answers' responses brought the third card.
    assert shown_task(page) == ({task.pk for task in tasks} - {first, second}).pop()


# --- 7. permissions ------------------------------------------------------------------------------------------


def test_anonymous_visitors_sign_in_first_and_non_annotators_are_refused(new_page, live_server):
    page = new_page()
    page.goto("/review/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/review/$"))
    expect(page.locator("input[name=password]")).to_be_visible()

    plain = UserFactory(username="nobody")
    page = new_page(plain)
    response = page.goto("/review/images/")
    assert response.status == 403
    response = page.goto("/review/")
    assert response.status == 403
