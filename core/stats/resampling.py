"""Bootstrap by frequency weights: every resample is a row of counts, every statistic a matrix op.

A resample of n units drawn with replacement is fully described by how many times each unit was
drawn. Units that are identical for the statistic (same score and label, same conversation total
and size, same pair of ratings) are merged into *cells* first; a block of resamples is then a
``(resamples x cells)`` matrix of counts, and a statistic that accepts frequency weights (a ratio
of sums, a weighted AUC, weighted ranks) is evaluated for the whole block with array operations.
No Python loop runs over items or over resamples, only over blocks of about a million counts.

Counts come either from a multinomial over the cells (few cells: a win/loss/tie score, a
0/0.5/1 grade, a binary flag; cost ~ cells per resample) or from drawing unit indices and
counting them with one ``np.bincount`` (many cells: continuous scores; cost ~ units per
resample). Both give exactly the distribution of with-replacement resampling.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._base import Estimate, InsufficientData, as_1d_float, percentile_interval

BLOCK_CELLS = 1_000_000  # counts per block: 8 MB of float64, plus the statistic's temporaries
DEFAULT_RESAMPLES = 1000
# Multinomial draws cost ~6x a uniform index draw + count, per cell: below 1 cell per 8 units,
# drawing counts of cells directly is cheaper than drawing units.
MULTINOMIAL_MAX_CELLS_PER_UNIT = 1 / 8


def cells_of(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Merge identical units: returns (cell of each unit, units per cell, each key per cell).

    Cells come out sorted by the first key, then the next. Each key is coded on its own and the
    codes are combined into one int64, because ``np.unique(axis=0)`` sorts rows as structured
    values, ~10x slower.
    """
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    uniques = []
    for key in keys:
        uniq, code = np.unique(key, return_inverse=True)
        combined = combined * uniq.size + code.ravel()
        uniques.append((uniq, uniq.size))
    cell_code, inverse, mult = np.unique(combined, return_inverse=True, return_counts=True)
    per_cell = []
    rest = cell_code
    for uniq, size in reversed(uniques):
        per_cell.append(uniq[rest % size])
        rest = rest // size
    return inverse.ravel(), mult, per_cell[::-1]


def cell_counts(rng: np.random.Generator, multiplicity: np.ndarray, b: int) -> np.ndarray:
    """``(b, cells)`` int64 counts of ``b`` resamples of the ``sum(multiplicity)`` units."""
    n = int(multiplicity.sum())
    cells = multiplicity.size
    if cells <= MULTINOMIAL_MAX_CELLS_PER_UNIT * n:
        return rng.multinomial(n, multiplicity / n, size=b)
    # int32 indices (a block has < 2**31 counts) halve the memory traffic of the draw.
    idx = rng.integers(0, n, size=(b, n), dtype=np.int32)
    if cells != n:
        idx = np.repeat(np.arange(cells, dtype=np.int32), multiplicity)[idx]
    idx += (np.arange(b, dtype=np.int32) * cells)[:, None]
    return np.bincount(idx.ravel(), minlength=b * cells).reshape(b, cells)


def block_size(multiplicity: np.ndarray) -> int:
    """Resamples per block so that a block's largest temporary holds about BLOCK_CELLS entries."""
    n = int(multiplicity.sum())
    cells = multiplicity.size
    width = cells if cells <= MULTINOMIAL_MAX_CELLS_PER_UNIT * n else n
    return max(1, BLOCK_CELLS // max(width, 1))


def bootstrap_statistic(
    multiplicity: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(counts_block) -> values`` over resampled units.

    ``multiplicity[c]`` is the number of units in cell c; the statistic receives ``(b, cells)``
    counts. Deterministic for a given seed.
    """
    if n_resamples < 100:
        raise ValueError("use at least 100 resamples for a percentile interval")
    rng = np.random.default_rng(seed)
    per_block = block_size(multiplicity)
    values = []
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        values.append(statistic(cell_counts(rng, multiplicity, b)))
        done += b
    return percentile_interval(np.concatenate(values), ci, min_valid=n_resamples // 2)


def cluster_codes(clusters: Any, n: int) -> np.ndarray:
    """Integer codes 0..K-1 for arbitrary cluster labels (conversation ids, strings or ints)."""
    labels = np.asarray(clusters)
    if labels.shape != (n,):
        raise ValueError(f"clusters must have one label per value ({n}), got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1].ravel()


def cluster_bootstrap_mean(
    values: Any,
    clusters: Any,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    ci: float = 0.95,
) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap interval that resamples whole clusters.

    Items of one conversation are correlated; resampling conversations (with all their items)
    keeps that correlation in every resample, so the interval is not too narrow. A cluster is
    summarised by its sum and size (two ``bincount``s); clusters with the same sum and size are
    one cell; each resample's mean is ``counts @ sums / counts @ sizes`` (or, with many distinct
    clusters, the drawn clusters' sums gathered and added).
    """
    v = as_1d_float(values, "values")
    codes = cluster_codes(clusters, v.size)
    k = int(codes.max()) + 1 if codes.size else 0
    if k < 2:
        raise InsufficientData(f"{k} cluster(s): a cluster bootstrap needs at least 2")
    sums = np.bincount(codes, weights=v, minlength=k)
    sizes = np.bincount(codes, minlength=k).astype(float)
    value = float(sums.sum() / sizes.sum())
    _, mult, (cell_sum, cell_size) = cells_of(sums, sizes)
    if mult.size <= MULTINOMIAL_MAX_CELLS_PER_UNIT * k:
        lo, hi = bootstrap_statistic(
            mult,
            lambda counts: (counts @ cell_sum) / (counts @ cell_size),
            n_resamples=n_resamples,
            seed=seed,
            ci=ci,
        )
        return Estimate(value, lo, hi)
    # Many distinct clusters: gathering the drawn clusters' sums is one pass, cheaper than
    # counting the draws and multiplying.
    rng = np.random.default_rng(seed)
    per_block = max(1, BLOCK_CELLS // k)
    means = []
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        idx = rng.integers(0, k, size=(b, k), dtype=np.int32)
        means.append(sums[idx].sum(axis=1) / sizes[idx].sum(axis=1))
        done += b
    lo, hi = percentile_interval(np.concatenate(means), ci, min_valid=n_resamples // 2)
    return Estimate(value, lo, hi)
