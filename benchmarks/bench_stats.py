"""Time core.stats on the sizes the shadow and correlation reports meet. No database, no Django.

    python benchmarks/bench_stats.py [--repeats 5]

Prints one JSON line: for each case the median and the fastest of ``--repeats`` runs, wall clock
(``perf_counter``) and CPU of this process (``process_time``; on a shared machine the wall clock
includes waiting for a core). Every bootstrap uses 1,000 resamples. Data are synthetic, drawn
from a fixed seed:

- auc_10k_*: AUC + bootstrap interval over 10,000 labelled items, 20 % incorrect; continuous
  scores (each item its own cell), graded scores 0 / 0.5 / 1 (the grader's verdicts), and
  continuous scores with inclusion-probability weights.
- spearman_20_releases: Spearman + bootstrap interval over 20 releases.
- correlation_stats_1m: the statistics of a correlation report over 1,000,000 turns of 20
  releases and 10,000 labelled items (not the database reads): per release the failure and 6
  signal rates with Wilson intervals, Spearman over the releases, item-level AUC + kappa, and
  per signal the weighted P(incorrect | signal), P(incorrect), lift and AUC.
- shadow_report_1050_pairs: a week of shadow pairs (1,050 in 450 conversations): win rate with
  the conversation bootstrap, decisive and tie rates, p-value, length-controlled win rate, and
  20 failure modes each with a bootstrap interval, a p-value and Benjamini-Hochberg q-values.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import stats as st  # noqa: E402

N_LABELLED = 10_000
N_TURNS = 1_000_000
N_RELEASES = 20
N_SIGNALS = 6


def _labelled(rng: np.random.Generator) -> dict[str, np.ndarray]:
    incorrect = rng.random(N_LABELLED) < 0.2
    return {
        "incorrect": incorrect,
        "score": rng.normal(size=N_LABELLED) - 0.8 * incorrect,  # higher = better
        "graded": np.where(
            rng.random(N_LABELLED) < 0.7 - 0.4 * incorrect, 1.0, rng.choice([0.0, 0.5], N_LABELLED)
        ),
        "weights": 1.0 / rng.choice([0.02, 0.1, 0.5, 1.0], N_LABELLED),
        "signals": rng.random((N_SIGNALS, N_LABELLED)) < np.where(incorrect, 0.3, 0.12),
        "human": rng.choice(["correct", "partially_correct", "incorrect"], N_LABELLED),
        "grader": rng.choice(["correct", "partially_correct", "incorrect"], N_LABELLED),
    }


def correlation_stats(rng: np.random.Generator, lab: dict[str, np.ndarray]) -> dict:
    release = rng.integers(0, N_RELEASES, N_TURNS)
    failure = rng.random(N_TURNS) < 0.08 + 0.004 * release
    signals = rng.random((N_SIGNALS, N_TURNS)) < 0.05
    t0 = time.perf_counter()
    turns = np.bincount(release, minlength=N_RELEASES)
    rows = []
    fails = np.bincount(release, weights=failure, minlength=N_RELEASES)
    sig_counts = [np.bincount(release, weights=s, minlength=N_RELEASES) for s in signals]
    for r in range(N_RELEASES):
        rows.append([st.wilson(fails[r], turns[r])] + [st.wilson(c[r], turns[r]) for c in sig_counts])
    offline = rng.normal(size=N_RELEASES)
    rank = st.spearman_bootstrap_ci(offline, [row[0].value for row in rows])
    item_auc = st.auc_bootstrap_ci(-lab["graded"], lab["incorrect"])
    kappa = st.cohen_kappa(lab["grader"], lab["human"])
    validity = []
    w = lab["weights"]
    for s in lab["signals"]:
        validity.append((
            st.weighted_proportion(lab["incorrect"][s], w[s]),
            st.weighted_proportion(lab["incorrect"], w),
            st.lift(lab["incorrect"], s, w),
            st.auc_bootstrap_ci(s.astype(float), lab["incorrect"], w),
        ))
    return {"compute_s": time.perf_counter() - t0, "spearman": rank, "auc": item_auc, "kappa": kappa}


def shadow_stats(rng: np.random.Generator) -> dict:
    n_pairs = 1050
    conv = rng.integers(0, 450, n_pairs)
    outcome = rng.choice([0.0, 0.5, 1.0], n_pairs, p=[0.35, 0.25, 0.40])
    len_diff = rng.normal(80, 300, n_pairs)
    modes = rng.integers(0, 20, n_pairs)
    t0 = time.perf_counter()
    overall = st.win_rate(outcome, conv)
    st.decisive_win_rate(outcome)
    st.tie_rate(outcome)
    st.win_rate_pvalue(outcome, conv)
    st.length_controlled_win_rate(outcome, len_diff, conv)
    pvalues = []
    for m in range(20):
        sel = modes == m
        st.win_rate(outcome[sel], conv[sel])
        pvalues.append(st.win_rate_pvalue(outcome[sel], conv[sel]))
    st.benjamini_hochberg(pvalues)
    return {"compute_s": time.perf_counter() - t0, "win_rate": overall}


def timed(fn: Callable[[], object], repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {
        "wall_median_s": round(statistics.median(walls), 4),
        "wall_min_s": round(min(walls), 4),
        "cpu_median_s": round(statistics.median(cpus), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    lab = _labelled(rng)
    offline = rng.normal(size=N_RELEASES)
    production = -offline + rng.normal(scale=0.7, size=N_RELEASES)
    cases = {
        "auc_10k_continuous": lambda: st.auc_bootstrap_ci(-lab["score"], lab["incorrect"]),
        "auc_10k_graded": lambda: st.auc_bootstrap_ci(-lab["graded"], lab["incorrect"]),
        "auc_10k_continuous_weighted": lambda: st.auc_bootstrap_ci(-lab["score"], lab["incorrect"], lab["weights"]),
        "spearman_20_releases": lambda: st.spearman_bootstrap_ci(offline, production),
        "correlation_stats_1m": lambda: correlation_stats(np.random.default_rng(1), lab),
        "shadow_report_1050_pairs": lambda: shadow_stats(np.random.default_rng(2)),
    }
    out: dict = {"resamples": 1000, "repeats": args.repeats}
    for name, fn in cases.items():
        out[name] = timed(fn, args.repeats)
    # the correlation case also builds 1M synthetic turns: report its statistics alone as well
    inner = [correlation_stats(np.random.default_rng(1), lab)["compute_s"] for _ in range(args.repeats)]
    out["correlation_stats_1m"]["stats_only_wall_median_s"] = round(statistics.median(inner), 4)
    out["auc_10k_continuous"]["result"] = list(st.auc_bootstrap_ci(-lab["score"], lab["incorrect"]))
    out["spearman_20_releases"]["result"] = list(st.spearman_bootstrap_ci(offline, production))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
