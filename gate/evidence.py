"""The four kinds of evidence the gate weighs, each read through the owning app's selectors and
judged on its own: a verdict (pass / worse / inconclusive / missing / stale) and one reason that
names the number and the threshold it was compared with.

- offline: candidate minus baseline on one frozen test-set version, paired by item;
- shadow: the candidate's win rate against the served answers (shadow.selectors.shadow_report);
- ab: the turns the candidate served (a canary) against the baseline's over the same days;
- critical_modes: per critical failure mode, its rate among the candidate's judged answers
  against the served answers' (a regression blocks, whatever else improved).

Blocking and shipping use different intervals on purpose. "Every rate is non-inferior" is an
intersection-union test: each rate at 95 % gives a 95 % statement about all of them together.
"Some rate is worse" is a union: testing nine rates at 95 % each would block a harmless canary
about a third of the time, so the block test uses Bonferroni intervals (95 % over all rates).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from core import stats
from core.fmt import pct
from evaluation import selectors as evaluation
from releases.models import Release
from releases.selectors import release_serving_span, release_turn_filter, release_turns
from shadow import selectors as shadow
from shadow.decision import BETTER, NON_INFERIOR, decide
from shadow.decision import WORSE as DECISION_WORSE

from .policy import GateUsageError, Policy

PASS, WORSE, INCONCLUSIVE, MISSING, STALE = "pass", "worse", "inconclusive", "missing", "stale"
FAILURE = "failure_candidate"


def pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} pp"


def pts(x: float) -> str:
    return f"{100 * x:.1f} pp"


def num(x: float | None, sign: bool = False) -> str:
    return "n/a" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


# --- offline -------------------------------------------------------------------------------------

def _run(run) -> dict:
    return {"run": run.pk, "mode": run.mode, "score": run.score, "ci_low": run.ci_low, "ci_high": run.ci_high,
            "items": run.items, "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def end_of(as_of: date | None) -> datetime | None:
    """The first instant after the as-of day (UTC): evidence is what existed before it."""
    return None if as_of is None else datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=timezone.utc)


def _pick_runs(candidate: Release, baseline: Release, testset: str, version: int, as_of: date | None = None):
    """The newest candidate run on the version that has a baseline run scored the same way."""
    end = end_of(as_of)
    cands = evaluation.offline_runs_on(release=candidate.name, testset=testset, version=version, finished_before=end)
    bases = evaluation.offline_runs_on(release=baseline.name, testset=testset, version=version, finished_before=end)
    for c in cands:
        for b in bases:
            if evaluation.scoring_of(c) == evaluation.scoring_of(b):
                return c, b, bases
    return (cands[0] if cands else None), None, bases


def offline_evidence(candidate: Release, baseline: Release, policy: Policy, as_of: date | None = None) -> dict:
    margin = policy.offline_margin
    testset = policy.testset
    end = end_of(as_of)
    if testset:
        info = evaluation.testset_latest_frozen(testset=testset)
        if info is None:
            raise GateUsageError(f"testset: no test set named {testset!r}")
        if info["latest_frozen"] is None:
            raise GateUsageError(f"testset: {testset} has no frozen version; freeze one (freeze_testset {testset}) "
                                 "and score both releases on it")
    out = {"verdict": MISSING, "testset": testset, "version": None, "latest_frozen_version": None, "stale": None,
           "scoring": None, "candidate": None, "baseline": None, "difference": None, "margin": margin}
    latest_run = evaluation.latest_offline_run(release=candidate.name, testset=testset, finished_before=end)
    if latest_run is None:
        where = f" on {testset}" if testset else ""
        out["reason"] = (f"offline: no finished offline score for {candidate.name}{where} "
                         f"(offline_run --release {candidate.name} --testset T --version N)")
        return out
    testset = latest_run.version.testset.name
    version = latest_run.version.number
    latest = evaluation.testset_latest_frozen(testset=testset, frozen_before=end)["latest_frozen"]
    cand_run, base_run, base_runs = _pick_runs(candidate, baseline, testset, version, as_of)
    stale = latest is not None and version < latest
    out.update(testset=testset, version=version, latest_frozen_version=latest, stale=stale,
               scoring=evaluation.scoring_of(cand_run), candidate=_run(cand_run))
    on = f"{testset} v{version}"
    if base_run is None:
        if base_runs:
            out["verdict"] = INCONCLUSIVE
            out["reason"] = (f"offline: {baseline.name}'s scores on {on} were made another way "
                             f"({evaluation.scoring_of(base_runs[0])}) than {candidate.name}'s "
                             f"({evaluation.scoring_of(cand_run)}); they do not compare")
        else:
            out["reason"] = (f"offline: no finished offline score for the baseline {baseline.name} on {on} "
                             f"(offline_run --release {baseline.name} --testset {testset} --version {version})")
        return out
    out["baseline"] = _run(base_run)
    diff = evaluation.offline_difference(cand_run, base_run)
    out["difference"] = diff
    d, lo, hi = diff["value"], diff["ci_low"], diff["ci_high"]
    numbers = (f"{candidate.name} {num(cand_run.score)} vs {baseline.name} {num(base_run.score)} on {on}, "
               f"{diff['n']} items paired: difference {num(d, True)} (95% CI {num(lo, True)} to {num(hi, True)})")
    if stale and not policy.allow_stale_version:
        out["verdict"] = STALE
        out["reason"] = (f"offline: stale — scored on {on} but the latest frozen version is v{latest} "
                         f"(allow_stale_version: false); score both releases on v{latest}. ({numbers})")
        return out
    note = f" [stale: v{version} < v{latest}, allowed by allow_stale_version]" if stale else ""
    if d is None or lo is None:
        out["verdict"] = INCONCLUSIVE
        out["reason"] = f"offline: too few items scored by both releases on {on} to compare ({diff['n']}){note}"
    elif hi < -margin:
        out["verdict"] = WORSE
        out["reason"] = (f"offline: regression — {numbers}; the whole interval is below -{margin:.3f} "
                         f"(offline_margin){note}")
    elif lo >= -margin:
        out["verdict"] = PASS
        out["reason"] = f"offline: not worse beyond the margin — {numbers}; lower bound {num(lo, True)} >= " \
                        f"-{margin:.3f} (offline_margin){note}"
    else:
        out["verdict"] = INCONCLUSIVE
        out["reason"] = (f"offline: {numbers}; the lower bound {num(lo, True)} is below -{margin:.3f} "
                         f"(offline_margin) and the interval reaches above it: not shown worse, not shown as good"
                         f"{note}")
    return out


# --- shadow --------------------------------------------------------------------------------------

def shadow_evidence(candidate: Release, baseline: Release, policy: Policy, as_of: date | None = None) -> dict:
    report = shadow.shadow_report(candidate, policy.shadow_window_days, as_of=as_of)
    n, days = report["pairs"], report["days_with_pairs"]
    since, until = report["since"], report["until"]
    served = (shadow.pairs_served_by(candidate, baseline, since=_date(since), until=_date(until), as_of=as_of) if n
              else {"pairs": 0, "served_by_baseline": 0})
    share = served["served_by_baseline"] / n if n else None
    margin = policy.non_inferiority_margin
    # The report's intervals, judged under this policy: the same numbers the report shows.
    ev = report["evidence"]
    verdict = decide(ev, margin=margin, source=policy.shadow_decides_on, min_audited=policy.min_audited_pairs)
    iv = verdict["interval"] or {}
    out = {"verdict": MISSING, "accepted": policy.accept in ("shadow", "either", "both"),
           "report_decision": report["decision"], "pairs": n, "days_with_pairs": days, "since": since, "until": until,
           "win_rate": report["win_rate"], "ci_low": report["ci_low"], "ci_high": report["ci_high"],
           "interval_method": report["interval_method"],
           "decisive_win_rate": report["decisive_win_rate"], "tie_rate": report["tie_rate"],
           "inconsistent_rate": report["inconsistent_rate"],
           "length_controlled_win_rate": report["length_controlled_win_rate"],
           # what decides: the decisive win rate (judge-only or human-calibrated), its sequence
           "decides_on": verdict["source"], "decision_interval": verdict["interval"],
           "judge_decisive": ev["judge"], "calibrated_decisive": ev["calibrated"],
           "length_controlled": ev["length_controlled"], "length_note": ev["length_note"],
           "judge_bias": ev["judge_bias"], "audited_pairs": ev["audited"], "decisive_pairs": ev["decisive_pairs"],
           "served_by_baseline": served["served_by_baseline"], "baseline_share": share,
           "margin": margin, "min_pairs": policy.min_shadow_pairs, "min_days": policy.min_shadow_days,
           "window_days": policy.shadow_window_days, "max_inconsistent_rate": policy.max_inconsistent_rate,
           "min_baseline_share": policy.min_baseline_share, "as_of": report.get("as_of"),
           "input": report.get("input"), "input_note": report.get("input_note", "")}
    if not n:
        out["reason"] = (f"shadow: no judged pairs for {candidate.name} in the last {policy.shadow_window_days} days "
                         f"of shadowing (shadow_run / mirror lines, then shadow_judge)")
        return out
    rate = (f"decisive win rate {num(iv.get('value'))} (95% CS {num(iv.get('ci_low'))} to {num(iv.get('ci_high'))}) "
            f"over {n} judged pairs, {days} days")
    out["verdict"] = INCONCLUSIVE
    if n < policy.min_shadow_pairs or days < policy.min_shadow_days:
        out["reason"] = (f"shadow: {n} judged pairs over {days} days, below the least evidence read: "
                         f"{policy.min_shadow_pairs} pairs (min_shadow_pairs) over {policy.min_shadow_days} days "
                         f"(min_shadow_days); {rate}")
    elif share < policy.min_baseline_share:
        out["reason"] = (f"shadow: only {pct(share)} of the pairs set {candidate.name} against answers "
                         f"{baseline.name} served, below {pct(policy.min_baseline_share)} (min_baseline_share): "
                         f"the win rate compares it with another release")
    elif report["inconsistent_rate"] is not None and report["inconsistent_rate"] > policy.max_inconsistent_rate:
        out["reason"] = (f"shadow: the judge contradicted itself when the answers were swapped on "
                         f"{pct(report['inconsistent_rate'])} of the pairs, above {pct(policy.max_inconsistent_rate)} "
                         f"(max_inconsistent_rate): its verdicts follow the answers' position, not their quality")
    else:
        v = verdict["verdict"]
        out["verdict"] = {BETTER: PASS, NON_INFERIOR: PASS, DECISION_WORSE: WORSE}.get(v, INCONCLUSIVE)
        out["reason"] = f"shadow: {verdict['reason']}"
    return out


def _date(value):
    return date.fromisoformat(value) if value else None


# --- critical failure modes ------------------------------------------------------------------------

CRITICAL_ALPHA = 0.05


def critical_evidence(candidate: Release, shadow_ev: dict) -> list[dict]:
    """Per critical mode: flagged among the candidate's judged answers vs the served answers of the
    same pairs (the shadow window). The two answers of a pair are judged together, so the test is
    paired: McNemar's exact test on the pairs flagged on one answer only (one-sided, "the candidate
    is flagged more often"), Holm-adjusted across the critical modes so that testing several does
    not block a harmless candidate more than 5 % of the time. A clear rise blocks at any sample
    size: hallucination or unsafe answers are not waited on."""
    since, until = _date(shadow_ev["since"]), _date(shadow_ev["until"])
    # No judged pair at all: the window is open-ended and holds none either.
    counts = shadow.critical_mode_counts(candidate, since=since, until=until, as_of=_date(shadow_ev.get("as_of")))
    n = counts["pairs"]
    pvalues = [stats.mcnemar_exact_p(m["candidate_only"], m["served_only"]) for m in counts["modes"]]
    adjusted = stats.holm(pvalues) if pvalues else []
    out = []
    for m, p, q in zip(counts["modes"], pvalues, adjusted):
        row = {"code": m["code"], "name": m["name"], "codes": m["codes"], "pairs": n,
               "candidate_only": m["candidate_only"], "served_only": m["served_only"], "p_value": p,
               "holm_p_value": float(q), "modes_tested": len(pvalues)}
        for side, k in (("candidate", m["candidate_flagged"]), ("baseline", m["served_flagged"])):
            est = stats.guarded(n, 1, stats.wilson, k, n)
            row[side] = {"flagged": k, "rate": est.value if est else None, "ci_low": est.lo if est else None,
                         "ci_high": est.hi if est else None}
        c, b = row["candidate"], row["baseline"]
        numbers = (f"{m['code']} flagged on {c['flagged']} of {n} judged candidate answers, {pct(c['rate'])} "
                   f"(95% CI {pct(c['ci_low'])} to {pct(c['ci_high'])}), vs {b['flagged']}, {pct(b['rate'])} "
                   f"(95% CI {pct(b['ci_low'])} to {pct(b['ci_high'])}) on the served answers; on the candidate "
                   f"only in {m['candidate_only']} pairs, on the served answer only in {m['served_only']}: "
                   f"McNemar exact p = {p:.4f}, Holm-adjusted over {len(pvalues)} critical modes {q:.4f}")
        if not n:
            row["verdict"], row["reason"] = INCONCLUSIVE, f"critical mode {m['code']}: no judged pairs to compare"
        elif q <= CRITICAL_ALPHA:
            row["verdict"] = WORSE
            row["reason"] = f"critical mode regression — {numbers} <= {CRITICAL_ALPHA}"
        else:
            row["verdict"] = PASS
            row["reason"] = f"critical mode {m['code']}: {numbers} > {CRITICAL_ALPHA}: no regression shown"
        out.append(row)
    return out


# --- A/B: the canary's served turns against the baseline's -------------------------------------------

def _unit_values(units: dict, name: str) -> tuple:
    """Per-turn 0/1 values of a flag with the unit of each turn, rebuilt from the per-unit counts."""
    import numpy as np

    n = np.asarray(units["turns"], dtype=int)
    k = np.asarray(units[name], dtype=int)
    labels = np.repeat(np.arange(n.size), n)
    first = np.repeat(np.cumsum(n) - n, n)
    values = (np.arange(n.sum()) - first < np.repeat(k, n)).astype(float)
    return values, labels


def ab_evidence(candidate: Release, baseline: Release, policy: Policy, as_of: date | None = None) -> dict:
    first, last = release_serving_span(candidate)
    if as_of is not None and first is not None:  # as of that day: the turns served by its end
        first = None if first.date() > as_of else first
        last = min(last, end_of(as_of) - timedelta(microseconds=1))
    margin = policy.ab_margin
    out = {"verdict": MISSING, "accepted": policy.accept in ("ab", "either", "both"), "start": None, "end": None,
           "days": 0, "candidate_turns": 0, "baseline_turns": 0, "margin": margin, "min_turns": policy.min_ab_turns,
           "min_days": policy.min_ab_days, "window_days": policy.ab_window_days, "metrics": [],
           "interval_method": "confidence sequence of the difference, clustered by user (or session), valid at "
                              "every look", "expected_share": policy.ab_expected_share}
    if first is None:
        by = f" by the end of {as_of}" if as_of else ""
        out["reason"] = (f"A/B: {candidate.name} served no production turns{by} (no canary: turns with "
                         f"metadata.release = {candidate.name!r} or model {candidate.model!r})")
        return out
    end = last.date()
    start = max(first.date(), end - timedelta(days=policy.ab_window_days - 1))
    days = (end - start).days + 1
    cand = evaluation.production_rates(candidate, start=start, end=end)
    base = evaluation.production_rates(baseline, start=start, end=end)
    cu = evaluation.production_units(candidate, start=start, end=end)
    bu = evaluation.production_units(baseline, start=start, end=end)
    n_c, n_b = cand["detected"], base["detected"]
    out.update(start=start.isoformat(), end=end.isoformat(), days=days, candidate_turns=n_c, baseline_turns=n_b,
               unit=cu["unit"] if cu["units"] else bu["unit"], candidate_units=cu["units"], baseline_units=bu["units"])
    neutral = set(policy.neutral_signals)
    names = [FAILURE, *(n for n in evaluation.signal_names() if n not in neutral)]
    block_alpha = 0.05 / len(names)
    higher = set(policy.higher_is_better)
    for name in [*names, *(n for n in evaluation.signal_names() if n in neutral)]:
        rc = cand[FAILURE] if name == FAILURE else cand["signals"][name]
        rb = base[FAILURE] if name == FAILURE else base["signals"][name]
        has = cu["units"] and bu["units"]
        if has:
            xc, gc = _unit_values(cu, name)
            xb, gb = _unit_values(bu, name)
        if name in neutral:  # shown, with the difference, never judged
            d = stats.diff_means_sequence(xc, gc, xb, gb) if has else None
            out["metrics"].append({"name": name, "direction": "neutral", "candidate": rc, "baseline": rb,
                                   "difference": d and {"harm": None, "candidate_minus_baseline": d.value,
                                                        "ci_low": d.lo, "ci_high": d.hi},
                                   "verdict": "neutral"})
            continue
        row = {"name": name, "direction": "higher_is_better" if name in higher else "lower_is_better",
               "candidate": rc, "baseline": rb, "difference": None, "verdict": INCONCLUSIVE}
        if has:
            # "harm": how much worse the candidate is, whichever way the signal points.
            args = (xb, gb, xc, gc) if name in higher else (xc, gc, xb, gb)
            ni = stats.diff_means_sequence(*args)
            blk = stats.diff_means_sequence(*args, alpha=block_alpha)
            row["difference"] = {"harm": ni.value, "ci_low": ni.lo, "ci_high": ni.hi,
                                 "block_ci_low": blk.lo, "block_ci_high": blk.hi}
            row["verdict"] = WORSE if blk.lo > margin else PASS if ni.hi <= margin else INCONCLUSIVE
        out["metrics"].append(row)
    out["block_confidence"] = 1 - block_alpha
    where = (f"{start}..{end} ({days} days), {n_c} candidate vs {n_b} baseline turns "
             f"({cu['units']} vs {bu['units']} {out['unit']}s)")
    judged = [r for r in out["metrics"] if r["verdict"] != "neutral"]
    worse = [r for r in judged if r["verdict"] == WORSE]
    # Turns that count for both releases (same model, no metadata.release) make the two sides the
    # same traffic: the comparison would pass whatever the candidate does.
    shared = _shared_turns(candidate, baseline, start, end)
    out["shared_turns"] = shared
    if shared:
        out["verdict"] = INCONCLUSIVE
        out["reason"] = (f"A/B: {shared} turns in {start}..{end} count for both {candidate.name} and {baseline.name} "
                         f"(model {candidate.model!r} without metadata.release): the canary's turns must name their "
                         f"release in metadata.release")
        return out
    if n_c < policy.min_ab_turns or n_b < policy.min_ab_turns or days < policy.min_ab_days:
        out["verdict"] = INCONCLUSIVE
        out["reason"] = (f"A/B: {where}; needs at least {policy.min_ab_turns} turns each (min_ab_turns) over "
                         f"{policy.min_ab_days} days (min_ab_days) before it is read")
        return out
    # Sample-ratio mismatch: a split off the declared one means the assignment (or the logging)
    # is broken, and no rate compares like with like. Checked before any metric is read.
    share = policy.ab_expected_share
    p_srm = stats.srm_pvalue(cu["units"], bu["units"], share)
    observed = cu["units"] / (cu["units"] + bu["units"])
    out["srm"] = {"candidate_units": cu["units"], "baseline_units": bu["units"], "observed_share": observed,
                  "expected_share": share, "p_value": p_srm, "alpha": policy.ab_srm_alpha}
    if p_srm < policy.ab_srm_alpha:
        out["verdict"] = INCONCLUSIVE
        out["reason"] = (f"A/B: sample-ratio mismatch — the candidate got {pct(observed)} of the {out['unit']}s "
                         f"({cu['units']} of {cu['units'] + bu['units']}), not the {pct(share)} declared "
                         f"(ab_expected_share): chi-square p = {p_srm:.2g} < {policy.ab_srm_alpha:g} (ab_srm_alpha); "
                         f"the assignment or the logging is broken and no rate is read; {where}")
        return out
    if worse:
        out["verdict"] = WORSE
        out["reasons"] = [_metric_reason(r, margin, out["block_confidence"], where) for r in worse]
        out["reason"] = out["reasons"][0]
        return out
    if all(r["verdict"] == PASS for r in judged):
        top = max(judged, key=lambda r: r["difference"]["ci_high"])
        out["verdict"] = PASS
        out["reason"] = (f"A/B: all {len(names)} rates within the {pts(margin)} margin (ab_margin) — {where}; "
                         f"the largest upper bound of the harm is {pp(top['difference']['ci_high'])} "
                         f"({top['name']}, {pct(top['candidate'].get('rate'))} vs {pct(top['baseline'].get('rate'))}; "
                         f"95% confidence sequence clustered by {out['unit']})")
        return out
    open_ = [r for r in judged if r["verdict"] != PASS]
    r = max(open_, key=lambda r: (r["difference"] or {}).get("ci_high") or 0)
    out["verdict"] = INCONCLUSIVE
    d = r["difference"]
    out["reason"] = (f"A/B: {r['name']} {pct(r['candidate'].get('rate'))} vs {pct(r['baseline'].get('rate'))} — "
                     + (f"harm {pp(d['harm'])} (95% CS {pp(d['ci_low'])} to {pp(d['ci_high'])}) reaches beyond the "
                        f"{pts(margin)} margin (ab_margin)" if d else "no turns to compare")
                     + f"; {where}; not shown non-inferior ({len(open_)} of {len(names)} rates)")
    return out


def _shared_turns(candidate: Release, baseline: Release, start, end) -> int:
    since = datetime.combine(start, time.min, tzinfo=timezone.utc)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc)
    return (release_turns(candidate).filter(release_turn_filter(baseline), timestamp__gte=since, timestamp__lt=until)
            .count())


def _metric_reason(r: dict, margin: float, confidence: float, where: str) -> str:
    d = r["difference"]
    way = "lower" if r["direction"] == "higher_is_better" else "higher"
    return (f"A/B: {r['name']} rate {pct(r['candidate']['rate'])} on the candidate vs {pct(r['baseline']['rate'])} "
            f"on the baseline ({way} is worse) — harm {pp(d['harm'])} ({100 * confidence:.1f}% confidence sequence "
            f"{pp(d['block_ci_low'])} to {pp(d['block_ci_high'])}, Bonferroni over the rates), beyond the "
            f"{pts(margin)} margin (ab_margin); {where}")
