"""When is a failure model fitted on labels better than the stated weights? A simulation (pure
functions, seconds) of the rule fit_failure_model applies: fit when at least FAILURE_MODEL_MIN_LABELS
(200) turns are labelled with at least FAILURE_MODEL_MIN_PER_CLASS (30) of each class.

    .venv/bin/python benchmarks/sim_failure_model.py [--reps 200] [--json]

Traffic: each turn has a next query within the window with probability 0.5 (its balanced rephrase
score ~ Beta(0.6, 0.6)), and thumbs down / override / copy / escalation at 20 / 8 / 25 / 20 %.
Two truths for P(judged incorrect):
- "signals": log-odds -2 + 2.5 thumbs_down + 3 override - 2 copy + 2.5 score (escalation says nothing);
- "stated": exactly the stated weights (noisy-OR of P(re-ask) at prior 0.1 and 0.95 / 0.7 / 0.6):
  the fit can only lose there, and the simulation says how much.
A labelled sample of n turns (half weight 1, half weight 10, as candidates and random samples
are) is drawn, the model fitted (evaluation.failure_fit, the code the command runs), and both the
fit and the stated weights scored on 20,000 fresh turns. Prints per truth and n: how often the rule
refuses, how often the fitted model is worse than the stated weights (AUC, Brier) on fresh traffic,
and the mean differences; then the activation rule (the fit replaces the stated weights only when its
5-fold held-out Brier difference to them has its whole 95% interval below 0): how often it
activates, and how often it activates a fit that is worse on fresh traffic (its error rate).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.stats import auc  # noqa: E402
from evaluation.failure_fit import brier_ci, fit, held_out, predict  # noqa: E402

MIN_LABELS, MIN_PER_CLASS, L2, FOLDS = 200, 30, 1.0, 5
# FEATURES order (production.services.failure_model): reaction, rephrase_score, abandoned,
# session_ended, copied, thumbs_up, thumbs_down, escalated, human_override
REACTION, SCORE, ABANDONED, ENDED, COPIED, UP, DOWN, ESCALATED, OVERRIDE = range(9)


def traffic(rng, n: int) -> np.ndarray:
    x = np.zeros((n, 9))
    reaction = rng.random(n) < 0.5
    x[:, REACTION] = reaction
    x[:, SCORE] = np.where(reaction, rng.beta(0.6, 0.6, n), 0.0)
    x[:, DOWN] = rng.random(n) < 0.2
    x[:, OVERRIDE] = rng.random(n) < 0.08
    x[:, COPIED] = rng.random(n) < 0.25
    x[:, ESCALATED] = rng.random(n) < 0.2
    x[:, ENDED] = ~reaction & (x[:, COPIED] == 0)
    return x


def stated(x: np.ndarray, prior: float = 0.1) -> np.ndarray:
    s = np.clip(x[:, SCORE], 1e-9, 1 - 1e-9)
    p_reask = np.where(x[:, REACTION] == 1, 1 / (1 + (1 - s) / s * (1 - prior) / prior), 0.0)
    not_failed = (1 - p_reask) * (1 - 0.95 * x[:, OVERRIDE]) * (1 - 0.7 * x[:, DOWN]) * (1 - 0.6 * x[:, ESCALATED])
    return 1 - not_failed


def truth(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "stated":
        return stated(x)
    eta = -2 + 2.5 * x[:, DOWN] + 3 * x[:, OVERRIDE] - 2 * x[:, COPIED] + 2.5 * x[:, SCORE]
    return 1 / (1 + np.exp(-eta))


def run(kind: str, n: int, reps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    pop = traffic(rng, 20_000)
    p_true = truth(pop, kind)
    y_pop = (rng.random(pop.shape[0]) < p_true).astype(int)
    auc_stated = auc(stated(pop), y_pop)
    brier_stated = float(np.mean((stated(pop) - p_true) ** 2))  # against the true probability: no label noise
    refused, worse_auc, worse_brier, d_auc, d_brier = 0, 0, 0, [], []
    activated, activated_worse = 0, 0
    for _ in range(reps):
        x = traffic(rng, n)
        y = (rng.random(n) < truth(x, kind)).astype(float)
        w = np.where(np.arange(n) % 2 == 1, 1.0, 10.0)
        if n < MIN_LABELS or (y == 1).sum() < MIN_PER_CLASS or (y == 0).sum() < MIN_PER_CLASS:
            refused += 1
            continue
        beta, _ = fit(x, y, w, L2)
        p = predict(beta, pop)
        a = auc(p, y_pop) - auc_stated
        b = float(np.mean((p - p_true) ** 2)) - brier_stated
        worse_auc += a < 0
        worse_brier += b > 0
        # the activation rule: held-out (5-fold) Brier difference, fitted - stated, wholly below 0
        diff = brier_ci({"fitted": held_out(x, y, w, L2, FOLDS), "stated": stated(x)}, y, w)["difference"]
        if diff["ci_high"] < 0:
            activated += 1
            activated_worse += b > 0
        d_auc.append(a)
        d_brier.append(b)
    fitted = reps - refused
    share = (lambda k: None if not fitted else round(k / fitted, 3))
    return {"truth": kind, "n": n, "reps": reps, "refused": round(refused / reps, 3), "fitted": fitted,
            "fit_worse_auc": share(worse_auc), "fit_worse_brier": share(worse_brier),
            "mean_auc_gain": None if not d_auc else round(float(np.mean(d_auc)), 4),
            "mean_brier_change": None if not d_brier else round(float(np.mean(d_brier)), 4),
            "stated_auc": round(auc_stated, 4), "activated": share(activated),
            "activated_but_worse": None if not fitted else round(activated_worse / fitted, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [run(kind, n, args.reps, seed=1000 * i + n)
            for i, kind in enumerate(("signals", "stated")) for n in (100, 200, 400, 800)]
    if args.json:
        print(json.dumps(rows))
        return
    print("truth    n    refused  fit worse (AUC)  fit worse (Brier)  mean AUC gain  mean Brier change  stated AUC  "
          "activated  activated but worse")
    for r in rows:
        fmt = (lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v}")
        print(f"{r['truth']:8} {r['n']:<4} {r['refused']:<8} {fmt(r['fit_worse_auc']):16} {fmt(r['fit_worse_brier']):18} "
              f"{fmt(r['mean_auc_gain']):14} {fmt(r['mean_brier_change']):18} {r['stated_auc']:<11} "
              f"{fmt(r['activated']):10} {fmt(r['activated_but_worse'])}")


if __name__ == "__main__":
    main()
