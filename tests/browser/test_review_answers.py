"""An answer goes only to the card that was on screen, at most once; conflicts are shown on their card.

Real Chromium against the live server: a double click, a key held down, three fast keys on three cards, a key
pressed as the next card appears, and one queue open in two tabs that answer the same card differently. Each
test then checks in the database exactly which decisions exist.
"""

import time

from annotation.models import HardNegativePair, ReviewDecision, TaskKind
from tests.browser.conftest import BROWSER_TEST, CHROMIUM
from tests.browser.test_review_queues import (
    DECK_CARDS,
    SHOWN_CARD,
    queue_url,
    recorded,
    shown_task,
)
from tests.factories import AnnotatorFactory

pytestmark = BROWSER_TEST

if CHROMIUM is not None:
    from playwright.sync_api import expect

HARD = TaskKind.HARD_NEGATIVE


def hard_negative_tasks(catalog, count: int):
    instances = catalog.instances
    return catalog.hard_negative_tasks([(instances[2 * n], instances[2 * n + 1]) for n in range(count)])


def hard_negative_queue(catalog, new_page, tasks: int = 3):
    """A signed-in annotator's page on the hard-negative queue, with ``tasks`` tasks in it."""
    hard_negative_tasks(catalog, tasks)
    page = new_page(AnnotatorFactory(username="ann"))
    page.goto(queue_url(HARD))
    return page


def saved(page) -> None:
    expect(page.locator("#save-status")).to_have_text("All saved")


def test_a_double_click_answers_only_the_card_that_was_clicked(catalog, new_page, screenshots):
    page = hard_negative_queue(catalog, new_page)
    first = shown_task(page)
    page.locator(f'{SHOWN_CARD} [data-action="too_easy"]').dblclick()
    saved(page)
    second = shown_task(page)
    assert second != first
    # The second click landed on the next card's button, in the same place: it answered nothing.
    expect(page.locator("#notices")).to_contain_text("not applied")
    assert recorded(HARD) == {first: "too_easy"}
    page.wait_for_timeout(300)  # anything sent late would be in by now
    assert recorded(HARD) == {first: "too_easy"}
    assert int(page.locator(DECK_CARDS).first.get_attribute("data-task")) == second
    page.screenshot(path=str(screenshots / "answers-double-click.png"))


def test_a_key_held_down_for_a_second_answers_one_card(catalog, new_page):
    page = hard_negative_queue(catalog, new_page)
    first = shown_task(page)
    page.keyboard.down("e")
    for _ in range(30):  # the keyboard's auto-repeat: keydown events with repeat set
        page.wait_for_timeout(33)
        page.keyboard.down("e")
    page.keyboard.up("e")
    saved(page)
    assert shown_task(page) != first
    assert recorded(HARD) == {first: "too_easy"}


def test_a_key_pressed_twice_at_once_answers_one_card_and_says_so(catalog, new_page):
    page = hard_negative_queue(catalog, new_page)
    first = shown_task(page)
    page.keyboard.press("e")
    page.keyboard.press("e")  # before anyone could have looked at the next card
    saved(page)
    expect(page.locator("#notices")).to_contain_text("was not applied")
    assert recorded(HARD) == {first: "too_easy"}


def test_three_fast_keys_answer_three_cards(catalog, new_page):
    page = hard_negative_queue(catalog, new_page, tasks=4)
    shown, keys = [], ["e", "h", "e"]
    started = time.monotonic()
    for key in keys:
        task = shown_task(page)  # on screen and answerable: about 0.1 s after it appeared
        shown.append(task)
        page.keyboard.press(key)
    elapsed = time.monotonic() - started
    saved(page)
    assert len(set(shown)) == 3
    assert recorded(HARD) == dict(zip(shown, ["too_easy", "hard_negative", "too_easy"], strict=True))
    assert elapsed < 2.0, f"three cards took {elapsed:.2f} s"
    expect(page.locator("#session-count")).to_have_text("3 done")


def test_two_tabs_answering_one_card_differently_show_the_conflict_and_the_change_is_recorded(
    catalog, new_context, screenshots
):
    hard_negative_tasks(catalog, 3)
    context = new_context(AnnotatorFactory(username="ann"))
    tab_a, tab_b = context.new_page(), context.new_page()
    tab_a.goto(queue_url(HARD))
    tab_b.goto(queue_url(HARD))
    task = shown_task(tab_a)
    assert shown_task(tab_b) == task  # the same annotator holds the same cards in both tabs

    tab_a.keyboard.press("e")  # "Too easy: drop"
    saved(tab_a)
    tab_b.keyboard.press("h")  # "Hard negative: keep", on the same card
    conflict = tab_b.locator(f'{SHOWN_CARD}.in-conflict[data-task="{task}"]')
    expect(conflict).to_be_visible()
    banner = conflict.locator(".conflict-banner")
    expect(banner).to_contain_text("Recorded: “Too easy: drop”, by you")
    expect(banner).to_contain_text("You answered: “Hard negative: keep”")
    expect(tab_b.locator("#save-status")).to_have_text("1 answer in conflict: choose below")
    expect(tab_b.locator("#session-count")).to_have_text("0 done")
    assert recorded(HARD) == {task: "too_easy"}
    tab_b.wait_for_selector(f"{SHOWN_CARD}[data-seen]")
    tab_b.screenshot(path=str(screenshots / "answers-conflict.png"))

    # A reload does not lose it: the choice is still waiting on the card.
    tab_b.reload()
    expect(conflict).to_be_visible()
    expect(conflict.locator(".conflict-banner")).to_contain_text("Recorded: “Too easy: drop”, by you")
    expect(tab_b.locator("#save-status")).to_have_text("1 answer in conflict: choose below")
    tab_b.wait_for_selector(f"{SHOWN_CARD}[data-seen]")

    conflict.locator("[data-conflict-choice=change]").click()
    saved(tab_b)
    expect(tab_b.locator("#notices")).to_contain_text("your answer is now “Hard negative: keep”")
    expect(tab_b.locator(".review-card.in-conflict")).to_have_count(0)
    assert recorded(HARD) == {task: "hard_negative"}
    changed = ReviewDecision.objects.get(task_id=task, undone_at=None)
    withdrawn = ReviewDecision.objects.get(task_id=task, undone_at__isnull=False)
    assert (withdrawn.action, changed.replaces_id) == ("too_easy", withdrawn.pk)
    assert HardNegativePair.objects.filter(task_id=task).count() == 1

    # The next card, answered differently in the two tabs again: this time tab B keeps what was recorded,
    # with the key of that answer.
    tab_a.reload()
    next_task = shown_task(tab_a)
    tab_b.reload()
    assert shown_task(tab_b) == next_task
    tab_a.keyboard.press("h")
    saved(tab_a)
    tab_b.keyboard.press("e")
    expect(tab_b.locator(f'{SHOWN_CARD}.in-conflict[data-task="{next_task}"]')).to_be_visible()
    tab_b.wait_for_selector(f"{SHOWN_CARD}[data-seen]")
    tab_b.keyboard.press("h")
    saved(tab_b)
    expect(tab_b.locator("#notices")).to_contain_text("stays recorded")
    assert recorded(HARD) == {task: "hard_negative", next_task: "hard_negative"}
    assert ReviewDecision.objects.filter(task_id=next_task).count() == 1


def test_a_second_tab_with_the_same_answer_is_saved_once(catalog, new_context):
    hard_negative_tasks(catalog, 2)
    context = new_context(AnnotatorFactory(username="ann"))
    tab_a, tab_b = context.new_page(), context.new_page()
    tab_a.goto(queue_url(HARD))
    tab_b.goto(queue_url(HARD))
    task = shown_task(tab_a)
    assert shown_task(tab_b) == task
    tab_a.keyboard.press("e")
    saved(tab_a)
    tab_b.keyboard.press("e")
    saved(tab_b)
    assert recorded(HARD) == {task: "too_easy"}
    assert ReviewDecision.objects.filter(task_id=task).count() == 1
