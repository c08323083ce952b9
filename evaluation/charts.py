"""The report's plots, drawn on the server as SVG (no chart library, no script): accuracy per benchmark as
grouped bars (one colour per run or query type), and accuracy against training-set size (one line per
benchmark) for the scaling study."""

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#546e7a")
HEIGHT = 240
MARGIN_LEFT = 44
MARGIN_RIGHT = 12
MARGIN_TOP = 30
MARGIN_BOTTOM = 46


def _frame(width: int, title: str, legend: Sequence[str]) -> list[str]:
    label = escape(title)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" aria-label="{label}"><title>{label}</title>',
        f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">{label}</text>',
    ]
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    for percent in (0, 25, 50, 75, 100):
        y = plot_bottom - (plot_bottom - MARGIN_TOP) * percent / 100
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{width - MARGIN_RIGHT}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{MARGIN_LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{percent}%</text>'
        )
    x = MARGIN_LEFT
    for index, name in enumerate(legend):
        colour = COLOURS[index % len(COLOURS)]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="11">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return parts


def accuracy_bars_svg(
    groups: Sequence[tuple[str, Sequence[float | None]]], *, series: Sequence[str], title: str
) -> SafeString:
    """Bars of accuracy (percent) per group (a benchmark), one bar per series (a run, or a query type)."""
    bar = 14 if len(series) > 2 else 18
    # Wide enough for the group's name under it (about 7 px a character, names cut at 16).
    longest = max((len(group[:16]) for group, _ in groups), default=0)
    group_width = max(bar * len(series) + 16, 7 * longest + 12)
    width = max(360, MARGIN_LEFT + MARGIN_RIGHT + group_width * max(len(groups), 1))
    parts = _frame(width, title, series)
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    for group_index, (group, values) in enumerate(groups):
        left = MARGIN_LEFT + 8 + group_index * group_width + (group_width - 16 - bar * len(series)) / 2
        for index, value in enumerate(values):
            if value is None:
                continue
            height = plot_height * max(0.0, min(value, 100.0)) / 100
            colour = COLOURS[index % len(COLOURS)]
            parts.append(
                f'<rect x="{left + index * bar:.1f}" y="{plot_bottom - height:.1f}" width="{bar - 2}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(group)}, {escape(series[index])}: '
                f"{value:.1f}%</title></rect>"
            )
        parts.append(
            f'<text x="{left + bar * len(series) / 2:.1f}" y="{plot_bottom + 14}" font-size="11" '
            f'text-anchor="middle">{escape(group[:16])}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 numbers and escaped text only


def scaling_lines_svg(series: dict[str, Sequence[tuple[int, float]]], *, title: str) -> SafeString:
    """Accuracy (percent) against training-set size, one line per benchmark; sizes are spaced by rank so that
    a base model (0) and runs of 10K and 500K pairs are all readable."""
    names = list(series)
    sizes = sorted({size for points in series.values() for size, _ in points})
    width = max(420, MARGIN_LEFT + MARGIN_RIGHT + 90 * max(len(sizes), 1))
    parts = _frame(width, title, names)
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    plot_width = width - MARGIN_LEFT - MARGIN_RIGHT - 40
    rank = {size: index for index, size in enumerate(sizes)}

    def x(size: int) -> float:
        return (
            MARGIN_LEFT
            + 20
            + (plot_width * rank[size] / (len(sizes) - 1) if len(sizes) > 1 else plot_width / 2)
        )

    def y(value: float) -> float:
        return plot_bottom - plot_height * max(0.0, min(value, 100.0)) / 100

    for size in sizes:
        parts.append(
            f'<text x="{x(size):.1f}" y="{plot_bottom + 14}" font-size="11" text-anchor="middle">{size:,}</text>'
        )
    parts.append(
        f'<text x="{width - MARGIN_RIGHT}" y="{plot_bottom + 28}" font-size="10" text-anchor="end">'
        "training pairs</text>"
    )
    for index, name in enumerate(names):
        colour = COLOURS[index % len(COLOURS)]
        points = sorted(series[name])
        path = " ".join(f"{x(size):.1f},{y(value):.1f}" for size, value in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for size, value in points:
            parts.append(
                f'<circle cx="{x(size):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {value:.1f}% at {size:,} pairs</title></circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 numbers and escaped text only
