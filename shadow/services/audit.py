"""The judge's monthly audit by people: a sample of judged pairs goes to a Label Studio project as
pairwise tasks (the candidate's answer on a side drawn at random, and kept), people pick A, B or
tie, and their picks come back through labelling's webhook + pull. Judge-human agreement is then
computed month by month (`audit_agreement_by_month`).
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import stats
from labelling.selectors import pairwise_picks
from labelling.services.pairwise import pairwise_tasks_push
from releases.models import Release

from ..models import JUDGED, Outcome, ShadowAudit, ShadowAuditItem, ShadowPair
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


def human_pick(picks: list[dict]) -> str | None:
    """One pick per task from its annotators: the most frequent; a shared top count is a tie."""
    if not picks:
        return None
    counts = Counter(p["pick"] for p in picks).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


_JUDGE_AS_LABEL = {Outcome.CANDIDATE: "a", Outcome.SERVED: "b", Outcome.TIE: "tie", Outcome.INCONSISTENT: "tie"}
_WINNER_AS_LABEL = {"candidate": "a", "served": "b", "tie": "tie"}


def audit_agreement_by_month(*, release: Release | str | None = None) -> list[dict]:
    """Judge vs people per audited month. Labels are from the candidate's side ("a" = candidate
    better, "b" = served better), whatever side people saw it on. Each row: the keys of
    `core.stats.pairwise_calibration` (agreement with and without ties, kappa, swap consistency,
    position and length preferences, with n and intervals) plus `month`, `audited`, `picked`."""
    items = ShadowAuditItem.objects.select_related("audit", "pair__turn").prefetch_related("pair__verdicts")
    if release is not None:
        rel = release if isinstance(release, Release) else Release.objects.filter(name=release).first()
        items = items.filter(pair__release=rel)
    items = list(items.order_by("audit__month", "id"))
    picks = pairwise_picks(keys=[i.task_key for i in items])
    by_month: dict[str, list] = {}
    for item in items:
        by_month.setdefault(item.audit.month, []).append(item)
    out = []
    for month, rows in sorted(by_month.items()):
        judge, swapped, human, len_a, len_b = [], [], [], [], []
        for item in rows:
            pick = human_pick(picks.get(item.task_key, []))
            if pick is None:
                continue
            # People saw the candidate on `candidate_side`: bring their pick to the candidate's side.
            if pick != "tie" and item.candidate_side == "b":
                pick = "a" if pick == "b" else "b"
            # The latest judge's verdict per order (a pair may have been judged again).
            verdicts = {v.order: v for v in sorted(item.pair.verdicts.all(), key=lambda v: v.id) if v.winner}
            first, second = verdicts.get("candidate_first"), verdicts.get("served_first")
            if first and second:
                judge.append(_WINNER_AS_LABEL[first.winner])
                swapped.append(_WINNER_AS_LABEL[second.winner])
            else:  # verdicts of another judge were replaced: fall back to the pair's outcome
                label = _JUDGE_AS_LABEL.get(item.pair.outcome)
                if label is None:
                    continue
                judge.append(label)
                swapped.append(label)
            human.append(pick)
            len_a.append(len(item.pair.candidate_answer))
            len_b.append(len(item.pair.turn.response))
        row = {"month": month, "audited": len(rows), "picked": len(human)}
        if human:
            row.update(stats.pairwise_calibration(judge, human, len_a, len_b, judge_swapped=swapped))
        out.append(row)
    return out
