"""What each card carries for the compare view: both sides with every image (original URL, size) and the pairs
to step through, rendered into the card by the ``compare_data`` template tag; and the card's inline images,
served by the thumbnail view."""

import json

import pytest
from django.template import Context, Template
from django.urls import reverse

from annotation.review.cards import PANEL_IMAGES, cards_build
from tests.factories import ImageFactory, ProductFactory

pytestmark = pytest.mark.django_db


def compare_data(card) -> dict:
    html = Template("{% load review_cards %}{% compare_data card %}").render(Context({"card": card}))
    assert html.startswith('<script type="application/json" class="compare-data">') and html.endswith(
        "</script>"
    )
    return json.loads(html.split(">", 1)[1].rsplit("<", 1)[0])


def test_a_duplicate_card_carries_every_image_and_its_flagged_pairs_best_first(duplicate_task):
    # A title that would end the <script> element if it were not escaped.
    first, second = ProductFactory(title="Vase </script><b>"), ProductFactory(title="Cobalt vase")
    left = [ImageFactory(product=first, position=n, width=96, height=80) for n in range(PANEL_IMAGES + 2)]
    right = [ImageFactory(product=second, position=n) for n in range(3)]
    flagged = [(left[1].pk, right[2].pk, 0.81), (left[0].pk, right[0].pk, 0.95)]
    task = duplicate_task(first, second, flagged_pairs=flagged)
    [card] = cards_build([task])

    html = Template("{% load review_cards %}{% compare_data card %}").render(Context({"card": card}))
    assert "</script><b>" not in html and html.count("</script>") == 1
    data = compare_data(card)
    assert data["task"] == task.pk and data["kind"] == "duplicate_merge"
    side_a, side_b = data["sides"]
    assert (side_a["label"], side_b["label"]) == ("A", "B")
    assert side_a["heading"] == "A: Vase </script><b>"
    # Every image, also those the panel has no room for.
    assert len(card.left.images) == PANEL_IMAGES
    assert {image["id"] for image in side_a["images"]} == {image.pk for image in left}
    assert {image["id"] for image in side_b["images"]} == {image.pk for image in right}
    image = next(image for image in side_a["images"] if image["id"] == left[0].pk)
    assert image == {
        "id": left[0].pk,
        "full": left[0].file.url,
        "thumb": reverse("review:image", args=[left[0].pk, 320]),
        "width": 96,
        "height": 80,
        "title": "Vase </script><b>",
    }
    assert data["pairs"] == [[left[0].pk, right[0].pk, 0.95], [left[1].pk, right[2].pk, 0.81]]


def test_an_image_under_review_is_compared_with_each_other_image_of_its_product(image_tasks):
    product = ProductFactory(title="Teapot")
    others = [ImageFactory(product=product, position=n) for n in range(1, 3)]
    [task] = image_tasks(1, product=product)
    [card] = cards_build([task])
    data = compare_data(card)
    assert [image["id"] for image in data["sides"][0]["images"]] == [task.image_id]
    assert data["sides"][0]["heading"] == "Under review: Teapot"
    assert {image["id"] for image in data["sides"][1]["images"]} == {image.pk for image in others}
    assert data["pairs"] == [[task.image_id, other.pk, None] for other in others]


def test_a_generated_image_is_compared_with_each_real_photo(synthetic_task):
    product = ProductFactory()
    real = [ImageFactory(product=product, position=n) for n in range(2)]
    task = synthetic_task(product.instance)
    [card] = cards_build([task])
    data = compare_data(card)
    assert [image["id"] for image in data["sides"][1]["images"]] == [task.image_id]
    assert data["sides"][1]["images"][0]["title"] == "generated image"
    assert data["pairs"] == [[image.pk, task.image_id, None] for image in real]


def test_the_card_holds_its_compare_data_and_bigger_flagged_thumbnails(client, duplicate_task, alice):
    first, second = ProductFactory(), ProductFactory()
    image_a, image_b = ImageFactory(product=first), ImageFactory(product=second)
    duplicate_task(first, second, flagged_pairs=[(image_a.pk, image_b.pk, 0.9)])
    client.force_login(alice)
    html = client.get(reverse("review:queue", args=["duplicates"])).content.decode()
    assert html.count('class="compare-data"') == 1
    assert 'data-pair="0"' in html and 'sizes="128px"' in html
    # The compare view and its script are on the page; the old zoom overlay is gone.
    assert 'id="compare"' in html and "js/compare.js" in html and 'id="zoom"' not in html
