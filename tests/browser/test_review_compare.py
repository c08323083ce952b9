"""The compare view in a real browser: a card's pair side by side at full resolution, zoomed and panned in
step, flickered and browsed in a grid, all with the keys (and the mouse), then closed back to the deck.

The demo catalog's images are small (96 px), so these tests also show that the view scales them up: it never
shows an image smaller than the card did.
"""

import re

import pytest

from annotation.models import Image, ReviewTask, TaskKind
from annotation.review.task_creation import DuplicateCandidate, duplicate_merge_tasks_create
from tests.browser.conftest import BROWSER_TEST, CHROMIUM
from tests.browser.test_review_queues import (
    CARD_IMAGES_LOADED,
    SHOWN_CARD,
    queue_url,
    recorded,
    shown_task,
)
from tests.factories import AnnotatorFactory

pytestmark = BROWSER_TEST

if CHROMIUM is not None:
    from playwright.sync_api import expect

SMALL_VIEWPORT = {"width": 1366, "height": 768}

# What the two panes show, left to right: the image, its side, its transform and its size on screen.
PANES = """() => [...document.querySelectorAll('#compare .compare-pane')].map((pane) => {
  const img = pane.querySelector('img');
  const rect = img.getBoundingClientRect();
  return {image: Number(img.dataset.image), side: pane.dataset.side, src: img.getAttribute('src'),
          transform: img.style.transform, width: rect.width, height: rect.height,
          loaded: img.complete && img.naturalWidth > 0};
})"""

# The largest width each image of the card on screen is shown at.
CARD_WIDTHS = """() => {
  const widths = {};
  for (const img of document.querySelectorAll('#deck > .review-card:first-child img[data-image]')) {
    const id = Number(img.dataset.image);
    widths[id] = Math.max(widths[id] || 0, img.getBoundingClientRect().width);
  }
  return widths;
}"""

# Every image that ``selector`` finds has loaded.
ALL_LOADED = "(s) => [...document.querySelectorAll(s)].every((i) => i.complete && i.naturalWidth > 0)"


def panes(page) -> list[dict]:
    return page.evaluate(PANES)


def shown_ids(page) -> list[int]:
    return [pane["image"] for pane in panes(page)]


def in_step(page) -> list[dict]:
    """The panes, after checking that they share one transform (zoom and pan in step)."""
    shown = panes(page)
    assert shown[0]["transform"] == shown[1]["transform"], shown
    return shown


def scale_and_pan(transform: str) -> tuple[float, float, float]:
    pan = re.search(r"translate\((-?[\d.]+)px, (-?[\d.]+)px\)", transform)
    zoom = re.search(r"scale\(([\d.]+)\)", transform)
    return float(zoom.group(1)), float(pan.group(1)), float(pan.group(2))


def open_queue(page, kind: str) -> None:
    page.goto(queue_url(kind))
    expect(page.locator("#save-status")).to_have_text("All saved")
    page.wait_for_function(CARD_IMAGES_LOADED)


def shoot(page, folder, name: str) -> None:
    page.wait_for_function(ALL_LOADED, arg="#compare .compare-pane img")
    page.screenshot(path=str(folder / f"{name}.png"))


def assert_never_smaller_than_on_the_card(page, card_widths: dict) -> None:
    for pane in panes(page):
        on_card = card_widths.get(str(pane["image"]), card_widths.get(pane["image"], 0))
        assert pane["width"] >= on_card - 0.5, (
            f"image #{pane['image']}: {pane['width']} px, card {on_card} px"
        )


def duplicate_task_with_three_pairs(catalog) -> tuple[ReviewTask, list[tuple[int, int, float]]]:
    """A duplicate card with three flagged pairs, given out of order."""
    a, b = (instance.products.get() for instance in catalog.instances[:2])
    left = list(Image.objects.filter(product=a).order_by("position", "pk"))
    right = list(Image.objects.filter(product=b).order_by("position", "pk"))
    flagged = [
        (left[1].pk, right[2].pk, 0.81),
        (left[0].pk, right[0].pk, 0.95),
        (left[2].pk, right[1].pk, 0.88),
    ]
    [task_id] = duplicate_merge_tasks_create(
        candidates=[DuplicateCandidate(product_a_id=a.pk, product_b_id=b.pk, flagged_pairs=flagged)]
    )
    return ReviewTask.objects.get(pk=task_id), sorted(flagged, key=lambda pair: -pair[2])


# --- 1. the key, the pairs, the originals, closing -------------------------------------------------------------


def test_the_key_opens_the_best_pair_steps_through_the_others_and_esc_gives_the_deck_back(
    catalog, new_page, screenshots
):
    annotator = AnnotatorFactory(username="ann")
    task, pairs = duplicate_task_with_three_pairs(catalog)
    page = new_page(annotator)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_queue(page, TaskKind.DUPLICATE_MERGE)
    card = page.locator(SHOWN_CARD)
    compare = page.locator("#compare")

    # Inline images come from the thumbnail view at the size they are shown; no original is fetched yet.
    both = Image.objects.filter(product_id__in=[task.product_a_id, task.product_b_id])
    originals = {image.pk: image.file.url for image in both}
    sources = card.locator("img[data-image]").evaluate_all("images => images.map(i => i.currentSrc)")
    assert sources and all("/review/images/" in source for source in sources), sources
    assert not [url for url in requested if any(url.endswith(full) for full in originals.values())]
    expect(card.locator(".flagged-pairs li")).to_have_count(3)
    assert card.locator(".flagged-pairs img").first.bounding_box()["width"] > 96
    page.screenshot(path=str(screenshots / "compare-card-duplicates-1440.png"))

    expect(compare).to_be_hidden()
    page.keyboard.press("v")
    expect(compare).to_be_visible()
    assert page.evaluate("document.body.classList.contains('comparing')")
    # The most similar pair first, A on the left.
    assert shown_ids(page) == [pairs[0][0], pairs[0][1]]
    expect(compare.locator(".compare-sim")).to_have_text("similarity 0.950")
    expect(compare.locator(".compare-pair-count")).to_have_text("pair 1 of 3")
    head = compare.locator(".compare-head")
    expect(head).to_contain_text(task.product_a.title)
    expect(head).to_contain_text(task.product_b.title)
    expect(head).to_contain_text(f"image #{pairs[0][0]}")
    expect(head).to_contain_text("96 × 96 px")
    # Now, and only now, the two originals are loaded, from their full-size URLs.
    page.wait_for_function(ALL_LOADED, arg="#compare .compare-pane img")
    assert [pane["src"] for pane in panes(page)] == [originals[pairs[0][0]], originals[pairs[0][1]]]
    fetched = {image for image, full in originals.items() if any(url.endswith(full) for url in requested)}
    assert fetched == {pairs[0][0], pairs[0][1]}
    shoot(page, screenshots, "compare-duplicates-1440")

    # ] and [ step through the pairs (wrapping round), a digit jumps to one.
    for key, index in (("]", 1), ("]", 2), ("]", 0), ("[", 2), ("2", 1), ("1", 0), ("9", 0)):
        page.keyboard.press(key)
        assert shown_ids(page) == [pairs[index][0], pairs[index][1]], key
        expect(compare.locator(".compare-sim")).to_have_text(f"similarity {pairs[index][2]:.3f}")
        expect(compare.locator(".compare-pair-count")).to_have_text(f"pair {index + 1} of 3")
    # The pair chips in the footer do the same.
    compare.locator('.compare-pairs button[data-pair="2"]').click()
    assert shown_ids(page) == [pairs[2][0], pairs[2][1]]

    page.set_viewport_size(SMALL_VIEWPORT)
    page.keyboard.press("1")
    shoot(page, screenshots, "compare-duplicates-1366")

    # Esc closes the view; the deck's keys answer the card again (none of the view's keys did).
    page.keyboard.press("Escape")
    expect(compare).to_be_hidden()
    assert not page.evaluate("document.body.classList.contains('comparing')")
    assert shown_task(page) == task.pk and not recorded(TaskKind.DUPLICATE_MERGE)
    page.keyboard.press("d")
    expect(page.locator(f'{SHOWN_CARD}[data-task="{task.pk}"]')).to_have_count(0)
    expect(page.locator("#save-status")).to_have_text("All saved")
    assert recorded(TaskKind.DUPLICATE_MERGE) == {task.pk: "different"}


# --- 2. zoom, pan, flicker, grid -------------------------------------------------------------------------------


def test_zoom_and_pan_keep_both_sides_in_step_flicker_swaps_and_the_grid_shows_every_image(
    catalog, new_page, screenshots
):
    annotator = AnnotatorFactory(username="ann")
    task, pairs = duplicate_task_with_three_pairs(catalog)
    page = new_page(annotator)
    open_queue(page, TaskKind.DUPLICATE_MERGE)
    compare = page.locator("#compare")
    card_widths = page.evaluate(CARD_WIDTHS)

    # A click on a flagged pair's thumbnail opens that pair.
    page.locator(f'{SHOWN_CARD} .flagged-pairs li[data-pair="1"] img').last.click()
    expect(compare).to_be_visible()
    assert shown_ids(page) == [pairs[1][0], pairs[1][1]]
    fitted = in_step(page)
    assert_never_smaller_than_on_the_card(page, card_widths)
    zoom, pan_x, pan_y = scale_and_pan(fitted[0]["transform"])
    expect(compare.locator(".compare-zoom")).to_have_text("fit")

    # + zooms both panes by the same factor; - and 0 go back, never below the fitted size.
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoomed = in_step(page)
    assert scale_and_pan(zoomed[0]["transform"])[0] == pytest.approx(zoom * 1.25**2, rel=1e-3)
    assert zoomed[0]["width"] == pytest.approx(fitted[0]["width"] * 1.5625, rel=1e-2)
    for _ in range(6):
        page.keyboard.press("-")
    assert scale_and_pan(in_step(page)[0]["transform"])[0] == pytest.approx(zoom)
    assert_never_smaller_than_on_the_card(page, card_widths)

    # The mouse wheel over the right pane zooms both, about the pointer.
    box = page.locator('#compare .compare-pane[data-pane="1"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        "(t) => document.querySelector('#compare .compare-pane img').style.transform !== t",
        arg=fitted[0]["transform"],
    )
    wheeled = in_step(page)
    wheel_zoom, wheel_x, wheel_y = scale_and_pan(wheeled[0]["transform"])
    assert wheel_zoom > zoom * 1.2 and (wheel_x, wheel_y) != (pan_x, pan_y)
    expect(compare.locator(".compare-zoom")).to_have_text(re.compile(r"zoom \d+\.\d×"))

    # Arrow keys pan both panes by the same amount.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    panned = scale_and_pan(in_step(page)[0]["transform"])
    assert panned[1] == pytest.approx(wheel_x - 60, abs=1) and panned[2] == pytest.approx(wheel_y - 60, abs=1)

    # Dragging either pane pans both.
    box = page.locator('#compare .compare-pane[data-pane="0"]').bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 330, steps=4)
    page.mouse.up()
    dragged = scale_and_pan(in_step(page)[0]["transform"])
    assert dragged[1] == pytest.approx(panned[1] - 40, abs=1) and dragged[2] == pytest.approx(
        panned[2] + 30, abs=1
    )
    shoot(page, screenshots, "compare-zoomed-1440")

    # Flicker: A and B change places, nothing else moves; again, and they are back.
    before = in_step(page)
    page.keyboard.press("f")
    swapped = in_step(page)
    assert [pane["image"] for pane in swapped] == [before[1]["image"], before[0]["image"]]
    assert [pane["side"] for pane in swapped] == ["B", "A"]
    assert swapped[0]["transform"] == before[0]["transform"]
    expect(compare.locator(".compare-swapped")).to_be_visible()
    expect(compare.locator('.compare-label[data-pane="0"] .compare-tag')).to_have_text("B")
    page.keyboard.press("f")
    assert [pane["image"] for pane in in_step(page)] == [before[0]["image"], before[1]["image"]]
    expect(compare.locator(".compare-swapped")).to_be_hidden()

    # 0 fits again.
    page.keyboard.press("0")
    assert scale_and_pan(in_step(page)[0]["transform"]) == (pytest.approx(zoom), 0, 0)

    # The grid shows every image of both sides; a click puts one on its side.
    page.keyboard.press("g")
    grid = compare.locator(".compare-grid")
    expect(grid).to_be_visible()
    a_images = list(Image.objects.filter(product_id=task.product_a_id).values_list("pk", flat=True))
    b_images = list(Image.objects.filter(product_id=task.product_b_id).values_list("pk", flat=True))
    a_grid = grid.locator('section[data-side="0"] button').evaluate_all(
        "b => b.map(x => Number(x.dataset.image))"
    )
    b_grid = grid.locator('section[data-side="1"] button').evaluate_all(
        "b => b.map(x => Number(x.dataset.image))"
    )
    assert sorted(a_grid) == sorted(a_images) and sorted(b_grid) == sorted(b_images)
    expect(grid.locator(".current")).to_have_count(2)
    page.wait_for_function(ALL_LOADED, arg="#compare .compare-grid img")
    page.screenshot(path=str(screenshots / "compare-grid-1440.png"))
    other = next(image for image in b_images if image not in shown_ids(page))
    grid.locator(f'section[data-side="1"] button[data-image="{other}"]').click()
    expect(grid).to_be_hidden()
    assert shown_ids(page) == [pairs[1][0], other]
    expect(compare.locator(".compare-pair-count")).to_have_text("pair – of 3")
    expect(compare.locator(".compare-sim")).to_have_text("similarity –")
    # Esc closes the grid first, then the view; the open key closes it too.
    page.keyboard.press("g")
    page.keyboard.press("Escape")
    expect(grid).to_be_hidden()
    expect(compare).to_be_visible()
    page.keyboard.press("v")
    expect(compare).to_be_hidden()
    assert shown_task(page) == task.pk and not recorded(TaskKind.DUPLICATE_MERGE)
    # A click on a panel image that is in no flagged pair opens it against the other side's best image.
    unflagged = next(image for image in a_images if image not in {pair[0] for pair in pairs})
    page.locator(f'{SHOWN_CARD} .panel-left img[data-image="{unflagged}"]').click()
    expect(compare).to_be_visible()
    assert shown_ids(page) == [unflagged, pairs[0][1]]


# --- 3. the other kinds of card --------------------------------------------------------------------------------


def test_image_verification_compares_the_image_with_the_products_others_never_smaller_than_the_card(
    catalog, new_page, screenshots
):
    annotator = AnnotatorFactory(username="ann")
    [task] = catalog.image_tasks(1)
    others = list(
        Image.objects.filter(product=task.image.product).exclude(pk=task.image_id).order_by("position", "pk")
    )
    page = new_page(annotator)
    compare = page.locator("#compare")
    for viewport, name in ((None, "1440"), (SMALL_VIEWPORT, "1366")):
        if viewport:
            page.set_viewport_size(viewport)
        open_queue(page, TaskKind.IMAGE_VERIFICATION)
        card_widths = page.evaluate(CARD_WIDTHS)
        featured = (
            card_widths[str(task.image_id)]
            if str(task.image_id) in card_widths
            else card_widths[task.image_id]
        )
        assert featured > 300, "the card shows the small original scaled up"
        # A click on the image under review opens it against the product's first other image.
        page.locator(f"{SHOWN_CARD} .featured img").click()
        expect(compare).to_be_visible()
        assert shown_ids(page) == [task.image_id, others[0].pk]
        assert_never_smaller_than_on_the_card(page, card_widths)
        assert panes(page)[0]["width"] > 96 * 3
        # Zooming out stops at the card's size.
        for _ in range(5):
            page.keyboard.press("-")
        assert_never_smaller_than_on_the_card(page, card_widths)
        shoot(page, screenshots, f"compare-images-{name}")
        # ] steps through the product's other images.
        page.keyboard.press("]")
        assert shown_ids(page) == [task.image_id, others[1].pk]
        expect(compare.locator(".compare-pair-count")).to_have_text(f"pair 2 of {len(others)}")
        expect(compare.locator(".compare-head")).to_contain_text(task.image.product.title)
        page.keyboard.press("Escape")
        expect(compare).to_be_hidden()


def test_synthetic_cards_compare_the_real_photo_with_the_generated_image(catalog, new_page, screenshots):
    annotator = AnnotatorFactory(username="ann")
    instance = catalog.instances[3]
    [task] = catalog.synthetic_tasks([instance])
    real = list(Image.objects.filter(product__instance=instance).order_by("product_id", "position", "pk"))
    page = new_page(annotator)
    open_queue(page, TaskKind.SYNTHETIC_VALIDATION)
    compare = page.locator("#compare")
    page.keyboard.press("v")
    expect(compare).to_be_visible()
    assert shown_ids(page) == [real[0].pk, task.image_id]
    expect(compare.locator('.compare-label[data-pane="1"]')).to_contain_text("Generated image")
    page.keyboard.press("]")
    assert shown_ids(page) == [real[1].pk, task.image_id]
    page.keyboard.press("g")
    expect(compare.locator('.compare-grid section[data-side="0"] button')).to_have_count(len(real))
    expect(compare.locator('.compare-grid section[data-side="1"] button')).to_have_count(1)
    page.keyboard.press("g")
    page.keyboard.press("[")
    shoot(page, screenshots, "compare-synthetic-1440")
    page.keyboard.press("v")
    expect(compare).to_be_hidden()
    # The deck answers again.
    page.keyboard.press("k")
    expect(page.locator(f'{SHOWN_CARD}[data-task="{task.pk}"]')).to_have_count(0)
    expect(page.locator("#save-status")).to_have_text("All saved")
    assert recorded(TaskKind.SYNTHETIC_VALIDATION) == {task.pk: "keep"}


def test_hard_negative_cards_open_on_their_flagged_pair(catalog, new_page, screenshots):
    annotator = AnnotatorFactory(username="ann")
    first, second = catalog.instances[4], catalog.instances[5]
    [task] = catalog.hard_negative_tasks([(first, second)])
    [(left, right, similarity)] = task.payload["flagged_pairs"]
    page = new_page(annotator)
    page.set_viewport_size(SMALL_VIEWPORT)
    open_queue(page, TaskKind.HARD_NEGATIVE)
    page.keyboard.press("v")
    compare = page.locator("#compare")
    expect(compare).to_be_visible()
    assert shown_ids(page) == [left, right]
    expect(compare.locator(".compare-sim")).to_have_text(f"similarity {similarity:.3f}")
    expect(compare.locator('.compare-label[data-pane="0"]')).to_contain_text("Object:")
    expect(compare.locator('.compare-label[data-pane="1"]')).to_contain_text("Candidate:")
    shoot(page, screenshots, "compare-hard-negatives-1366")
    page.keyboard.press("Escape")
    expect(compare).to_be_hidden()
