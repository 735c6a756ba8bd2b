"""The judge's monthly audit by people: a sample of judged pairs goes to a Label Studio project as
pairwise tasks (the candidate's answer on a side drawn at random, and kept), people pick A, B or
tie, and their picks come back through labelling's webhook + pull. Judge-human agreement is then
computed month by month (`shadow.selectors.audit_agreement_by_month`).
"""
from __future__ import annotations

import random
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labelling.services.pairwise import pairwise_tasks_push
from releases.models import Release

from ..models import JUDGED, ShadowAudit, ShadowAuditItem, ShadowPair
from .context import conversation, histories


class AuditError(Exception):
    pass


def _month_bounds(month: str) -> tuple[date, date]:
    try:
        y, m = (int(x) for x in month.split("-"))
        start = date(y, m, 1)
    except (ValueError, TypeError):
        raise AuditError(f"--month: expected YYYY-MM, got {month!r}") from None
    end = date(y + (m == 12), m % 12 + 1, 1)
    return start, end


def previous_month(today: date | None = None) -> str:
    today = today or timezone.now().date()
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{y:04d}-{m:02d}"


@transaction.atomic
def audit_create(*, month: str | None = None, release: str | None = None, sample: int | None = None,
                 seed: int | None = None) -> ShadowAudit:
    """Sample judged pairs of `month` (default: last month) not audited before. The same seed draws
    the same pairs and the same sides."""
    month = month or previous_month()
    start, end = _month_bounds(month)
    rel = None
    if release:
        rel = Release.objects.filter(name=release).first()
        if rel is None:
            raise AuditError(f"--release: no release named {release!r}")
    n = settings.SHADOW_AUDIT_SAMPLE if sample is None else sample
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    qs = ShadowPair.objects.filter(outcome__in=JUDGED, day__gte=start, day__lt=end, audit_item__isnull=True)
    if rel:
        qs = qs.filter(release=rel)
    ids = sorted(qs.values_list("id", flat=True))
    rng = random.Random(seed)
    chosen = sorted(rng.sample(ids, min(n, len(ids))))
    audit = ShadowAudit.objects.create(month=month, release=rel, sample_size=n, seed=seed,
                                       project_title=settings.SHADOW_AUDIT_PROJECT_TITLE)
    ShadowAuditItem.objects.bulk_create([
        ShadowAuditItem(audit=audit, pair_id=pk, candidate_side=rng.choice("ab"), task_key=f"shadow-pair-{pk}")
        for pk in chosen])
    return audit


def audit_push(*, audit_id: int) -> dict:
    """Send the audit's pairs to Label Studio (each once, however often this runs)."""
    audit = ShadowAudit.objects.get(pk=audit_id)
    items = list(audit.items.select_related("pair__turn__source").order_by("id"))
    before = histories([i.pair.turn for i in items], settings.SHADOW_CONVERSATION_TURNS)
    tasks = []
    for item in items:
        pair, turn = item.pair, item.pair.turn
        cand, served = pair.candidate_answer, turn.response
        a, b = (cand, served) if item.candidate_side == "a" else (served, cand)
        tasks.append({"key": item.task_key, "query": turn.query, "answer_a": a, "answer_b": b,
                      "conversation": conversation(before[turn.pk]), "contexts": turn.contexts or [],
                      "redact": turn.source.redact_pii})
    try:
        result = pairwise_tasks_push(title=audit.project_title, tasks=tasks)
    except Exception as e:
        ShadowAudit.objects.filter(pk=audit_id).update(error=str(e)[:2000])
        raise
    ShadowAudit.objects.filter(pk=audit_id).update(pushed=len(result["task_ids"]), pushed_at=timezone.now(),
                                                   error="")
    return {"audit": audit.pk, "month": audit.month, "pairs": len(items), "pushed": result["pushed"],
            "already_present": result["already_present"], "project_id": result["project_id"]}
