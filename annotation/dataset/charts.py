"""Small SVG bar charts of a snapshot's statistics, drawn on the server (no chart library, no script).

Each row is one bar split into its positive and negative pairs, so the page shows at a glance both the size
of each source, split or category and its balance of yes and no.
"""

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

BAR_HEIGHT = 18
ROW_GAP = 6
LABEL_WIDTH = 170
BAR_WIDTH = 360
COUNT_WIDTH = 130
POSITIVE_COLOUR = "#2e7d32"
NEGATIVE_COLOUR = "#c62828"


def label_bars_svg(rows: Sequence[dict[str, Any]], *, title: str, max_rows: int = 40) -> SafeString:
    """Horizontal bars of ``rows`` (dicts with name, pairs, positive, negative), largest first."""
    shown = sorted(rows, key=lambda row: (-row["pairs"], row["name"]))[:max_rows]
    largest = max((row["pairs"] for row in shown), default=0) or 1
    height = len(shown) * (BAR_HEIGHT + ROW_GAP) + 30
    width = LABEL_WIDTH + BAR_WIDTH + COUNT_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, row in enumerate(shown):
        y = 24 + index * (BAR_HEIGHT + ROW_GAP)
        positive_width = BAR_WIDTH * row["positive"] / largest
        negative_width = BAR_WIDTH * row["negative"] / largest
        name = escape(row["name"])
        parts += [
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end" font-size="12">{name}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{positive_width:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{POSITIVE_COLOUR}"><title>{name}: {row["positive"]:,} positive</title></rect>',
            f'<rect x="{LABEL_WIDTH + positive_width:.1f}" y="{y}" width="{negative_width:.1f}" '
            f'height="{BAR_HEIGHT}" fill="{NEGATIVE_COLOUR}"><title>{name}: {row["negative"]:,} negative</title>'
            "</rect>",
            f'<text x="{LABEL_WIDTH + positive_width + negative_width + 6:.1f}" y="{y + 13}" font-size="12">'
            f"{row['pairs']:,}</text>",
        ]
    parts.append(
        f'<text x="{LABEL_WIDTH}" y="14" font-size="12"><tspan fill="{POSITIVE_COLOUR}">■ positive</tspan> '
        f'<tspan fill="{NEGATIVE_COLOUR}">■ negative</tspan></text>'
    )
    if len(rows) > len(shown):
        parts.append(
            f"<desc>{len(rows) - len(shown)} smaller rows are left out; the table lists them all.</desc>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 every value above is a number or escaped
