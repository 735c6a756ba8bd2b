"""Guardrails: what the candidate's answers cost in time and money against the served answers of
the same pairs (the shadow window's judged pairs, so the same pairs as the win rate).

Per pair we have both sides: the candidate's latency and cost (replay, or the mirrored answer) and
the served turn's latency and `metadata.cost_usd`. For the median and p95 latency and the mean cost
per answer: each side's value with its 95 % interval (order statistics for the quantiles, the normal
interval for the mean), and the candidate/served ratio with a paired bootstrap
that resamples whole conversations (turns of one conversation share a prompt and a load).

A ratio is judged against its policy limit as the offline score is against its margin:
- worse (blocks): the whole 95 % interval of the ratio is above the limit;
- pass: the ratio itself is at or below the limit;
- inconclusive: above the limit, but the interval reaches below it (not shown, not fine) — the
  decision waits (insufficient_evidence) rather than ships on it;
- missing: not recorded on both answers of any pair; insufficient_data: recorded on fewer than
  MIN_PAIRS pairs, or the served side is all zero (no ratio). Both are said and neither blocks nor
  holds a decision back: only a number above the limit does.
At a true ratio exactly at the limit the block rule errs nominally 2.5 % of the time (one side of a
95 % interval); `benchmarks/bench_guardrails.py` measures 0.5-4 % (200 trials a row, so +-1.1 pp;
the percentile bootstrap of a ratio of skewed means under-covers a little at 300 pairs), and 0 %
below the limit (true ratio 1.3 against 1.5). Numbers in benchmarks/README.md.
"""
from __future__ import annotations

from datetime import date

import numpy as np
from scipy.stats import binom

from core.stats import Estimate
from releases.models import Release
from shadow import selectors as shadow

from .policy import Policy

PASS, WORSE, INCONCLUSIVE, MISSING = "pass", "worse", "inconclusive", "missing"
INSUFFICIENT = "insufficient_data"  # recorded, but too few pairs (or a zero served side) for a ratio
NOT_JUDGED = "no_limit"
MIN_PAIRS = 20  # below this many pairs with both sides recorded, no ratio is read
RESAMPLES = 2000
SEED = 20261208  # fixed: the same evidence gives the same interval, look after look

METRICS = (  # name, what, policy key, statistic
    ("latency_p50", "median latency", "max_latency_p50_ratio", 0.5),
    ("latency_p95", "p95 latency", "max_latency_p95_ratio", 0.95),
    ("cost_mean", "mean cost per answer", "max_cost_ratio", None),
)


def quantile_interval(values, q: float, ci: float = 0.95) -> Estimate | None:
    """The q-quantile with its distribution-free interval: the order statistics whose ranks the
    binomial(n, q) puts around it (no resampling; exact coverage >= ci). None when n is too small
    for the interval to be bounded by the data (e.g. p95 needs about 60 values)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0:
        return None
    alpha = (1 - ci) / 2
    lo_rank = int(binom.ppf(alpha, n, q))        # x[lo_rank] (0-based) is the (lo_rank+1)-th smallest
    hi_rank = int(binom.ppf(1 - alpha, n, q))
    if lo_rank < 1 or hi_rank >= n:
        return None
    return Estimate(float(np.quantile(x, q)), float(x[lo_rank - 1]), float(x[hi_rank]))


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Per row of `weights` (resamples x values), the q-quantile of `values` under those weights."""
    order = np.argsort(values)
    v, w = values[order], weights[:, order]
    cum = np.cumsum(w, axis=1)
    pos = (cum < q * cum[:, -1:]).sum(axis=1)
    return v[np.minimum(pos, v.size - 1)]


def paired_ratio(cand, served, clusters, stat: float | None, ci: float = 0.95,
                 resamples: int = RESAMPLES, seed: int = SEED) -> Estimate | None:
    """candidate/served ratio of a statistic (a quantile q, or the mean when `stat` is None) over
    paired values, with a percentile interval from resampling whole clusters (conversations)."""
    c, s = np.asarray(cand, dtype=float), np.asarray(served, dtype=float)
    if c.size < MIN_PAIRS:
        return None
    _, cl = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(cl.max()) + 1

    def ratio(weights: np.ndarray) -> np.ndarray:
        if stat is None:
            num, den = weights @ c, weights @ s
        else:
            num, den = _weighted_quantiles(c, weights, stat), _weighted_quantiles(s, weights, stat)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    point = ratio(np.ones((1, c.size)))[0]
    if not np.isfinite(point):
        return None
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, 250):  # bounded memory: 250 resamples x pairs at a time
        m = min(250, resamples - start)
        # k clusters drawn with replacement per resample, counted per cluster (a multinomial, faster)
        drawn = rng.integers(0, k, (m, k)) + (np.arange(m) * k)[:, None]
        per_cluster = np.bincount(drawn.ravel(), minlength=m * k).reshape(m, k)
        out.append(ratio(per_cluster[:, cl].astype(float)))
    samples = np.concatenate(out)
    samples = samples[np.isfinite(samples)]
    if samples.size < resamples // 2:
        return None
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return Estimate(float(point), float(lo), float(hi))


def _side(values: np.ndarray, stat: float | None) -> dict:
    """One side's value with its interval: order statistics for a quantile; for the mean, the
    normal interval (each side alone is shown, the ratio is what is judged)."""
    est = None
    if stat is not None:
        est = quantile_interval(values, stat)
    elif values.size >= 2:
        mean, half = float(values.mean()), 1.96 * float(values.std(ddof=1)) / np.sqrt(values.size)
        est = Estimate(mean, mean - half, mean + half)
    return {"n": int(values.size), "value": est.value if est else None, "ci_low": est.lo if est else None,
            "ci_high": est.hi if est else None}


def judge_ratio(ratio: Estimate | None, limit: float | None, n: int) -> str:
    if n == 0:
        return MISSING
    if ratio is None:
        return INSUFFICIENT
    if limit is None:
        return NOT_JUDGED
    if ratio.lo > limit:
        return WORSE
    return PASS if ratio.value <= limit else INCONCLUSIVE


def _fmt(metric: str, x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:.5f}" if metric.startswith("cost") else f"{x:.0f} ms"


def guardrail_evidence(candidate: Release, policy: Policy, *, since: date | None, until: date | None,
                       as_of: date | None = None) -> dict:
    """Latency and cost, candidate vs served, over the shadow window's judged pairs."""
    rows = shadow.pair_costs(candidate, since=since, until=until, as_of=as_of) if until else []
    out = {"pairs": len(rows), "since": since.isoformat() if since else None,
           "until": until.isoformat() if until else None, "metrics": [],
           "interval_method": "ratio: bootstrap over conversations; each side's quantile: order statistics"}
    for name, what, key, stat in METRICS:
        col_c, col_s = (1, 2) if name.startswith("latency") else (3, 4)
        both = [(r[0], r[col_c], r[col_s]) for r in rows if r[col_c] is not None and r[col_s] is not None]
        cand = np.array([b[1] for b in both], dtype=float)
        served = np.array([b[2] for b in both], dtype=float)
        ratio = paired_ratio(cand, served, [b[0] for b in both], stat) if both else None
        limit = policy.values.get(key)
        row = {"name": name, "what": what, "policy_key": key, "limit": limit, "pairs": len(both),
               "candidate": _side(cand, stat), "served": _side(served, stat),
               "ratio": ratio.value if ratio else None, "ci_low": ratio.lo if ratio else None,
               "ci_high": ratio.hi if ratio else None,
               "recorded": {"candidate": sum(r[col_c] is not None for r in rows),
                            "served": sum(r[col_s] is not None for r in rows)}}
        row["verdict"] = judge_ratio(ratio, limit, len(both))
        row["reason"] = _reason(row)
        out["metrics"].append(row)
    return out


def _reason(row: dict) -> str:
    name, what, key, limit, n = row["name"], row["what"], row["policy_key"], row["limit"], row["pairs"]
    c, s = row["candidate"], row["served"]
    if row["verdict"] == MISSING:
        rec = row["recorded"]
        return (f"guardrail {what}: not recorded on both answers of any pair (candidate on {rec['candidate']}, "
                f"served on {rec['served']})" + ("; log the served turn's metadata.cost_usd" if name == "cost_mean"
                                                  and not rec["served"] else ""))
    numbers = (f"{what} {_fmt(name, c['value'])} on the candidate vs {_fmt(name, s['value'])} served over {n} pairs")
    if row["ratio"] is None:
        return (f"guardrail {what}: {numbers}; insufficient data for a ratio (fewer than {MIN_PAIRS} pairs with "
                f"both recorded, or the served side is zero)")
    ratio = f"ratio {row['ratio']:.2f} (95% CI {row['ci_low']:.2f} to {row['ci_high']:.2f})"
    if row["verdict"] == NOT_JUDGED:
        return f"guardrail {what}: {numbers}, {ratio}; no limit ({key}: null)"
    if row["verdict"] == WORSE:
        return f"guardrail breach — {numbers}, {ratio}: the whole interval is above {limit:.2f} ({key})"
    if row["verdict"] == PASS:
        return f"guardrail {what}: {numbers}, {ratio} <= {limit:.2f} ({key})"
    return (f"guardrail {what}: {numbers}, {ratio} is above {limit:.2f} ({key}) but the interval reaches below "
            f"it: not shown within the limit")


def cheaper_at_equal_quality(guardrails: dict) -> str | None:
    """The ship reason when the candidate costs clearly less (the cost ratio's interval is below 1)."""
    cost = next((m for m in guardrails["metrics"] if m["name"] == "cost_mean"), None)
    if not cost or cost["ci_high"] is None or cost["ci_high"] >= 1:
        return None
    c, s = cost["candidate"], cost["served"]
    return (f"ship: cheaper at equal quality — mean cost per answer {_fmt('cost', c['value'])} vs "
            f"{_fmt('cost', s['value'])} served over {cost['pairs']} pairs, ratio {cost['ratio']:.2f} (95% CI "
            f"{cost['ci_low']:.2f} to {cost['ci_high']:.2f}), saving {100 * (1 - cost['ratio']):.0f}% per answer, "
            f"with the quality evidence passing")
