"""The item-level AUC alarm with nothing changed, and after a real drop: a simulation (pure functions,
seconds). Weekly graded served answers: failures' offline grades and the rest's are binormal with
the separation that gives the true AUC; n answers a week, a share of them failures.

    .venv/bin/python benchmarks/sim_alarm.py [--years 200] [--json]

Prints, per week size and failure share: false alarms per quarter (13 weeks) with nothing changed,
for the old rule (weekly AUC 0.05 below its trailing 4-week mean, or below 0.6) and for the CUSUM
evalgap uses (core.stats.change, at the settings' k and h), and for the CUSUM the weeks from a
real drop (0.75 -> 0.65, and -> 0.55) to its alarm.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm, rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.stats.change import Week, cusum_drop  # noqa: E402

K = float(os.environ.get("CORRELATION_CUSUM_K", 0.5))
H = float(os.environ.get("CORRELATION_CUSUM_H", 5.0))
FLOOR, DROP = 0.6, 0.05


def week_auc(rng, n: int, share: float, auc: float) -> Week:
    pos = rng.binomial(n, share)
    neg = n - pos
    if pos == 0 or neg == 0 or n < 20:
        return Week(None, pos, neg)
    d = math.sqrt(2) * norm.ppf(auc)
    # the failure is the positive class and "-grade" its score: failures score higher by d
    s = np.concatenate([rng.normal(d, 1, pos), rng.normal(0, 1, neg)])
    r = rankdata(s)
    u = r[:pos].sum() - pos * (pos + 1) / 2
    return Week(float(u / (pos * neg)), pos, neg)


def old_rule(weeks: list[Week]) -> int:
    alarms, hist = 0, []
    for w in weeks:
        before = [a for a in hist[-4:] if a is not None]
        if w.auc is not None:
            if len(before) >= 2 and sum(before) / len(before) - w.auc > DROP:
                alarms += 1
            elif w.auc < FLOOR:
                alarms += 1
        hist.append(w.auc)
    return alarms


def alarms_of(weeks: list[Week]) -> list[int]:
    rows = cusum_drop(weeks, k=K, h=H, floor=FLOOR)
    return [i for i, r in enumerate(rows) if r["drop_alarm"] or r["floor_alarm"]]


def null_rates(rng, n: int, share: float, years: int, auc: float = 0.75) -> dict:
    old = new = 0
    quarters_with_alarm = 0
    for _ in range(years):
        weeks = [week_auc(rng, n, share, auc) for _ in range(52)]
        old += old_rule(weeks)
        hits = alarms_of(weeks)
        new += len(hits)
        quarters_with_alarm += len({i // 13 for i in hits})
    q = 4 * years
    return {"old_rule_per_quarter": old / q, "cusum_per_quarter": new / q,
            "cusum_quarters_with_an_alarm": quarters_with_alarm / q}


def delay(rng, n: int, share: float, after: float, runs: int, before: float = 0.75, change_week: int = 26) -> dict:
    delays, missed = [], 0
    for _ in range(runs):
        weeks = [week_auc(rng, n, share, before if i < change_week else after) for i in range(change_week + 52)]
        hits = [i for i in alarms_of(weeks) if i >= change_week]
        if hits:
            delays.append(hits[0] - change_week + 1)
        else:
            missed += 1
    return {"median_weeks": float(np.median(delays)) if delays else None,
            "p90_weeks": float(np.percentile(delays, 90)) if delays else None, "missed_in_a_year": missed / runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(23)
    rows = []
    for n in (20, 50, 100, 400):
        for share in (0.2, 0.5):
            row = {"n_per_week": n, "failure_share": share, **null_rates(rng, n, share, a.years)}
            for after in (0.65, 0.55):
                row[f"drop_to_{after}"] = delay(rng, n, share, after, runs=max(50, a.years // 2))
            rows.append(row)
    out = {"k": K, "h": H, "floor": FLOOR, "true_auc": 0.75, "years_simulated": a.years, "rows": rows}
    if a.json:
        print(json.dumps(out))
        return
    print(f"CUSUM k={K} h={H}, floor {FLOOR}; true AUC 0.75 with nothing changed; {a.years} simulated years each")
    print(f"{'n/week':>6} {'fail':>5} | {'old rule':>9} {'CUSUM':>7} {'quarters':>9} | "
          f"{'->0.65 median/p90 wk':>21} {'missed':>6} | {'->0.55 median/p90 wk':>21} {'missed':>6}")
    for r in rows:
        d1, d2 = r["drop_to_0.65"], r["drop_to_0.55"]

        def f(d):
            return (f"{d['median_weeks']:.0f}/{d['p90_weeks']:.0f}" if d["median_weeks"] is not None else "-")
        print(f"{r['n_per_week']:>6} {r['failure_share']:>5.1f} | {r['old_rule_per_quarter']:>9.2f} "
              f"{r['cusum_per_quarter']:>7.3f} {r['cusum_quarters_with_an_alarm']:>9.3f} | {f(d1):>21} "
              f"{d1['missed_in_a_year']:>6.2f} | {f(d2):>21} {d2['missed_in_a_year']:>6.2f}")
    print("old rule / CUSUM: false alarms per quarter (13 weeks); quarters: share of quarters with any CUSUM alarm")


if __name__ == "__main__":
    main()
