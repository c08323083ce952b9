"""Line charts of a run's metrics, drawn on the server as SVG (no chart library, no script): the run page
redraws them each time it refreshes."""

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 420
HEIGHT = 200
MARGIN_LEFT = 56
MARGIN_RIGHT = 12
MARGIN_TOP = 26
MARGIN_BOTTOM = 30
LINE_COLOUR = "#1565c0"


def metric_line_svg(points: Sequence[tuple[int, float]], *, title: str, unit: str = "") -> SafeString:
    """One metric against the training step: a line through the points, the last value in the title."""
    points = sorted(points)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    label = escape(title)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart metric-chart" role="img" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{label}">',
    ]
    if not points:
        parts += [
            f"<title>{label}: no values yet</title>",
            f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">{label}</text>',
            f'<text x="{MARGIN_LEFT}" y="{HEIGHT / 2:.0f}" font-size="12" fill="#666">No values yet.</text>',
            "</svg>",
        ]
        return mark_safe("".join(parts))  # noqa: S308 the title is escaped
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    low, high = min(values), max(values)
    if high == low:  # a flat line sits in the middle
        low, high = low - 0.5 if low else -0.5, high + 0.5 if high else 0.5
    first, last = min(steps), max(steps)
    span = (last - first) or 1

    def x(step: int) -> float:
        return MARGIN_LEFT + plot_width * ((step - first) / span if last != first else 0.5)

    def y(value: float) -> float:
        return MARGIN_TOP + plot_height * (1 - (value - low) / (high - low))

    latest = f"{values[-1]:.4g}{unit}"
    parts += [
        f"<title>{label}: {latest} at step {steps[-1]}</title>",
        f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">{label} '
        f'<tspan font-weight="normal" fill="#444">{escape(latest)} at step {steps[-1]:,}</tspan></text>',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{HEIGHT - MARGIN_BOTTOM}" stroke="#999"/>',
        f'<line x1="{MARGIN_LEFT}" y1="{HEIGHT - MARGIN_BOTTOM}" x2="{WIDTH - MARGIN_RIGHT}" '
        f'y2="{HEIGHT - MARGIN_BOTTOM}" stroke="#999"/>',
        f'<text x="{MARGIN_LEFT - 4}" y="{MARGIN_TOP + 4}" font-size="11" text-anchor="end">{high:.3g}</text>',
        f'<text x="{MARGIN_LEFT - 4}" y="{HEIGHT - MARGIN_BOTTOM}" font-size="11" text-anchor="end">{low:.3g}</text>',
        f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 10}" font-size="11">step {first:,}</text>',
        f'<text x="{WIDTH - MARGIN_RIGHT}" y="{HEIGHT - 10}" font-size="11" text-anchor="end">step {last:,}</text>',
    ]
    path = " ".join(f"{x(step):.1f},{y(value):.1f}" for step, value in points)
    parts.append(f'<polyline fill="none" stroke="{LINE_COLOUR}" stroke-width="2" points="{path}"/>')
    if len(points) <= 60:  # dots on short runs, where each step is worth seeing
        for step, value in points:
            parts.append(
                f'<circle cx="{x(step):.1f}" cy="{y(value):.1f}" r="2.5" fill="{LINE_COLOUR}">'
                f"<title>step {step}: {value:.4g}</title></circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 numbers and escaped text only
