"""What every estimator shares: the result type, the "no number without data" rule, quantiles."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Callable, NamedTuple, TypeVar

import numpy as np

T = TypeVar("T")

INSUFFICIENT_DATA = "insufficient_data"


class Estimate(NamedTuple):
    """A point estimate with the bounds of its interval; unpacks as ``value, lo, hi``."""

    value: float
    lo: float
    hi: float

    def as_dict(self, key: str = "value") -> dict[str, float]:
        return {key: self.value, "ci_low": self.lo, "ci_high": self.hi}


class InsufficientData(ValueError):
    """The data cannot define the number (no items, one class only, a constant variable...).

    Estimators raise it instead of returning NaN, so that a caller cannot print a number that
    means nothing; :func:`guarded` turns it into ``None``.
    """


def z_for(ci: float) -> float:
    """Two-sided standard-normal quantile for a confidence level (0.95 -> 1.95996...)."""
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    return NormalDist().inv_cdf(0.5 + ci / 2.0)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def guarded(n: int, min_n: int, compute: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``compute(*args, **kwargs)`` when there are at least ``min_n`` observations, else ``None``.

    Also ``None`` when the estimator itself finds the data insufficient (it raised
    :class:`InsufficientData`). Callers show ``None`` as "insufficient data", never as a number.
    """
    if n < min_n:
        return None
    try:
        return compute(*args, **kwargs)
    except InsufficientData:
        return None


def summary(estimate: Estimate | None, n: int, key: str = "rate") -> dict[str, Any]:
    """JSON-ready ``{key, ci_low, ci_high, n}``, or ``{n, status: "insufficient_data"}``."""
    if estimate is None:
        return {"n": n, "status": INSUFFICIENT_DATA}
    return {**estimate.as_dict(key), "n": n}


def percentile_interval(samples: np.ndarray, ci: float, min_valid: int) -> tuple[float, float]:
    """Percentile bootstrap interval over the finite resampled statistics.

    A resample can leave a statistic undefined (all resampled items in one class, a constant
    variable): those are dropped; if fewer than ``min_valid`` remain, the interval is refused.
    """
    finite = samples[np.isfinite(samples)]
    if finite.size < min_valid:
        raise InsufficientData(
            f"only {finite.size} of {samples.size} bootstrap resamples define the statistic"
        )
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def as_1d_float(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def as_weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_1d_float(weights, "weights")
    if w.size != n:
        raise ValueError(f"weights has {w.size} entries for {n} items")
    if np.any(w <= 0):
        raise ValueError("weights must be positive (1 / inclusion probability)")
    return w
