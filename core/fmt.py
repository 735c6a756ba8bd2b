"""How rates read in commands, reports and reasons: one place, so a gate reason, a shadow report and
the correlation report print the same number the same way."""
from __future__ import annotations


def pct(x: float | None, missing: str = "n/a") -> str:
    """0.1234 -> "12.3%"; None (no data) -> `missing`."""
    return missing if x is None else f"{100 * x:.1f}%"
