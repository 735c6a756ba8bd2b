"""Rates as people read them: a percentage, or "insufficient data" when there is no number."""
from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 1):
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def ci(est):
    """"48.1–55.2%" from a {ci_low, ci_high} dict (or "—")."""
    if not est or est.get("ci_low") is None:
        return "—"
    return f"{est['ci_low'] * 100:.1f}–{est['ci_high'] * 100:.1f}%"


@register.filter
def num(value, digits: int = 3):
    return "—" if value is None else f"{float(value):.{int(digits)}f}"
