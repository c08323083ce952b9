"""Template helpers of the review pages: responsive image tags, the compare view's data and dictionary
lookups."""

import functools
import json

from django import template
from django.urls import get_script_prefix, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from annotation.models import Image, TaskKind
from annotation.review.cards import Card, Panel
from annotation.services.thumbnails import THUMBNAIL_WIDTHS

register = template.Library()


def image_url(image_id: int, width: int) -> str:
    """``reverse("review:image", args=[image_id, width])``, without resolving the URL pattern each time: a card
    has a dozen images, each with three widths, and the review page renders a card per answer."""
    return _image_url_pattern(get_script_prefix()).format(image=image_id, width=width)


@functools.cache
def _image_url_pattern(script_prefix: str) -> str:
    sample = reverse("review:image", args=[123456789, 987654321])
    return sample.replace("123456789", "{image}").replace("987654321", "{width}")


@register.simple_tag
def review_img(image: Image, sizes: str = "320px", loading: str = "lazy", css_class: str = "") -> str:
    """An <img> whose srcset offers the thumbnail widths smaller than the original, and the original.

    The browser picks the smallest file that fills the space at the screen's pixel density. A click opens the
    compare view, which finds the original's URL in the card's compare data (``compare_data``) by ``data-image``.
    """
    widths = [width for width in THUMBNAIL_WIDTHS if width < image.width] + [image.width]
    srcset = ", ".join(f"{image_url(image.pk, width)} {width}w" for width in widths)
    return format_html(
        '<img src="{}" srcset="{}" sizes="{}" width="{}" height="{}" loading="{}" decoding="async" '
        'data-image="{}" class="{}" alt="image #{}">',
        image_url(image.pk, widths[0]),
        srcset,
        sizes,
        image.width,
        image.height,
        loading,
        image.pk,
        css_class,
        image.pk,
    )


# Characters that could end the <script> element or open a comment inside it, as JSON escapes.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


@register.simple_tag
def compare_data(card: Card) -> SafeString:
    """What the compare view (static/js/compare.js) needs of the card, as a JSON <script> inside it.

    Cards reach the page as HTML (rendered here, or sent later as JSON-wrapped HTML), so the card carries its
    own data: both sides with every image (the originals' URLs, loaded only once the view opens) and the
    pairs to step through, the best first.
    """
    verifying = card.queue.kind == TaskKind.IMAGE_VERIFICATION
    data = {
        "task": card.task.pk,
        "kind": card.queue.kind,
        "sides": [_compare_side(card.left, "A", verifying), _compare_side(card.right, "B")],
        "pairs": [[pair.left.pk, pair.right.pk, pair.similarity] for pair in card.compare_pairs],
    }
    text = json.dumps(data, separators=(",", ":")).translate(_SCRIPT_ESCAPES)
    return mark_safe(f'<script type="application/json" class="compare-data">{text}</script>')  # escaped above


def _compare_side(panel: Panel, label: str, under_review: bool = False) -> dict:
    return {
        "label": label,
        # The card's layout says which image is under review; the view's header has to say it in words.
        "heading": f"Under review: {panel.heading}" if under_review else panel.heading,
        "generated": panel.generated,
        "images": [
            {
                "id": image.pk,
                "full": image.file.url,
                "thumb": image_url(image.pk, THUMBNAIL_WIDTHS[0]),
                "width": image.width,
                "height": image.height,
                "title": image.product.title if image.product_id else "generated image",
            }
            for image in panel.side_images
        ],
    }


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key) if mapping else None


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


@register.filter
def key_label(key: str) -> str:
    """How a key reads on a key cap."""
    return {" ": "Space", "ArrowLeft": "←", "ArrowRight": "→", "ArrowUp": "↑", "ArrowDown": "↓"}.get(
        key, key.upper() if len(key) == 1 else key
    )
