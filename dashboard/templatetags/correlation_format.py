"""Numbers as the correlation page shows them: a missing value is a dash, never 0. (A missing key
reaches a filter as "", Django's string_if_invalid.)"""
from django import template

register = template.Library()
DASH = "—"


@register.filter
def num(value, places=3):
    return DASH if value in (None, "") else f"{float(value):.{int(places)}f}"


@register.filter
def pct(value):
    return DASH if value in (None, "") else f"{float(value) * 100:.1f}%"


@register.filter
def interval(bounds, places=3):
    lo, hi = (bounds or (None, None))[:2]
    return DASH if lo in (None, "") or hi in (None, "") else f"[{num(lo, places)}, {num(hi, places)}]"


@register.filter
def pct_interval(bounds):
    lo, hi = (bounds or (None, None))[:2]
    return DASH if lo in (None, "") or hi in (None, "") else f"[{pct(lo)}, {pct(hi)}]"
