"""Rates: Wilson, weighted (inclusion-probability) rates, differences, standardisation, lift."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ._base import Estimate, InsufficientData, as_1d_float, as_weights


def wilson(successes: float, n: float, z: float = 1.96) -> Estimate:
    """Wilson score interval for a proportion: ``(p, lo, hi)``.

    ``successes`` may be fractional (a tie counted as half a win) and ``n`` may be an effective
    sample size (Kish): the formula only needs ``p`` and ``n``. Unlike the Wald interval it stays
    inside [0, 1] and keeps its coverage near 0 and 1 and for small n.
    """
    if n <= 0:
        raise InsufficientData("no observations")
    if not 0 <= successes <= n:
        raise ValueError(f"successes ({successes}) must be within [0, n={n}]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # At p = 0 (or 1) the bound is exactly 0 (or 1); rounding must not push it past.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, lo, hi)


def kish_n_eff(weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (equals n when all weights are equal)."""
    w = as_1d_float(weights, "weights")
    if w.size == 0:
        return 0.0
    return float(w.sum() ** 2 / np.square(w).sum())


def weighted_proportion(values: Any, weights: Any = None, z: float = 1.96) -> Estimate:
    """A rate over a weighted sample, e.g. labelled items weighted by 1 / inclusion probability.

    Estimate: the Horvitz-Thompson ratio (Hajek) ``sum(w*y) / sum(w)``. Interval: Wilson at the
    Kish effective sample size, which widens the interval by the design effect of unequal
    weights (and is exactly Wilson when the weights are equal). ``values`` in [0, 1]
    (0.5 = partially correct is allowed).
    """
    y = as_1d_float(values, "values")
    if y.size == 0:
        raise InsufficientData("no labelled items")
    if np.any((y < 0) | (y > 1)):
        raise ValueError("values must lie in [0, 1]")
    w = as_weights(weights, y.size)
    p = float(np.dot(w, y) / w.sum())
    n_eff = kish_n_eff(w)
    est = wilson(min(max(p * n_eff, 0.0), n_eff), n_eff, z)
    return Estimate(p, est.lo, est.hi)


def diff_proportions(x1: float, n1: float, x2: float, n2: float, z: float = 1.96) -> Estimate:
    """``p1 - p2`` with Newcombe's hybrid score interval (his method 10, from two Wilson intervals).

    Good coverage at small n and near 0/1, where the Wald difference interval fails; used to
    compare a candidate's rate with a baseline's (A/B, critical failure modes).
    """
    p1, l1, u1 = wilson(x1, n1, z)
    p2, l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Estimate(d, lo, hi)


def standardise_rate(
    rates_by_stratum: Mapping[Any, float],
    n_by_stratum: Mapping[Any, float],
    reference_mix: Mapping[Any, float],
    z: float = 1.96,
) -> Estimate:
    """Direct standardisation: the rate this population would have with the reference mix.

    ``sum_s m_s * p_s`` with ``m`` the reference shares (normalised to sum to 1), so a change in
    traffic mix (sources, intents) is not read as a change in quality. The interval is Wilson at
    the Kish effective n of the standardisation weights, ``1 / sum(m_s^2 / n_s)``: each item of
    stratum s weighs ``m_s / n_s``, so this is :func:`weighted_proportion` over the items. It
    ignores the between-stratum spread of the rates, hence is slightly conservative. A stratum of
    the reference mix with no observations makes the rate undefined (raises InsufficientData).
    """
    total = sum(float(m) for m in reference_mix.values())
    if total <= 0 or any(float(m) < 0 for m in reference_mix.values()):
        raise ValueError("reference shares must be non-negative and not all zero")
    value = 0.0
    inv_n_eff = 0.0
    for stratum, share in reference_mix.items():
        m = float(share) / total
        if m == 0:
            continue
        n = float(n_by_stratum.get(stratum, 0))
        if n <= 0:
            raise InsufficientData(f"no observations in stratum {stratum!r} of the reference mix")
        p = float(rates_by_stratum[stratum])
        if not 0 <= p <= 1:
            raise ValueError(f"rate of stratum {stratum!r} is {p}, outside [0, 1]")
        value += m * p
        inv_n_eff += m * m / n
    n_eff = 1.0 / inv_n_eff
    value = min(max(value, 0.0), 1.0)
    est = wilson(value * n_eff, n_eff, z)
    return Estimate(value, est.lo, est.hi)


def lift(incorrect: Any, signal: Any, weights: Any = None, z: float = 1.96) -> Estimate:
    """``P(incorrect | signal) / P(incorrect)`` over labelled items, with a delta-method interval.

    Both rates are Hajek ratios over the same weighted sample (weights = 1 / inclusion
    probability). The interval is the delta method on the log scale with the linearised
    (influence-function) variance of ``log p1 - log p0``, which accounts for the two rates sharing
    items and for the weights; it is deterministic and O(n). ``exp`` brings it back, so it is
    asymmetric and stays positive. When no signalled item is incorrect the lift is 0 and the log
    scale is undefined: the upper bound then uses Wilson's upper bound of P(incorrect | signal)
    (at the signalled items' Kish n) over P(incorrect).
    """
    y = as_1d_float(incorrect, "incorrect")
    s = as_1d_float(signal, "signal")
    if s.size != y.size:
        raise ValueError("incorrect and signal must have the same length")
    if np.any((y < 0) | (y > 1)) or np.any((s != 0) & (s != 1)):
        raise ValueError("incorrect must lie in [0, 1] and signal must be 0/1")
    w = as_weights(weights, y.size)
    ws = w * s
    w_all, w_sig = w.sum(), ws.sum()
    if w_sig == 0:
        raise InsufficientData("no labelled item carries the signal")
    p0 = float(np.dot(w, y) / w_all)
    if p0 == 0:
        raise InsufficientData("no labelled item is incorrect")
    p1 = float(np.dot(ws, y) / w_sig)
    if p1 == 0:
        upper = wilson(0.0, kish_n_eff(ws[ws > 0]), z).hi
        return Estimate(0.0, 0.0, upper / p0)
    # Influence of item i on log p1 and on log p0 (ratio-estimator linearisation).
    infl = ws * (y - p1) / (w_sig * p1) - w * (y - p0) / (w_all * p0)
    n = y.size
    var = float(np.square(infl).sum()) * (n / (n - 1) if n > 1 else 1.0)
    est = p1 / p0
    se = math.sqrt(var)
    return Estimate(est, est * math.exp(-z * se), est * math.exp(z * se))
