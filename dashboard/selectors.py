"""Reads the pages need that no single app's selectors give: they reshape other apps' selectors
into chart series; nothing here touches another app's models."""
from __future__ import annotations

from production import selectors as production

# The implicit signals the overview charts, in the order people read them, with their labels.
SIGNALS = (("followed_up", "follow-up"), ("rephrased", "rephrase"), ("abandoned", "abandonment"),
           ("copied", "copy"), ("human_override", "override"))


def signal_series(*, by_model: bool) -> dict:
    """Daily rates as chart series: {"days", "series": [(signal, values)]} for all models together;
    by model: {"days", "models", "per_signal": {signal: [(model, values)]}}."""
    rows = production.signal_rates_daily(by_model=by_model)
    days = sorted({r["date"] for r in rows})
    index = {d: i for i, d in enumerate(days)}
    if not by_model:
        series = []
        for key, label in SIGNALS:
            values: list[float | None] = [None] * len(days)
            for r in rows:
                values[index[r["date"]]] = r[f"{key}_rate"]
            series.append((label, values))
        return {"days": days, "series": series}
    models = sorted({r["model"] or "(no model)" for r in rows})
    per_signal = {}
    for key, label in SIGNALS:
        lines = {m: [None] * len(days) for m in models}
        for r in rows:
            lines[r["model"] or "(no model)"][index[r["date"]]] = r[f"{key}_rate"]
        per_signal[label] = list(lines.items())
    return {"days": days, "models": models, "per_signal": per_signal}
