"""Reads: the shadow report (the gate and the dashboard call it), daily series, pairs, calibration.

Every interval of the report is a confidence sequence (shadow.decision, core.stats.sequential):
it may be read every day, and acted on at the first `better`, with at most a 5 % chance that it
ever excludes the truth over a sample that grows. `decision` is `better` / `worse` when the
decisive win rate's sequence (human-calibrated once the audit holds enough pairs) excludes 1/2 and,
for `better`, the length-controlled one does too; `no_difference` when it does not; and
`insufficient_data` below SHADOW_MIN_PAIRS pairs over SHADOW_MIN_DAYS days (the least evidence the
variance estimate and a week's cycle need, no longer a fixed horizon).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import Length

from core import stats
from labelling.selectors import pairwise_picks
from releases.models import Release
from releases.selectors import release_turns
from taxonomy.selectors import critical_modes

from . import decision

from .models import (JUDGED, SCORES, JudgeCalibration, JudgeRun, Outcome, ShadowAudit, ShadowAuditItem, ShadowPair,
                     ShadowRun)

REPORT_KEYS = ("release", "pairs", "win_rate", "ci_low", "ci_high", "decisive_win_rate", "tie_rate",
               "inconsistent_rate", "length_controlled_win_rate", "decision", "by_failure_mode")
MODE_KEYS = ("code", "pairs", "win_rate", "ci_low", "ci_high", "q_value")
HORIZON_NOTE = ("anytime-valid: the intervals are confidence sequences, safe to read every day and to act on at the "
                "first look that decides, from SHADOW_MIN_PAIRS pairs over SHADOW_MIN_DAYS days on")
_REPORT_DECISION = {"better": "better", "worse": "worse", "inconclusive": "no_difference",
                    "insufficient_data": "insufficient_data"}


def _release(release: Release | str) -> Release | None:
    return release if isinstance(release, Release) else Release.objects.filter(name=release).first()


def _est(estimate) -> dict:
    if estimate is None:
        return {"value": None, "ci_low": None, "ci_high": None}
    return {"value": estimate.value, "ci_low": estimate.lo, "ci_high": estimate.hi}


def _judged_by(end: datetime | None) -> Q:
    """Pairs whose verdict existed at `end` (a pair judged before judged_at was recorded counts by its day)."""
    return Q() if end is None else Q(judged_at__lt=end) | Q(judged_at__isnull=True)


def _iv(interval: dict | None) -> dict:
    return interval or {"value": None, "ci_low": None, "ci_high": None}


_PICK_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


def audited_scores(pair_ids: list[int], *, before: datetime | None = None) -> dict[int, float]:
    """People's verdict on each audited pair that has one, from the candidate's side (1 candidate
    better, 0 served better, 0.5 tie), whatever side they saw the candidate on. With `before`, only
    the picks made by then (a pick without a time counts, as a pair judged without one does)."""
    items = list(ShadowAuditItem.objects.filter(pair_id__in=pair_ids).values_list("pair_id", "task_key",
                                                                                  "candidate_side"))
    if not items:
        return {}
    picks = pairwise_picks(keys=[k for _, k, _ in items])
    out = {}
    for pair_id, key, side in items:
        pick = human_pick([p for p in picks.get(key, [])
                           if before is None or p["updated_at"] is None or p["updated_at"] < before])
        if pick is None:
            continue
        if pick != "tie" and side == "b":
            pick = "a" if pick == "b" else "b"
        out[pair_id] = _PICK_SCORE[pick]
    return out


def _audit(rows: list[tuple], before: datetime | None = None) -> dict | None:
    """The audited pairs among `rows` with the judge's and the people's verdicts (picked by `before`),
    for the human-calibrated win rate."""
    human = audited_scores([r[7] for r in rows], before=before) if rows else {}
    if not human:
        return None
    picked = [r for r in rows if r[7] in human]
    return {"judge": np.array([SCORES[r[0]] for r in picked], dtype=float),
            "human": np.array([human[r[7]] for r in picked], dtype=float),
            "clusters": np.array([r[1] for r in picked])}


def last_judged_day(release: Release, *, as_of: date | None = None) -> date | None:
    qs = ShadowPair.objects.filter(release=release, outcome__in=JUDGED)
    if as_of is not None:
        qs = qs.filter(_judged_by(_end_of(as_of)), day__lte=as_of)
    return qs.aggregate(d=Max("day"))["d"]


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """The pairs a question about a release reads: judged pairs whose day is in since..until (the
    `days` days ending on the last day with a judged pair), and with `as_of`, only those judged by
    the end of that day. The report, the page and the gate all take their pairs from here."""
    release: Release
    days: int
    since: date | None
    until: date | None
    as_of: date | None = None

    def judged(self) -> QuerySet[ShadowPair]:
        if self.until is None:
            return ShadowPair.objects.none()
        return ShadowPair.objects.filter(
            _judged_by(_end_of(self.as_of) if self.as_of else None), release=self.release, outcome__in=JUDGED,
            day__gte=self.since, day__lte=self.until)


def shadow_window(release: Release | str, days: int | None = None, *, until: date | None = None,
                  as_of: date | None = None) -> Window:
    """The window of `days` days (default SHADOW_REPORT_DAYS, which is also the gate policy's default
    shadow_window_days) ending `until` (default: the last day with a judged pair, as of `as_of`)."""
    rel = _release(release)
    days = days or settings.SHADOW_REPORT_DAYS
    if as_of is not None and until is not None:
        until = min(until, as_of)
    until = until or last_judged_day(rel, as_of=as_of)
    return Window(rel, days, until - timedelta(days=days - 1) if until else None, until, as_of)


def _rows(window: Window) -> list[tuple]:
    return list(window.judged()
                .annotate(cand_len=Length("candidate_answer"), served_len=Length("turn__response"))
                .order_by("id")
                .values_list("outcome", "session_id", "day", "cand_len", "served_len", "candidate_failure_modes",
                             "served_failure_modes", "id"))


def shadow_report(release: Release | str, days: int | None = None, *, until: date | None = None,
                  as_of: date | None = None) -> dict:
    """The release's shadow report over the window `shadow_window(release, days, until=, as_of=)`.
    The keys of `shadow_report --json`, plus the numbers behind them (counts, every interval, the
    horizon, p-value, per-mode flag rates).
    """
    rel = _release(release)
    if rel is None:
        raise ValueError(f"no release named {release!r}")
    window = shadow_window(rel, days, until=until, as_of=as_of)
    days, since, until = window.days, window.since, window.until
    min_pairs, min_days = settings.SHADOW_MIN_PAIRS, settings.SHADOW_MIN_DAYS
    rows = _rows(window)
    n = len(rows)
    scores = np.array([SCORES[r[0]] for r in rows], dtype=float)
    clusters = np.array([r[1] for r in rows])
    outcomes = [r[0] for r in rows]
    counts = {o: outcomes.count(o) for o in JUDGED}
    days_with_pairs = len({r[2] for r in rows})
    len_diff = np.array([(r[3] or 0) - (r[4] or 0) for r in rows], dtype=float)
    policy = settings.GATE_POLICY
    ev = decision.pairs_evidence(scores, clusters, len_diff, audit=_audit(rows, _end_of(as_of) if as_of else None),
                                 source=policy.get("shadow_decides_on", "auto"),
                                 min_audited=policy.get("min_audited_pairs", 100))
    win = ev["win_rate_ties_half"]
    ties = stats.wilson(counts[Outcome.TIE], n) if n else None
    inconsistent = stats.wilson(counts[Outcome.INCONSISTENT], n) if n else None
    p_value = stats.guarded(n, 1, stats.win_rate_pvalue, scores, clusters)
    enough = n >= min_pairs and days_with_pairs >= min_days
    if not enough or win is None:
        decision_ = "insufficient_data"
        why = (f"{n} judged pairs over {days_with_pairs} days; the decision needs at least {min_pairs} pairs over "
               f"at least {min_days} days (SHADOW_MIN_PAIRS, SHADOW_MIN_DAYS)")
    else:
        decision_, why = _REPORT_DECISION[ev["verdict"]], ev["reason"]
    decisive, lc = ev["judge"] or {}, ev["length_controlled"] or {}
    report = {
        "release": rel.name,
        "pairs": n,
        "win_rate": win["value"] if win else None,
        "ci_low": win["ci_low"] if win else None,
        "ci_high": win["ci_high"] if win else None,
        "decisive_win_rate": decisive.get("value"),
        "tie_rate": ties.value if ties else None,
        "inconsistent_rate": inconsistent.value if inconsistent else None,
        "length_controlled_win_rate": lc.get("value"),
        "decision": decision_,
        "by_failure_mode": _by_mode(rows, scores, clusters),
        # --- what the numbers above rest on (not in the command's --json) -----------------------
        "decision_reason": why,
        "horizon": HORIZON_NOTE,
        "days": days,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "as_of": as_of.isoformat() if as_of else None,
        "days_with_pairs": days_with_pairs,
        "min_pairs": min_pairs,
        "min_days": min_days,
        "conversations": int(len(set(clusters.tolist()))) if n else 0,
        "candidate_wins": counts[Outcome.CANDIDATE],
        "served_wins": counts[Outcome.SERVED],
        "ties": counts[Outcome.TIE],
        "inconsistent": counts[Outcome.INCONSISTENT],
        "p_value": p_value,
        # The evidence the gate decides on (shadow.decision.pairs_evidence): the decisive,
        # length-controlled and human-calibrated intervals, the judge's bias on the audit.
        "evidence": ev,
        "intervals": {"win_rate": _iv(win), "decisive_win_rate": _iv(ev["judge"]), "tie_rate": _est(ties),
                      "inconsistent_rate": _est(inconsistent),
                      "length_controlled_win_rate": _iv(ev["length_controlled"]),
                      "calibrated_decisive_win_rate": _iv(ev["calibrated"])},
        "length_note": ev["length_note"],
        "interval_method": decision.METHOD,
        **_unjudged(rel, since, until, as_of),
    }
    return report


def _unjudged(rel: Release, since: date | None, until: date | None, as_of: date | None = None) -> dict:
    qs = ShadowPair.objects.filter(release=rel)
    if since:
        qs = qs.filter(day__gte=since, day__lte=until)
    if as_of:  # as it stood then: pairs made by that day (a verdict given later is today's state)
        qs = qs.filter(created_at__lt=_end_of(as_of))
    agg = qs.aggregate(unjudged=Count("id", filter=Q(outcome=Outcome.UNJUDGED)),
                       pending=Count("id", filter=Q(outcome="", error="")),
                       candidate_errors=Count("id", filter=~Q(error="")),
                       diverged=Count("id", filter=Q(outcome=Outcome.DIVERGED)))
    agg["unjudged_reasons"] = unjudged_reasons(qs)
    agg.update(candidate_input(rel, qs.filter(outcome__in=JUDGED)))
    return agg


def candidate_input(rel: Release, judged: QuerySet[ShadowPair]) -> dict:
    """What the candidates of the judged pairs were sent: `input` is "raw" (what production saw),
    "redacted" (PII replaced while the served model saw the raw text), "mixed", or None (no pair
    says); `input_note` is the sentence the report and the gate show when it is not raw."""
    counts = dict(judged.exclude(candidate_input="").values_list("candidate_input").annotate(n=Count("id")))
    redacted, total = counts.get("redacted", 0), sum(counts.values())
    kind = None if not total else "redacted" if redacted == total else "raw" if not redacted else "mixed"
    note = ""
    if redacted:
        note = (f"the comparison is on redacted input: on {redacted} of {total} judged pairs the candidate got "
                f"production text with personal data replaced while the served model saw it raw (release "
                f"{rel.name}: data boundary {rel.data_boundary}; release_add --data-boundary same lets replay "
                f"send the served model's input)")
    return {"input": kind, "input_counts": counts, "input_note": note}


_CAP_SETTING = re.compile(r"\((JUDGE_\w+_MAX_CHARS)\)")


def unjudged_reasons(qs: QuerySet[ShadowPair]) -> dict[str, int]:
    """Unjudged pairs counted by kind of reason (the pair keeps its full reason)."""
    out: dict[str, int] = {}
    for reason in qs.filter(outcome=Outcome.UNJUDGED).values_list("outcome_reason", flat=True).iterator():
        cap = _CAP_SETTING.search(reason or "")
        if cap and reason.startswith("not judged:"):
            kind = f"a field over the judge's cap ({cap.group(1)})"
        elif "malformed judge output" in (reason or ""):
            kind = "malformed judge output"
        else:
            kind = (reason or "no reason recorded").split(":")[0][:80]
        out[kind] = out.get(kind, 0) + 1
    return out


def _by_mode(rows: list[tuple], scores: np.ndarray, clusters: np.ndarray) -> list[dict]:
    """One row per failure mode the judge flagged on either answer: the candidate's win rate on the
    pairs where it came up, Benjamini-Hochberg q-values across the modes, and how often it was
    flagged on each side (the gate compares those for critical modes)."""
    codes: dict[str, list[int]] = {}
    cand_flag: dict[str, int] = {}
    served_flag: dict[str, int] = {}
    for i, r in enumerate(rows):
        cand, served = set(r[5] or ()), set(r[6] or ())
        for code in cand | served:
            codes.setdefault(code, []).append(i)
        for code in cand:
            cand_flag[code] = cand_flag.get(code, 0) + 1
        for code in served:
            served_flag[code] = served_flag.get(code, 0) + 1
    out, pvalues = [], []
    n = len(rows)
    for code, idx in sorted(codes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        s, c = scores[idx], clusters[idx]
        est = stats.guarded(len(idx), 1, stats.win_rate, s, c)
        pvalues.append(stats.guarded(len(idx), 1, stats.win_rate_pvalue, s, c))
        cr, sr = stats.wilson(cand_flag.get(code, 0), n), stats.wilson(served_flag.get(code, 0), n)
        out.append({"code": code, "pairs": len(idx), "win_rate": est.value if est else None,
                    "ci_low": est.lo if est else None, "ci_high": est.hi if est else None, "q_value": None,
                    "p_value": pvalues[-1],
                    "candidate_flagged": cand_flag.get(code, 0), "served_flagged": served_flag.get(code, 0),
                    "candidate_rate": _est(cr), "served_rate": _est(sr)})
    if out:
        q = stats.benjamini_hochberg([np.nan if p is None else p for p in pvalues])
        for row, value in zip(out, q):
            row["q_value"] = None if np.isnan(value) else float(value)
    return out


def _judged_in(rel: Release, since: date | None, until: date | None,
               as_of: date | None = None) -> QuerySet[ShadowPair]:
    qs = ShadowPair.objects.filter(_judged_by(_end_of(as_of) if as_of else None), release=rel, outcome__in=JUDGED)
    if since is not None:
        qs = qs.filter(day__gte=since)
    if until is not None:
        qs = qs.filter(day__lte=until)
    return qs


def critical_mode_counts(release: Release | str, *, since: date | None = None, until: date | None = None,
                         as_of: date | None = None) -> dict:
    """For each critical failure mode of the taxonomy (with its subtree and merged codes): among the
    release's judged pairs from `since` to `until`, on how many the judge flagged it on the
    candidate's answer and on the served answer (the release gate compares the two rates).
    `{"pairs": N, "modes": [{code, name, codes, candidate_flagged, served_flagged, candidate_only,
    served_only}]}` (the last two: flagged on that answer of the pair and not on the other)."""
    rel = _release(release)
    modes = critical_modes()
    rows = list(_judged_in(rel, since, until, as_of).values_list("candidate_failure_modes", "served_failure_modes"))
    out = []
    for mode in modes:
        codes = set(mode["codes"])
        flags = [(bool(codes & set(cand or ())), bool(codes & set(served or ()))) for cand, served in rows]
        out.append({"code": mode["code"], "name": mode["name"], "codes": mode["codes"],
                    "candidate_flagged": sum(c for c, _ in flags), "served_flagged": sum(s for _, s in flags),
                    # the discordant pairs McNemar's test reads: flagged on one answer of the pair only
                    "candidate_only": sum(c and not s for c, s in flags),
                    "served_only": sum(s and not c for c, s in flags)})
    return {"pairs": len(rows), "modes": out}


def pairs_served_by(release: Release | str, baseline: Release, *, since: date | None = None,
                    until: date | None = None, as_of: date | None = None) -> dict:
    """How many of the release's judged pairs in the window set it against an answer that
    `baseline` served: a shadow win rate says "better than what was served", which is "better than
    the baseline" only when the baseline served those turns. `{"pairs": N, "served_by_baseline": K}`."""
    qs = _judged_in(_release(release), since, until, as_of)
    return {"pairs": qs.count(),
            "served_by_baseline": qs.filter(turn_id__in=release_turns(baseline).values("id")).count()}


def pair_costs(release: Release | str, *, since: date | None = None, until: date | None = None,
               as_of: date | None = None) -> list[tuple]:
    """Latency and cost of both answers of the release's judged pairs in the window (the report's
    pairs): (session id, candidate latency ms, served latency ms, candidate cost, served cost), None
    where not recorded. The served answer's cost is the turn's `metadata.cost_usd` when the log
    carries it; the candidate's is what replay paid (or the mirrored answer's)."""
    # The whole metadata, read here: KT() across the relation reads NULL on SQLite.
    rows = (_judged_in(_release(release), since, until, as_of).order_by("id")
            .values_list("session_id", "latency_ms", "turn__latency_ms", "cost_usd", "turn__metadata"))
    return [(sid, cl, sl, None if cc is None else float(cc), _number((meta or {}).get("cost_usd")))
            for sid, cl, sl, cc, meta in rows]


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def report_for_json(report: dict) -> dict:
    """Exactly the keys `shadow_report --json` promises."""
    out = {k: report[k] for k in REPORT_KEYS}
    out["by_failure_mode"] = [{k: row[k] for k in MODE_KEYS} for row in report["by_failure_mode"]]
    return out


def shadow_daily(release: Release | str, days: int = 30, *, until: date | None = None) -> list[dict]:
    """Per day: judged pairs, win rate (ties as half) and its interval, tie and inconsistency counts
    (the chart's band). Days without judged pairs are listed with n = 0."""
    rel = _release(release)
    until = until or (last_judged_day(rel) if rel else None)
    if rel is None or until is None:
        return []
    since = until - timedelta(days=days - 1)
    by_day: dict[date, list[tuple]] = {}
    for r in _rows(Window(rel, days, since, until)):
        by_day.setdefault(r[2], []).append(r)
    out = []
    for k in range(days):
        d = since + timedelta(days=k)
        rows = by_day.get(d, [])
        s = np.array([SCORES[r[0]] for r in rows], dtype=float)
        est = stats.guarded(len(rows), 1, stats.win_rate, s, np.array([r[1] for r in rows]))
        out.append({"day": d.isoformat(), "pairs": len(rows), "win_rate": est.value if est else None,
                    "ci_low": est.lo if est else None, "ci_high": est.hi if est else None,
                    "ties": sum(r[0] == Outcome.TIE for r in rows),
                    "inconsistent": sum(r[0] == Outcome.INCONSISTENT for r in rows)})
    return out


def shadow_releases() -> list[dict]:
    """Every release with shadow pairs or marked for shadowing, with its pair counts."""
    rows = (Release.objects.annotate(pairs=Count("shadow_pairs"),
                                     judged=Count("shadow_pairs", filter=Q(shadow_pairs__outcome__in=JUDGED)))
            .filter(Q(pairs__gt=0) | Q(shadow_enabled=True)).order_by("name"))
    return [{"name": r.name, "model": r.model, "shadow_enabled": r.shadow_enabled, "pairs": r.pairs,
             "judged": r.judged} for r in rows]


def pair_list(release: Release | str, *, outcome: str | None = None) -> QuerySet[ShadowPair]:
    rel = _release(release)
    qs = ShadowPair.objects.filter(release=rel).select_related("turn", "turn__source", "release")
    if outcome:
        qs = qs.filter(outcome=outcome)
    return qs.order_by("-day", "id").prefetch_related("verdicts")


def pair_get(pk: int) -> ShadowPair | None:
    return (ShadowPair.objects.select_related("turn", "turn__source", "turn__session", "release")
            .prefetch_related("verdicts").filter(pk=pk).first())


def pair_conversation(pair: ShadowPair) -> list[dict]:
    """The conversation before the pair's turn, as the judge saw it."""
    from django.conf import settings as conf

    from .services.context import conversation, histories

    return conversation(histories([pair.turn], conf.SHADOW_CONVERSATION_TURNS)[pair.turn_id])


def run_list(release: Release | str | None = None) -> QuerySet[ShadowRun]:
    qs = ShadowRun.objects.select_related("release")
    if release is not None:
        qs = qs.filter(release=_release(release))
    return qs.order_by("-id")


def judge_run_list() -> QuerySet[JudgeRun]:
    return JudgeRun.objects.select_related("release").order_by("-id")


def calibration_list() -> QuerySet[JudgeCalibration]:
    return JudgeCalibration.objects.order_by("-id")


def audit_list() -> QuerySet[ShadowAudit]:
    return ShadowAudit.objects.select_related("release").order_by("-id")


# --- the judge against people ---------------------------------------------------------------------

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
