"""Shows job parameters and results, which are JSON, as text a person reads at a glance."""

from django import template

register = template.Library()


@register.filter
def readable(value: object) -> str:
    """``{"imported": 3, "rejected": 1}`` -> ``imported 3 · rejected 1``; lists joined by commas."""
    if isinstance(value, dict):
        return " · ".join(f"{key} {readable(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(readable(item) for item in value)
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@register.filter
def duration(seconds: float | None) -> str:
    """``3725`` -> ``1 h 2 min``; ``42.4`` -> ``42 s``."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
