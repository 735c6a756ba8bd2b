"""Reads: the real labelled failures a mode is seeded from, review outcomes, the per-mode report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from labelling import selectors as labelling
from labelling.models import Annotation, BatchItem
from labelling.vocabulary import FAILED_VERDICTS
from taxonomy.models import FailureMode
from testsets.selectors import promotion_hold_reason

from .models import GeneratedCase, GenerationRun


@dataclass(frozen=True)
class RealFailure:
    item_id: int
    query: str
    response: str
    reference_answer: str
    notes: str


def mode_codes(code: str) -> set[str]:
    """The mode, its descendants, and every mode merged into one of them: a label with any of
    these codes is a failure of this mode."""
    codes, frontier = {code}, [code]
    while frontier:
        found = set(FailureMode.objects.filter(Q(parent__code__in=frontier) | Q(merged_into__code__in=frontier))
                    .values_list("code", flat=True)) - codes
        codes |= found
        frontier = list(found)
    return codes


def _failure_annotations(code: str) -> list[Annotation]:
    return labelling.labelled_failures(codes=mode_codes(code), verdicts=FAILED_VERDICTS)


def real_failures(*, code: str, limit: int | None = None) -> list[RealFailure]:
    """Labelled failures of the mode, most recently judged first, one per item."""
    by_item: dict[int, list[Annotation]] = {}
    for a in _failure_annotations(code):
        by_item.setdefault(a.item_id, []).append(a)
    out = []
    for item_id, anns in by_item.items():
        turn = anns[0].item.turn
        out.append(RealFailure(
            item_id=item_id, query=turn.query, response=turn.response,
            reference_answer=next((a.reference_answer for a in anns if a.reference_answer.strip()), ""),
            notes=" / ".join(dict.fromkeys(a.notes.strip() for a in anns if a.notes.strip()))))
        if limit is not None and len(out) >= limit:
            break
    return out


def review_outcome(item: BatchItem | None, annotations: list[Annotation]) -> tuple[str, str]:
    """(status, reason) of a generated case from its review.

    The review project uses the labelling config. The reviewer judges the case's empty answer:
    a good case is marked incorrect/partially_correct with its reference answer (and the failure
    modes); `cannot_judge` with a note rejects the case. Approved means exactly what the normal
    promotion rules would promote, so the report and the test set never disagree.
    """
    if item is None:
        return GeneratedCase.Status.GENERATED, "not sent for review"
    j, reason = labelling.item_judgement(item, annotations)
    if j is not None:
        reason = promotion_hold_reason(j)
        if not reason:
            return GeneratedCase.Status.APPROVED, ""
        if j.cannot_judge:
            notes = [a.notes.strip() for a in annotations if a.verdict == j.verdict and a.notes.strip()]
            if j.resolution_reason:
                notes = [j.resolution_reason]
            return GeneratedCase.Status.REJECTED, "; ".join(notes) or "rejected by the reviewer (no note)"
    return GeneratedCase.Status.SENT_FOR_REVIEW, reason


def cases_review_outcomes(cases: list[GeneratedCase]) -> dict[int, tuple[str, str]]:
    """case id -> (status, reason) for cases that went to review (their turn exists)."""
    items = labelling.items_for_turns(turn_ids=[c.turn_id for c in cases if c.turn_id])
    anns = labelling.live_annotations_by_item(items=[i.pk for i in items.values()])
    return {c.pk: review_outcome(items.get(c.turn_id), anns.get(items[c.turn_id].pk, []) if c.turn_id in items
                                 else []) for c in cases if c.turn_id}


def _all_mode_codes() -> dict[str, set[str]]:
    """mode_codes for every mode, from one query."""
    children: dict[str, set[str]] = {}
    for code, parent, merged_into in FailureMode.objects.values_list("code", "parent__code", "merged_into__code"):
        children.setdefault(code, set())
        for up in (parent, merged_into):
            if up:
                children.setdefault(up, set()).add(code)
    out = {}
    for code in children:
        codes, frontier = {code}, [code]
        while frontier:
            found = {c for f in frontier for c in children.get(f, ())} - codes
            codes |= found
            frontier = list(found)
        out[code] = codes
    return out


def generation_report(*, code: str | None = None) -> list[dict]:
    """One row per failure mode (or the one asked for): real failures, generated, approved, rejected
    (and why), cost. A fixed number of queries however many modes, runs and cases there are."""
    modes = list(FailureMode.objects.order_by("code") if code is None else FailureMode.objects.filter(code=code))
    if not modes:
        return []
    codes_of = _all_mode_codes()
    failed_items = [(a.item_id, set(a.failure_modes or ()))
                    for a in labelling.labelled_failures(codes=None, verdicts=FAILED_VERDICTS)]
    wanted = [m.code for m in modes]
    runs = {r["failure_mode"]: r for r in GenerationRun.objects.filter(failure_mode__in=wanted).values("failure_mode")
            .annotate(runs=Count("id"), failed_runs=Count("id", filter=Q(status=GenerationRun.Status.FAILED)),
                      prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
                      cost_usd=Sum("cost_usd"))}
    cases = list(GeneratedCase.objects.filter(run__failure_mode__in=wanted).select_related("run").order_by("id"))
    live = cases_review_outcomes(cases)
    rows = []
    for mode in modes:
        statuses, rejections = Counter(), []
        mine = [c for c in cases if c.run.failure_mode == mode.code]
        for c in mine:
            status, reason = live.get(c.pk, (c.status, c.review_reason))
            if c.status == GeneratedCase.Status.DUPLICATE:
                status = c.status
            statuses[status] += 1
            if status == GeneratedCase.Status.REJECTED:
                rejections.append({"case": c.pk, "query": c.query, "reason": reason})
        r = runs.get(mode.code, {})
        codes = codes_of.get(mode.code, {mode.code})
        rows.append({
            "failure_mode": mode.code,
            "name": mode.name,
            "active": mode.active,
            "real_failures": len({item for item, item_codes in failed_items if codes & item_codes}),
            "runs": r.get("runs", 0),
            "failed_runs": r.get("failed_runs", 0),
            "generated": len(mine),
            "duplicates_dropped": statuses[GeneratedCase.Status.DUPLICATE],
            "in_review": statuses[GeneratedCase.Status.SENT_FOR_REVIEW],
            "approved": statuses[GeneratedCase.Status.APPROVED],
            "rejected": statuses[GeneratedCase.Status.REJECTED],
            "rejections": rejections,
            "prompt_tokens": r.get("prompt_tokens") or 0,
            "completion_tokens": r.get("completion_tokens") or 0,
            "cost_usd": float(r.get("cost_usd") or 0),
        })
    return rows


def run_list(*, code: str | None = None):
    runs = GenerationRun.objects.order_by("-id")
    return runs.filter(failure_mode=code) if code else runs
