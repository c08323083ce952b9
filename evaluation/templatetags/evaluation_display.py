"""Formatting of accuracies in the report tables."""

from django import template

register = template.Library()


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


@register.filter
def signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


@register.filter
def delta_class(value: float | None) -> str:
    if value is None or abs(value) < 0.05:
        return "delta-none"
    return "delta-up" if value > 0 else "delta-down"
