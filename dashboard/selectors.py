"""Reads the pages need that no single app's selectors give: they combine other apps' selectors
and count labelling rows; nothing here writes."""
from __future__ import annotations

from collections import Counter

from django.db.models import Count, Q

from labelling.agreement import agreement_report
from labelling.models import Annotation, LabelStudioProject
from production import selectors as production
from taxonomy.selectors import failure_mode_tree, resolve_code

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


def waiting_failure_candidates():
    """Failure candidates not yet sent for labelling (a turn goes to Label Studio once, ever)."""
    return production.failure_candidates().filter(labelling_item__isnull=True)


def labelling_progress() -> list[dict]:
    live = Q(annotations__deleted=False, annotations__was_cancelled=False)
    projects = (LabelStudioProject.objects.filter(kind=LabelStudioProject.Kind.TURNS).order_by("title")
                .annotate(task_count=Count("tasks", distinct=True),
                          labelled=Count("annotations__item", filter=live, distinct=True),
                          annotation_count=Count("annotations", filter=live, distinct=True),
                          annotator_count=Count("annotations__annotator", filter=live, distinct=True)))
    out = []
    for p in projects:
        done = min(p.labelled, p.task_count) if p.task_count else p.labelled
        out.append({"title": p.title, "ls_project_id": p.ls_project_id, "tasks": p.task_count,
                    "labelled": p.labelled, "annotations": p.annotation_count, "annotators": p.annotator_count,
                    "share": done / p.task_count if p.task_count else None,
                    "verdict_alpha": agreement_report(project_id=p.pk)["verdict_alpha"]})
    return out


def failure_mode_pareto() -> list[dict]:
    """Labelled items per failure mode, most frequent first; merged codes count as their survivor.
    An item judged by several annotators counts once per mode."""
    survivors: dict[str, str] = {}
    pairs = set()
    for item_id, modes in (Annotation.objects.filter(deleted=False, was_cancelled=False)
                           .values_list("item_id", "failure_modes")):
        for code in modes or ():
            if code not in survivors:
                survivors[code] = resolve_code(code)
            pairs.add((item_id, survivors[code]))
    counts = Counter(code for _, code in pairs)
    names = {m["code"]: m["name"] for m in failure_mode_tree()}
    return [{"code": code, "name": names.get(code, ""), "items": n}
            for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
