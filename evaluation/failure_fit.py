"""The failure model's arithmetic, pure (numpy, core.stats; no Django): the fit, held-out
predictions, Brier and AUC with intervals, the reliability table. services.failure_model runs it
on the labels; benchmarks/sim_failure_model.py on simulated ones."""
from __future__ import annotations

import numpy as np

from core import stats

RESAMPLES = 1000
BINS = 10


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """(beta with the intercept first, sandwich covariance). Weights are scaled to mean 1, so the
    penalty l2 weighs the same against any total weight; the intercept is not penalised."""
    X = np.column_stack([np.ones(len(y)), x])
    wn = w * (len(w) / w.sum())
    ridge = np.full(X.shape[1], float(l2))
    ridge[0] = 0.0
    beta, mu, hess = stats.fit_logistic(X, y, ridge, weights=wn)
    score = X * (wn * (y - mu))[:, None]
    inv = np.linalg.inv(hess)
    return beta, inv @ (score.T @ score) @ inv


def predict(beta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(beta[0] + x @ beta[1:])))


def folds(y: np.ndarray, k: int) -> np.ndarray:
    """Fold of each turn, stratified by verdict (deterministic)."""
    rng = np.random.default_rng(0)
    fold = np.empty(y.size, dtype=int)
    for level in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == level))
        fold[idx] = np.arange(idx.size) % k
    return fold


def brier_ci(pred: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray) -> dict[str, dict]:
    """Weighted Brier score of each prediction with a percentile bootstrap interval, and the
    paired difference fitted - stated (negative: the fitted model is better) on the same resamples."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, y.size, size=(RESAMPLES, y.size))
    out, samples = {}, {}
    for name, p in pred.items():
        err = w * (p - y) ** 2
        samples[name] = err[idx].sum(axis=1) / w[idx].sum(axis=1)
        lo, hi = np.percentile(samples[name], [2.5, 97.5])
        out[name] = {"brier": float(err.sum() / w.sum()), "ci_low": float(lo), "ci_high": float(hi), "n": int(y.size)}
    diff = samples["fitted"] - samples["stated"]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    out["difference"] = {"brier": out["fitted"]["brier"] - out["stated"]["brier"], "ci_low": float(lo),
                         "ci_high": float(hi), "n": int(y.size)}
    return out


def auc(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict:
    keep = (y == 0) | (y == 1)
    n = int(keep.sum())
    est = stats.guarded(n, 2, stats.auc_bootstrap_ci, p[keep], y[keep].astype(int), w[keep])
    return stats.summary(est, n, key="auc")


def reliability(p: np.ndarray, y: np.ndarray, w: np.ndarray, bins: int = BINS) -> list[dict]:
    """Binned predicted vs observed (weighted), with n and the observed rate's interval per bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        on = which == b
        if not on.any():
            continue
        obs = stats.summary(stats.guarded(int(on.sum()), 1, stats.weighted_proportion, y[on], w[on]), int(on.sum()))
        rows.append({"bin": [round(edges[b], 2), round(edges[b + 1], 2)], "n": int(on.sum()),
                     "predicted": float(np.average(p[on], weights=w[on])), "observed": obs.get("rate"),
                     "ci_low": obs.get("ci_low"), "ci_high": obs.get("ci_high")})
    return rows




def held_out(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, k: int) -> np.ndarray:
    """Each turn's prediction by the model fitted on the other k - 1 folds."""
    fold = folds(y, k)
    out = np.empty(y.size)
    for i in range(k):
        test = fold == i
        beta, _ = fit(x[~test], y[~test], w[~test], l2)
        out[test] = predict(beta, x[test])
    return out
