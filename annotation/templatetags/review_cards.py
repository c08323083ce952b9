"""Template helpers of the review pages: responsive image tags and dictionary lookups."""

from django import template
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import Image
from annotation.services.thumbnails import THUMBNAIL_WIDTHS

register = template.Library()


@register.simple_tag
def review_img(image: Image, sizes: str = "320px", loading: str = "lazy", css_class: str = "") -> str:
    """An <img> whose srcset offers the thumbnail widths smaller than the original, and the original.

    The browser picks the smallest file that fills the space at the screen's pixel density; a click opens
    the original (``data-full``) in the zoom view, at full resolution.
    """
    widths = [width for width in THUMBNAIL_WIDTHS if width < image.width] + [image.width]
    srcset = ", ".join(f"{reverse('review:image', args=[image.pk, width])} {width}w" for width in widths)
    return format_html(
        '<img src="{}" srcset="{}" sizes="{}" width="{}" height="{}" loading="{}" decoding="async" '
        'data-full="{}" data-image="{}" class="{}" alt="image #{}">',
        reverse("review:image", args=[image.pk, widths[0]]),
        srcset,
        sizes,
        image.width,
        image.height,
        loading,
        image.file.url,
        image.pk,
        css_class,
        image.pk,
    )


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
