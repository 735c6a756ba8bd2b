"""The guardrails' decision rule by simulation (gate/guardrails.py): how often a latency or cost
ratio is blocked, passed or held, at true ratios below, at and above the policy's limit.

    python benchmarks/bench_guardrails.py [--trials 200]

Pure functions (no database). Each trial draws n pairs in conversations of 1-3 turns (turns of one
conversation share a load factor, so they are correlated), served latency lognormal (median 1 s,
sigma 0.5) times the conversation's factor, the candidate's the same distribution times the true
ratio; costs likewise (gamma, mean $0.001). The rule: block when the 95 % bootstrap interval of
the ratio is above the limit, pass when the ratio is at or below it, hold otherwise. Prints one
JSON line per (metric, n, true ratio): block / pass / hold rates over the trials.
"""
import argparse
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")
import django  # noqa: E402

django.setup()
from gate.guardrails import judge_ratio, paired_ratio  # noqa: E402

LIMIT = 1.5


def draw(rng, n: int, ratio: float, metric: str):
    sizes = rng.integers(1, 4, n)
    clusters = np.repeat(np.arange(n), sizes)[:n]
    load = rng.lognormal(0, 0.3, n)[clusters]
    if metric == "cost_mean":
        served = rng.gamma(2.0, 0.0005, n) * load
        cand = ratio * rng.gamma(2.0, 0.0005, n) * load
    else:
        served = rng.lognormal(np.log(1000), 0.5, n) * load
        cand = ratio * rng.lognormal(np.log(1000), 0.5, n) * load
    return cand, served, clusters


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    for metric, stat in (("latency_p95", 0.95), ("cost_mean", None)):
        for n in (300, 1000):
            for true in (1.0, 1.3, LIMIT, 2.0):
                rng = np.random.default_rng(zlib.crc32(f"{metric}-{n}-{true}".encode()))
                verdicts = []
                for t in range(args.trials):
                    cand, served, clusters = draw(rng, n, true, metric)
                    verdicts.append(judge_ratio(paired_ratio(cand, served, clusters, stat, seed=t), LIMIT, n))
                rate = {v: round(verdicts.count(v) / args.trials, 3) for v in ("worse", "pass", "inconclusive")}
                print(json.dumps({"metric": metric, "pairs": n, "true_ratio": true, "limit": LIMIT,
                                  "trials": args.trials, "block": rate["worse"], "pass": rate["pass"],
                                  "hold": rate["inconclusive"]}))


if __name__ == "__main__":
    main()
