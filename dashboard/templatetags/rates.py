"""Numbers and rates as the pages show them (the one filter library): a missing value is a dash,
never 0 (a missing key reaches a filter as "", Django's string_if_invalid)."""
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
    # A missing key renders as "" in a template (string_if_invalid): no number either.
    return "—" if value in (None, "") else f"{float(value):.{int(digits)}f}"


@register.filter
def interval(bounds, places=3):
    """"[0.512, 0.634]" from (low, high), or "—" when either bound is missing."""
    lo, hi = (bounds or (None, None))[:2]
    return "—" if lo in (None, "") or hi in (None, "") else f"[{num(lo, places)}, {num(hi, places)}]"


@register.filter
def pct_interval(bounds):
    lo, hi = (bounds or (None, None))[:2]
    return "—" if lo in (None, "") or hi in (None, "") else f"[{pct(lo)}, {pct(hi)}]"
