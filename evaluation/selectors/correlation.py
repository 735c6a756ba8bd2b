"""Does the offline score track production? Three tiers (docs/correlation.md, "The correlation report"):

1. discordant releases: offline clearly better than the previous release while production is
   clearly worse (intervals apart on both) — an alarm at once;
2. item level: for test items that came from production, how well the grade of the answer
   production served predicts that turn's failure flag (AUC, per week), and the grader's agreement
   with the human verdicts (Cohen's kappa);
3. rank correlation over the last K releases (Spearman, bootstrap interval), refused below
   CORRELATION_MIN_RELEASES releases.

Nothing here writes: alarms found are returned; evaluation.services.alarms stores and posts them.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import numpy as np
from django.conf import settings

from core import stats
from core.stats import change
from core.fmt import pct
from releases.models import Release
from testsets.models import TestSetVersion

from ..models import OfflineRun, OfflineScore
from .rates import FAILURE, _release_counts_many, common_mix, rates_from_counts, rollup_state, window_of
from .validity import signal_validity, signal_validity_rows


# --- offline scores per release ------------------------------------------------------------------

def offline_version(releases: list[Release], *, testset: str | None = None, version: int | None = None):
    """The test-set version the releases are compared on: the one given, else the one with a
    finished score for the most of them (the newest on a tie). Scores on different versions do not
    compare: each release is read on this one version only."""
    runs = OfflineRun.objects.filter(release__in=releases, status=OfflineRun.Status.DONE, score__isnull=False)
    if testset:
        runs = runs.filter(version__testset__name=testset)
    if version is not None:
        runs = runs.filter(version__number=version)
    per_version = Counter()
    for version_id, release_id in runs.values_list("version_id", "release_id").distinct():
        per_version[version_id] += 1
    if not per_version:
        return None
    return max(per_version, key=lambda v: (per_version[v], v))


def offline_scores(releases: list[Release], version_id: int | None) -> dict[int, OfflineRun]:
    """release id -> its latest finished run with a score on the version."""
    if version_id is None:
        return {}
    out = {}
    for run in (OfflineRun.objects.filter(release__in=releases, version_id=version_id, score__isnull=False,
                                          status=OfflineRun.Status.DONE).order_by("id")):
        out[run.release_id] = run
    return out


# --- item level ------------------------------------------------------------------------------------

def _week(d: date) -> date:
    return d - timedelta(days=d.weekday())


def served_item_scores() -> list[dict]:
    """The latest grade of each production-served answer (offline runs of mode served) with that
    turn's failure flag, the human verdict of its test item, and the turn's week."""
    rows = (OfflineScore.objects.filter(run__mode=OfflineRun.Mode.SERVED, run__status=OfflineRun.Status.DONE,
                                        score__isnull=False, turn__isnull=False, turn__signals__isnull=False)
            .order_by("run_id")
            .values_list("turn_id", "score", "verdict", "item__verdict", "turn__timestamp",
                         "turn__signals__failure_candidate"))
    latest = {}
    for turn_id, score, verdict, human, ts, failure in rows:
        latest[turn_id] = {"score": score, "verdict": verdict, "human": human, "failure": bool(failure),
                           "week": _week(ts.date()) if ts else None}
    return list(latest.values())


def _auc_of(points: list[dict], *, interval: bool) -> dict:
    n = len(points)
    if not n:
        return {"auc": None, "ci_low": None, "ci_high": None, "n": 0}
    # A higher grade should mean "less likely a failure": the failure is the positive class.
    score = np.array([-p["score"] for p in points], dtype=float)
    labels = np.array([p["failure"] for p in points], dtype=int)
    if interval:
        est = stats.guarded(n, 2, stats.auc_bootstrap_ci, score, labels)
        return {"auc": est.value if est else None, "ci_low": est.lo if est else None,
                "ci_high": est.hi if est else None, "n": n}
    value = stats.guarded(n, 2, stats.auc, score, labels)
    return {"auc": value, "ci_low": None, "ci_high": None, "n": n}


def _kappa(points: list[dict]) -> float | None:
    pairs = [(p["verdict"], p["human"]) for p in points if p["verdict"] and p["human"]]
    if not pairs:
        return None
    return stats.guarded(len(pairs), 2, stats.cohen_kappa, [a for a, _ in pairs], [b for _, b in pairs])


def item_level(points: list[dict] | None = None) -> dict:
    """{auc, ci_low, ci_high, n, kappa_vs_human} over every graded served answer."""
    points = served_item_scores() if points is None else points
    return {**_auc_of(points, interval=True), "kappa_vs_human": _kappa(points)}


def item_level_weekly(points: list[dict] | None = None) -> list[dict]:
    """Per week (Monday, UTC) of the turns: n, failures, AUC (None below CORRELATION_ITEM_MIN_PER_WEEK
    graded answers or without both outcomes), the trailing mean of the 4 weeks before (shown), and the
    change test the alarms read (core.stats.change): the week's AUC against the reference of the weeks
    before in standard errors, the drop sum, and the same against CORRELATION_AUC_FLOOR."""
    points = served_item_scores() if points is None else points
    by_week: dict[date, list[dict]] = defaultdict(list)
    for p in points:
        if p["week"] is not None:
            by_week[p["week"]].append(p)
    out, history, weeks = [], {}, []
    for week in sorted(by_week):
        pts = by_week[week]
        failures = sum(p["failure"] for p in pts)
        auc = _auc_of(pts, interval=False)["auc"] if len(pts) >= settings.CORRELATION_ITEM_MIN_PER_WEEK else None
        before = [history[w] for w in (week - timedelta(weeks=k) for k in range(1, 5)) if history.get(w) is not None]
        out.append({"week": week.isoformat(), "n": len(pts), "failures": failures,
                    "auc": auc, "trailing_mean": sum(before) / len(before) if len(before) >= 2 else None,
                    "trailing_weeks": len(before)})
        weeks.append(change.Week(auc, failures, len(pts) - failures))
        history[week] = auc
    tests = change.cusum_drop(weeks, k=settings.CORRELATION_CUSUM_K, h=settings.CORRELATION_CUSUM_H,
                              floor=settings.CORRELATION_AUC_FLOOR)
    for row, test in zip(out, tests):
        row.update(test)
    return out


def item_alarms(weekly: list[dict]) -> list[dict]:
    """Alarms from the change test, not from one week's estimate: with nothing changed they fire
    about once in 8 years of weekly checks or less (benchmarks/sim_alarm.py; README of benchmarks)."""
    out = []
    floor, h = settings.CORRELATION_AUC_FLOOR, settings.CORRELATION_CUSUM_H
    for w in weekly:
        if w["drop_alarm"]:
            out.append({"kind": "item_auc_drop", "release": None, "fingerprint": f"item_auc_drop:{w['week']}",
                        "detail": f"week of {w['week']}: item-level AUC {w['auc']:.3f} over {w['n']} served answers "
                                  f"against {w['reference_auc']:.3f} in the {w['reference_weeks']} weeks before; "
                                  f"the weeks' shortfall in standard errors added up to {w['cusum']:.1f} > {h} "
                                  f"(a sequential change test: about one false alarm in 8 years with nothing changed)",
                        "evidence": w})
        if w["floor_alarm"]:
            out.append({"kind": "item_auc_low", "release": None, "fingerprint": f"item_auc_low:{w['week']}",
                        "detail": f"week of {w['week']}: item-level AUC {w['auc']:.3f} over {w['n']} served answers; "
                                  f"the weeks' shortfall below {floor} in standard errors added up to "
                                  f"{w['cusum_floor']:.1f} > {h}: the offline grade barely predicts production failures",
                        "evidence": w})
    return out


# --- release level ---------------------------------------------------------------------------------

def discordant_pairs(rows: list[dict]) -> list[dict]:
    """Alarms for releases whose offline score is better than the previous release's while their
    production failure rate is worse, both with intervals apart (rows in serving order)."""
    out, prev = [], None
    for row in rows:
        if row["offline_score"] is None or row["production_failure_rate"] is None:
            continue
        if prev is not None and None not in (*row["offline_ci"], *prev["offline_ci"], *row["production_ci"],
                                             *prev["production_ci"]):
            offline_better = row["offline_ci"][0] > prev["offline_ci"][1]
            production_worse = row["production_ci"][0] > prev["production_ci"][1]
            if offline_better and production_worse:
                out.append({
                    "kind": "discordant_release", "release": row["name"],
                    "fingerprint": f"discordant_release:{row['name']}:after:{prev['name']}:v{row['version_id']}",
                    "detail": (f"{row['name']}: offline score {row['offline_score']:.3f} "
                               f"[{row['offline_ci'][0]:.3f}, {row['offline_ci'][1]:.3f}] is better than "
                               f"{prev['name']}'s {prev['offline_score']:.3f} [{prev['offline_ci'][0]:.3f}, "
                               f"{prev['offline_ci'][1]:.3f}], but its production failure rate "
                               f"{pct(row['production_failure_rate'])} [{pct(row['production_ci'][0])}, "
                               f"{pct(row['production_ci'][1])}] is worse than "
                               f"{pct(prev['production_failure_rate'])} [{pct(prev['production_ci'][0])}, "
                               f"{pct(prev['production_ci'][1])}]: the test set no longer ranks releases as "
                               f"production does"),
                    "evidence": {"release": {k: row[k] for k in REPORT_RELEASE_KEYS},
                                 "previous": {k: prev[k] for k in REPORT_RELEASE_KEYS}},
                })
        prev = row
    return out


REPORT_RELEASE_KEYS = ("name", "offline_score", "offline_ci", "production_failure_rate", "production_ci", "turns")


def rank_correlation(rows: list[dict]) -> dict:
    """Spearman's rho between the offline score and production quality (1 - failure rate): +1 when
    the offline score ranks releases exactly as production does. cannot_conclude below
    CORRELATION_MIN_RELEASES releases with both numbers (or when either is constant)."""
    both = [r for r in rows if r["offline_score"] is not None and r["production_failure_rate"] is not None]
    k = len(both)
    if k < settings.CORRELATION_MIN_RELEASES:
        return {"status": "cannot_conclude", "k": k}
    x = [r["offline_score"] for r in both]
    y = [-r["production_failure_rate"] for r in both]
    try:
        est = stats.spearman_bootstrap_ci(x, y)
    except stats.InsufficientData:
        return {"status": "cannot_conclude", "k": k}
    return {"spearman": est.value, "ci_low": est.lo, "ci_high": est.hi, "k": k}


def correlation_data(*, last: int | None = None, testset: str | None = None, version: int | None = None) -> dict:
    """Everything the correlation report and page show (the report's JSON is `report_json` of it)."""
    last = int(last or settings.CORRELATION_LAST_K)
    releases = list(Release.objects.all())
    counts = _release_counts_many(releases)
    windows = {r.pk: window_of(counts.get(r.pk, {})) for r in releases}
    serving = [r for r in releases if windows[r.pk][0] is not None]
    serving.sort(key=lambda r: (windows[r.pk][0], r.created_at, r.pk))
    chosen = serving[-last:] if last > 0 else []
    mix = common_mix([(counts.get(r.pk, {}),) + windows[r.pk] for r in chosen])
    rates = {r.pk: rates_from_counts(r, counts.get(r.pk, {}), *windows[r.pk], reference_mix=mix) for r in chosen}
    # The standardised rate when every release has one (they served a common mix of sources); else
    # all crude: one report never mixes the two.
    standardised = bool(mix) and all("rate" in (rates[r.pk]["standardised"] or {}).get(FAILURE, {}) for r in chosen)
    version_id = offline_version(chosen, testset=testset, version=version)
    offline = offline_scores(chosen, version_id)
    rows = []
    for r in chosen:
        rate = rates[r.pk]["standardised"][FAILURE] if standardised else rates[r.pk][FAILURE]
        run = offline.get(r.pk)
        rows.append({
            "name": r.name,
            "offline_score": run.score if run else None,
            "offline_ci": [run.ci_low, run.ci_high] if run else [None, None],
            "production_failure_rate": rate.get("rate"),
            "production_ci": [rate.get("ci_low"), rate.get("ci_high")],
            "turns": rates[r.pk]["detected"],
            "version_id": version_id, "run_id": run.pk if run else None,
            "window": [rates[r.pk]["start"], rates[r.pk]["end"]], "rates": rates[r.pk],
        })
    points = served_item_scores()
    weekly = item_level_weekly(points)
    alarms = discordant_pairs(rows) + item_alarms(weekly)
    validity = signal_validity()
    ver = TestSetVersion.objects.select_related("testset").filter(pk=version_id).first() if version_id else None
    return {
        "releases": rows,
        "rank_correlation": rank_correlation(rows),
        "discordant": [a["release"] for a in alarms if a["kind"] == "discordant_release"],
        "item_level": item_level(points),
        "item_level_weekly": weekly,
        "signal_validity": validity,
        "alarms": alarms,
        "standardised": standardised,
        "reference_mix": mix,
        "testset": ver.testset.name if ver else None,
        "version": ver.number if ver else None,
        "window_days": settings.CORRELATION_WINDOW_DAYS,
        "min_releases": settings.CORRELATION_MIN_RELEASES,
        "last": last,
        "counts_as_of": rollup_state()["refreshed_at"],
    }


def report_json(data: dict) -> dict:
    """The correlation report in the exact shape of issue #10."""
    return {
        "releases": [{k: r[k] for k in REPORT_RELEASE_KEYS} for r in data["releases"]],
        "rank_correlation": data["rank_correlation"],
        "discordant": data["discordant"],
        "item_level": data["item_level"],
        "signal_validity": signal_validity_rows(data["signal_validity"]),
        "alarms": [{"kind": a["kind"], **({"release": a["release"]} if a["release"] else {}),
                    "detail": a["detail"]} for a in data["alarms"]],
    }


def correlation_report(*, last: int | None = None, testset: str | None = None, version: int | None = None) -> dict:
    return report_json(correlation_data(last=last, testset=testset, version=version))
