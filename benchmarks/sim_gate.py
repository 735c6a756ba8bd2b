"""The release gate's shadow decision under how teams use it: read every day, by a judge that may
prefer longer answers, with many ties. Pure functions, no database, seconds.

Each simulated candidate is shadowed for 30 days at --per-day judged pairs a day (one pair per
conversation unless said), and the decision (shadow.decision.pairs_evidence, the function the
report and the gate call) is read once a day from day --min-days on; the candidate "ships" at the
first look that passes. Printed: the share that ever ships, and the days to a decision.

    .venv/bin/python benchmarks/sim_gate.py [--runs 400] [--per-day 150] [--seed 1]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import stats  # noqa: E402
from shadow.decision import BETTER, NON_INFERIOR, WORSE, pairs_evidence  # noqa: E402

DAYS = 30


def outcomes(rng, n: int, win: float, tie: float) -> np.ndarray:
    """n judged pairs: 1 candidate better, 0 served better, 0.5 tie."""
    u = rng.random(n)
    return np.where(u < tie, 0.5, np.where(rng.random(n) < win, 1.0, 0.0))


def old_fixed_horizon(s: np.ndarray, margin: float) -> bool:
    """The gate before: the ties-as-half win rate's 95 % Wilson interval, lower bound >= 0.5 - margin
    (> 0.5 with margin 0), read every day once the horizon is reached."""
    est = stats.wilson(float(s.sum()), s.size)
    return est.lo > 0.5 if margin == 0 else est.lo >= 0.5 - margin


def run(rng, *, win: float, tie: float = 0.0, margin: float = 0.0, per_day: int, min_days: int,
        length_bias: float = 0.0, longer: float = 1.0, session: int = 1, judge_shift: float = 0.0,
        audit_per_day: int = 0, min_audited: int = 100, window: int | None = None) -> dict:
    """One candidate shadowed for DAYS days. Returns the day each rule first passed (None: never)
    and the day the new rule first said worse.

    length_bias: the judge's log-odds for the longer answer per unit of tanh(len_diff / sd), the
    form the length-controlled rate assumes (AlpacaEval 2); longer: candidate length / served.
    session: pairs per conversation (with a conversation effect on the win probability).
    judge_shift: the judge's log-odds towards the candidate beyond the truth (a biased judge);
    audit_per_day: pairs a day people also pick (their pick is the truth);
    window: read only the last `window` days (a rolling window) instead of all days so far."""
    n = per_day * DAYS
    truth = outcomes(rng, n, win, tie)
    clusters = np.arange(n) // session
    if session > 1:  # a conversation that goes well goes well for most of its turns
        effect = rng.normal(0, 1.0, n // session + 1)[clusters]
        p = 1 / (1 + np.exp(-(math.log(win / (1 - win)) + effect)))
        truth = np.where(rng.random(n) < tie, 0.5, (rng.random(n) < p).astype(float))
    served_len = rng.lognormal(math.log(400), 0.5, n)
    cand_len = served_len * (longer * rng.uniform(0.75, 1.25, n) if longer != 1.0 else 1.0)
    d = cand_len - served_len
    judged = truth.copy()
    if judge_shift or length_bias:
        # The judge: right about a decisive pair's winner with log-odds 2 (88 %), moved towards the
        # candidate by its bias and, when it prefers longer answers, by tanh(len_diff / sd).
        shift = judge_shift + (length_bias * np.tanh(d / d.std()) if length_bias else 0.0)
        p = 1 / (1 + np.exp(-(np.where(truth == 1.0, 2.0, -2.0) + shift)))
        judged = np.where(truth != 0.5, (rng.random(n) < p).astype(float), 0.5)
    audited = np.zeros(n, dtype=bool)
    if audit_per_day:
        for day in range(DAYS):
            audited[rng.choice(np.arange(day * per_day, (day + 1) * per_day), audit_per_day, replace=False)] = True
    out = {"new": None, "old": None, "worse": None}
    for day in range(min_days, DAYS + 1):
        k = day * per_day
        j = max(0, k - window * per_day) if window else 0
        s, c, dd = judged[j:k], clusters[j:k], d[j:k]
        a = audited[j:k]
        audit = {"judge": s[a], "human": truth[j:k][a], "clusters": c[a]} if audit_per_day else None
        # Only a decisive interval that passes or is below 0.5 can change the verdict: the other
        # looks skip the regressions (the verdict is the same, the simulation 10x faster).
        quick = stats.decisive_sequence(s, c)
        if audit is not None or quick.lo >= 0.5 - margin or quick.hi < 0.5:
            ev = pairs_evidence(s, c, dd, margin=margin, audit=audit, min_audited=min_audited)
            if out["new"] is None and ev["verdict"] in (BETTER, NON_INFERIOR):
                out["new"] = day
            if out["worse"] is None and ev["verdict"] == WORSE:
                out["worse"] = day
        if out["old"] is None and old_fixed_horizon(s, margin):
            out["old"] = day
        if out["new"] is not None and out["old"] is not None:
            break
    return out


def summarise(name: str, results: list[dict], key: str = "new") -> str:
    days = [r[key] for r in results if r[key] is not None]
    share = len(days) / len(results)
    lo, hi = stats.wilson(len(days), len(results))[1:]
    med = f"median {np.median(days):.0f} days (p90 {np.quantile(days, 0.9):.0f})" if days else "never"
    return f"  {name:<52} {100 * share:5.1f} %  (95% CI {100 * lo:4.1f}-{100 * hi:4.1f}, n={len(results)}); {med}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--per-day", type=int, default=150)
    ap.add_argument("--min-days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.process_time()
    common = {"per_day": args.per_day, "min_days": args.min_days}

    def many(**kw):
        return [run(rng, **common, **kw) for _ in range(args.runs)]

    print(f"{args.runs} candidates per row, {args.per_day} judged pairs a day, read daily from day "
          f"{args.min_days} to day {DAYS}; 'ships' = the first daily look passes.")
    print("\n1. No real difference (win rate 0.50), superiority (margin 0): false ships")
    r = many(win=0.5)
    print(summarise("new: confidence sequence, decisive + length-controlled", r))
    print(summarise("old: fixed-horizon Wilson, ties as half", r, "old"))
    r = many(win=0.5, session=3)
    print(summarise("new, 3 pairs per conversation (correlated)", r))
    print(summarise("old, 3 pairs per conversation", r, "old"))
    r = many(win=0.5, tie=0.3)
    print(summarise("new, 30 % ties", r))
    r = many(win=0.5, window=14)
    print(summarise("new, rolling 14-day window (shadow_window_days 14)", r))
    print(summarise("old, rolling 14-day window", r, "old"))
    r = many(win=0.5, window=7)
    print(summarise("new, rolling 7-day window", r))

    print("\n2. Power and days to 'better' (superiority, no ties)")
    for w in (0.52, 0.55, 0.60):
        r = many(win=w)
        print(summarise(f"true decisive win rate {w:.2f}: new", r))
        print(summarise(f"true decisive win rate {w:.2f}: old (not anytime-valid)", r, "old"))

    print("\n3. Worse but twice as long (true 0.45), judge prefers longer (log-odds +1.2 per tanh unit)")
    for margin in (0.0, 0.03, 0.05):
        r = many(win=0.45, longer=2.0, length_bias=1.2, margin=margin)
        print(summarise(f"margin {margin:.2f}: new ships", r))
        print(summarise(f"margin {margin:.2f}: old ships (raw rate)", r, "old"))

    print("\n4. Tie-heavy losers: 45:55 on decisive pairs, half the pairs ties")
    for margin in (0.03, 0.05):
        r = many(win=0.45, tie=0.5, margin=margin)
        print(summarise(f"margin {margin:.2f}: new passes (decisive scale)", r))
        print(summarise(f"margin {margin:.2f}: old passes (ties-as-half scale)", r, "old"))

    print("\n5. A judge biased towards the candidate (+0.6 log-odds) on a no-better candidate (0.50),")
    print("   people audit 20 pairs a day (calibrated decides from min_audited_pairs = 100)")
    runs = max(1, args.runs // 4)
    r = [run(rng, **common, win=0.5, judge_shift=0.6, audit_per_day=20) for _ in range(runs)]
    print(summarise("new: human-calibrated (audit >= 100 from day 5)", r))
    print(summarise("old: judge-only, fixed horizon", r, "old"))
    r = [run(rng, **common, win=0.5, judge_shift=0.6, audit_per_day=20, min_audited=10**9) for _ in range(runs)]
    print(summarise("new, judge-only (min_audited_pairs never reached)", r))
    r = [run(rng, **common, win=0.6, judge_shift=0.0, audit_per_day=20) for _ in range(runs)]
    print(summarise("calibrated, true 0.60, 88 %-accurate judge: power", r))
    print(f"\n{time.process_time() - t0:.1f} s CPU")


if __name__ == "__main__":
    main()
