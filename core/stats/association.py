"""Agreement and association: Cohen's kappa, Spearman's rho, AUC (each with a bootstrap interval).

Each statistic is written once for frequency-weighted data, evaluated on a block of rows of
weights at a time: identical items are merged into cells, the point estimate is the one-row case
weighted by the cells' sizes, and a bootstrap block is ``(resamples x cells)`` counts from
:mod:`core.stats.resampling`. Rank-based statistics sort the cells once; a resample only changes
the weights of the already-sorted tie groups.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._base import Estimate, InsufficientData, as_1d_float, as_weights, percentile_interval, z_for
from .resampling import DEFAULT_RESAMPLES, block_size, bootstrap_statistic, cell_counts, cells_of

# --- ranks -----------------------------------------------------------------------------------

class _TieGroups:
    """The sort of ``x`` once: tie groups in ascending order and each item's group."""

    def __init__(self, x: np.ndarray):
        order = np.argsort(x, kind="mergesort")
        xs = x[order]
        is_start = np.empty(x.size, dtype=bool)
        is_start[:1] = True
        is_start[1:] = xs[1:] != xs[:-1]
        self.order = order
        self.starts = np.flatnonzero(is_start)
        gid_sorted = np.cumsum(is_start) - 1
        self.gid = np.empty(x.size, dtype=np.int64)
        self.gid[order] = gid_sorted

    def group_sums(self, weights: np.ndarray) -> np.ndarray:
        """``(b, n)`` item weights -> ``(b, groups)`` weight per tie group."""
        return np.add.reduceat(weights[:, self.order], self.starts, axis=1)

    def midranks(self, weights: np.ndarray) -> np.ndarray:
        """Average ranks (1-based) of each item in the sample the weights describe.

        With integer counts this is exactly ``rankdata(method="average")`` of the expanded
        sample: a group holding W copies after ``before`` smaller ones spans ranks
        ``before + 1 .. before + W``, average ``before + (W + 1) / 2``.
        """
        g = self.group_sums(weights)
        before = np.cumsum(g, axis=1) - g
        return (before + (g + 1.0) / 2.0)[:, self.gid]


def rankdata(x: Any) -> np.ndarray:
    """Average ranks, 1-based, ties sharing the mean of their ranks (as scipy's default)."""
    arr = as_1d_float(x, "x")
    if arr.size == 0:
        return arr
    return _TieGroups(arr).midranks(np.ones((1, arr.size)))[0]


def _weighted_pearson_rows(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson correlation; NaN where a row has no spread."""
    tot = w.sum(axis=1, keepdims=True)
    ma = (w * a).sum(axis=1, keepdims=True) / tot
    mb = (w * b).sum(axis=1, keepdims=True) / tot
    da, db = a - ma, b - mb
    cov = (w * da * db).sum(axis=1)
    va = (w * da * da).sum(axis=1)
    vb = (w * db * db).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(va * vb)
    # Rows whose ranks are constant have va or vb equal to 0 up to rounding.
    flat = (va <= 1e-12 * (w * a * a).sum(axis=1)) | (vb <= 1e-12 * (w * b * b).sum(axis=1))
    r[flat] = np.nan
    return np.clip(r, -1.0, 1.0)


# --- Spearman --------------------------------------------------------------------------------

class _SpearmanCells:
    """(x, y) pairs merged into cells of identical pairs, both margins sorted once."""

    def __init__(self, x: Any, y: Any):
        xa, ya = as_1d_float(x, "x"), as_1d_float(y, "y")
        if xa.size != ya.size:
            raise ValueError("x and y must have the same length")
        if xa.size < 3:
            raise InsufficientData(f"{xa.size} pairs: Spearman's rho needs at least 3")
        _, self.mult, (cx, cy) = cells_of(xa, ya)
        self.gx, self.gy = _TieGroups(cx), _TieGroups(cy)

    def rows(self, w: np.ndarray) -> np.ndarray:
        return _weighted_pearson_rows(self.gx.midranks(w), self.gy.midranks(w), w)

    def value(self) -> float:
        rho = self.rows(self.mult[None, :].astype(float))[0]
        if not np.isfinite(rho):
            raise InsufficientData("x or y is constant: Spearman's rho is undefined")
        return float(rho)


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho with ties: Pearson's r of the average ranks (scipy.stats.spearmanr's value)."""
    return _SpearmanCells(x, y).value()


def spearman_bootstrap_ci(
    x: Any, y: Any, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, ci: float = 0.95
) -> Estimate:
    """Spearman's rho with a percentile bootstrap interval resampling (x, y) pairs.

    A resample repeats some pairs; the repeats are ties, ranked by average rank as in the
    expanded sample. Resamples whose x or y is constant are dropped. With few pairs (e.g. 8
    releases) the interval is wide and rough: that is the honest answer.
    """
    cells = _SpearmanCells(x, y)
    value = cells.value()
    lo, hi = bootstrap_statistic(cells.mult, cells.rows, n_resamples=n_resamples, seed=seed, ci=ci)
    return Estimate(value, lo, hi)


def spearman_fisher_ci(rho: float, n: int, ci: float = 0.95) -> Estimate:
    """Analytic interval for Spearman's rho: Fisher's z with Bonett & Wright's (2000) variance
    ``(1 + rho^2 / 2) / (n - 3)``. Reproduces e.g. rho = 0.8 over 10 releases -> 0.24 .. 0.96."""
    if n < 4:
        raise InsufficientData(f"{n} pairs: the Fisher interval needs at least 4")
    r = min(max(rho, -0.999999), 0.999999)
    se = math.sqrt((1.0 + r * r / 2.0) / (n - 3))
    zr, zq = math.atanh(r), z_for(ci)
    return Estimate(rho, math.tanh(zr - zq * se), math.tanh(zr + zq * se))


# --- AUC -------------------------------------------------------------------------------------

class _AucCells:
    """Each class's items merged into cells of equal (score, weight), sorted by score once.

    A row of cell counts per class gives each class's weight per distinct score (``P`` for the
    positives' scores, ``Q`` for the negatives'); the negatives' cumulative weight read at each
    positive score gives the weight below it and tied with it.
    """

    def __init__(self, scores: Any, labels: Any, weights: Any):
        s = as_1d_float(scores, "scores")
        lab = np.asarray(labels)
        if lab.shape != s.shape:
            raise ValueError("scores and labels must have the same length")
        if not np.all(np.isin(lab, [0, 1])):
            raise ValueError("labels must be 0/1 or booleans")
        pos = lab.astype(bool)
        w = as_weights(weights, s.size)
        n_pos = int(pos.sum())
        if n_pos == 0 or n_pos == s.size:
            raise InsufficientData("AUC needs items of both classes")
        # np.unique sorts the (score, weight) rows, so each score's cells are contiguous.
        _, self.mult_p, (sp, self.wp) = cells_of(s[pos], w[pos])
        _, self.mult_n, (sn, self.wn) = cells_of(s[~pos], w[~pos])
        self.starts_p = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
        self.starts_n = np.flatnonzero(np.r_[True, sn[1:] != sn[:-1]])
        scores_p, scores_n = sp[self.starts_p], sn[self.starts_n]
        self.below = np.searchsorted(scores_n, scores_p, side="left")
        self.upto = np.searchsorted(scores_n, scores_p, side="right")

    @staticmethod
    def _per_score(counts: np.ndarray, w: np.ndarray, starts: np.ndarray) -> np.ndarray:
        # Skipped when they are no-ops (unit weights, one cell per score): they are whole passes.
        if not np.all(w == 1.0):
            counts = counts * w
        if starts.size != counts.shape[1]:
            counts = np.add.reduceat(counts, starts, axis=1)
        return counts

    def rows(self, counts_p: np.ndarray, counts_n: np.ndarray) -> np.ndarray:
        p = self._per_score(counts_p, self.wp, self.starts_p)
        q = self._per_score(counts_n, self.wn, self.starts_n)
        cum = np.zeros((q.shape[0], q.shape[1] + 1), dtype=q.dtype)
        np.cumsum(q, axis=1, out=cum[:, 1:])
        # below + half the ties = (weight below + weight up to and including the score) / 2
        placement = cum[:, self.below] + cum[:, self.upto]
        num = 0.5 * np.einsum("ij,ij->i", p, placement, dtype=float)
        return num / (p.sum(axis=1, dtype=float) * cum[:, -1])

    def value(self) -> float:
        return float(self.rows(self.mult_p[None, :], self.mult_n[None, :])[0])


def auc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting half.

    That is the Mann-Whitney U of the positives divided by ``n_pos * n_neg``. Labels: 1/True is
    the positive class (e.g. "incorrect"); a higher score should mean "more likely positive"
    (pass ``-score`` for a quality score). Optional weights (1 / inclusion probability) weigh each
    pair of items by the product of their weights.
    """
    return _AucCells(scores, labels, weights).value()


def auc_bootstrap_ci(
    scores: Any,
    labels: Any,
    weights: Any = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    ci: float = 0.95,
) -> Estimate:
    """AUC with a percentile bootstrap interval, stratified by class.

    Positives and negatives are resampled separately (each keeps its count), as pROC does by
    default and as ``scipy.stats.bootstrap`` does for two independent samples; so no resample
    lacks a class. Items keep their weights.
    """
    cells = _AucCells(scores, labels, weights)
    value = cells.value()
    if n_resamples < 100:
        raise ValueError("use at least 100 resamples for a percentile interval")
    rng = np.random.default_rng(seed)
    per_block = min(block_size(cells.mult_p), block_size(cells.mult_n))
    out = []
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        out.append(cells.rows(cell_counts(rng, cells.mult_p, b), cell_counts(rng, cells.mult_n, b)))
        done += b
    lo, hi = percentile_interval(np.concatenate(out), ci, min_valid=n_resamples // 2)
    return Estimate(value, lo, hi)


# --- Cohen's kappa ---------------------------------------------------------------------------

class _KappaCells:
    """Rated items merged into the k x k cells of (label by a, label by b)."""

    def __init__(self, a: Any, b: Any):
        la, lb = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
        if la.shape != lb.shape or la.ndim != 1:
            raise ValueError("a and b must be one-dimensional and of the same length")
        if la.size == 0:
            raise InsufficientData("no rated items")
        _, codes = np.unique(np.concatenate([la, lb]).astype(str), return_inverse=True)
        codes = codes.ravel()
        self.k = int(codes.max()) + 1
        _, self.mult, (self.cell,) = cells_of(codes[: la.size] * self.k + codes[la.size:])
        self.cell = self.cell.astype(np.int64)

    def rows(self, w: np.ndarray) -> np.ndarray:
        k2 = self.k * self.k
        r = w.shape[0]
        flat = self.cell[None, :] + (np.arange(r) * k2)[:, None]
        conf = np.bincount(flat.ravel(), weights=w.ravel(), minlength=r * k2).reshape(r, self.k, self.k)
        n = conf.sum(axis=(1, 2))
        po = np.trace(conf, axis1=1, axis2=2) / n
        pe = (conf.sum(axis=2) * conf.sum(axis=1)).sum(axis=1) / (n * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = (po - pe) / (1.0 - pe)
        kappa[np.isclose(pe, 1.0)] = np.nan
        return kappa

    def value(self) -> float:
        kappa = self.rows(self.mult[None, :].astype(float))[0]
        if not np.isfinite(kappa):
            raise InsufficientData("both raters use one and the same label: kappa is undefined")
        return float(kappa)


def cohen_kappa(a: Any, b: Any) -> float:
    """Cohen's kappa of two raters over categorical labels (any values, compared as strings).

    ``(p_o - p_e) / (1 - p_e)``: observed agreement against the agreement expected from each
    rater's own label frequencies. Undefined (InsufficientData) when both raters always give the
    same single label.
    """
    return _KappaCells(a, b).value()


def cohen_kappa_bootstrap_ci(
    a: Any, b: Any, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, ci: float = 0.95
) -> Estimate:
    """Cohen's kappa with a percentile bootstrap interval resampling rated items."""
    cells = _KappaCells(a, b)
    value = cells.value()
    lo, hi = bootstrap_statistic(cells.mult, cells.rows, n_resamples=n_resamples, seed=seed, ci=ci)
    return Estimate(value, lo, hi)
