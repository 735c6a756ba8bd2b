"""Pairwise comparisons: win rates, their tests, many-comparison control, length control, and
how a judge compares with people.

Outcomes are scores from the candidate's side: 1 = candidate wins, 0 = candidate loses,
0.5 = tie (an ``inconsistent`` pair, whose two orders disagree, is a tie too: the caller maps it).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ._base import (
    Estimate,
    InsufficientData,
    as_1d_float,
    normal_two_sided_p,
    z_for,
)
from .association import cohen_kappa
from .proportions import wilson
from .resampling import DEFAULT_RESAMPLES, cluster_bootstrap_mean, cluster_codes


def _scores(outcomes: Any) -> np.ndarray:
    s = as_1d_float(outcomes, "outcomes")
    if not np.all(np.isin(s, (0.0, 0.5, 1.0))):
        raise ValueError("outcomes must be 1 (win), 0 (loss) or 0.5 (tie)")
    return s


def win_rate(
    outcomes: Any,
    clusters: Any = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    ci: float = 0.95,
) -> Estimate:
    """Win rate with ties as half a win, and its interval.

    When some conversation (``clusters``) gives more than one pair, the interval resamples whole
    conversations (:func:`cluster_bootstrap_mean`); when each gives one pair (or no clusters are
    given) it is Wilson's, with ties as half-successes, which is slightly conservative (a tie
    varies less than a coin flip).
    """
    s = _scores(outcomes)
    if s.size == 0:
        raise InsufficientData("no pairs")
    if clusters is not None:
        codes = cluster_codes(clusters, s.size)
        if np.bincount(codes).max() > 1:
            return cluster_bootstrap_mean(s, codes, n_resamples=n_resamples, seed=seed, ci=ci)
    return wilson(float(s.sum()), s.size, z_for(ci))


def decisive_win_rate(outcomes: Any, ci: float = 0.95) -> Estimate:
    """Wins / (wins + losses), ties left out, with a Wilson interval."""
    s = _scores(outcomes)
    wins, losses = int((s == 1).sum()), int((s == 0).sum())
    if wins + losses == 0:
        raise InsufficientData("no decisive pair")
    return wilson(wins, wins + losses, z_for(ci))


def tie_rate(outcomes: Any, ci: float = 0.95) -> Estimate:
    """Share of ties (inconsistent pairs included by the caller), with a Wilson interval."""
    s = _scores(outcomes)
    if s.size == 0:
        raise InsufficientData("no pairs")
    return wilson(int((s == 0.5).sum()), s.size, z_for(ci))


def _log_binom_cdf_half(k: int, n: int) -> float:
    """log P(X <= k) for X ~ Binomial(n, 1/2), summed exactly in log space."""
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))])
    i = np.arange(k + 1)
    log_terms = log_fact[n] - log_fact[i] - log_fact[n - i] - n * math.log(2.0)
    return float(np.logaddexp.reduce(log_terms))


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided binomial (sign) test of wins vs losses against 1/2.

    Equals ``scipy.stats.binomtest(wins, wins + losses).pvalue``: for p = 1/2 the distribution is
    symmetric, so the two-sided p is twice the smaller tail, capped at 1.
    """
    n = wins + losses
    if n == 0 or wins == losses:
        return 1.0
    return min(1.0, 2.0 * math.exp(_log_binom_cdf_half(min(wins, losses), n)))


def win_rate_pvalue(outcomes: Any, clusters: Any = None) -> float:
    """Two-sided p-value for "the win rate (ties as half) is 1/2".

    Ties carry no evidence either way under that hypothesis, so the test is on decisive pairs:
    - each conversation gives one pair (or no clusters): the **exact binomial sign test**;
    - otherwise a **cluster-robust normal (score) test**:
      ``z = sum(s - 1/2) / sqrt(sum_c (sum_{i in c} (s_i - 1/2))^2)``, the variance taken under
      the null from conversation totals; with one pair per conversation it is the normal
      approximation of the same sign test, ``(W - L) / sqrt(W + L)``.
    """
    s = _scores(outcomes)
    if s.size == 0:
        raise InsufficientData("no pairs")
    if clusters is not None:
        codes = cluster_codes(clusters, s.size)
        if np.bincount(codes).max() > 1:
            dev = np.bincount(codes, weights=s - 0.5)
            denom = math.sqrt(float(np.square(dev).sum()))
            if denom == 0:
                return 1.0
            return normal_two_sided_p(float(dev.sum()) / denom)
    return sign_test_p(int((s == 1).sum()), int((s == 0).sum()))


def benjamini_hochberg(pvalues: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input's order.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the sorted p-values, capped at 1; rejecting
    ``q <= alpha`` controls the false discovery rate at alpha (independent or positively
    dependent tests). NaN entries (a mode with no data) stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = ok.size
    order = ok[np.argsort(p[ok], kind="mergesort")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


# --- length-controlled win rate --------------------------------------------------------------

def _fit_logistic(
    x: np.ndarray, y: np.ndarray, ridge: np.ndarray, max_iter: int = 100, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton-Raphson for a logistic regression with soft labels and an L2 penalty.

    Minimises ``-sum w [y log mu + (1 - y) log(1 - mu)] + 1/2 sum(ridge * beta^2)`` (w: optional
    case weights, e.g. 1 / inclusion probability; 1 without); returns beta, the fitted mu and the
    penalised Hessian. Halving the step keeps every iteration downhill.
    """
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    beta = np.zeros(x.shape[1])

    def loss(b: np.ndarray) -> float:
        eta = x @ b
        # log(1 + e^eta) - y * eta is the soft-label log loss, written stably.
        return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + 0.5 * np.sum(ridge * b * b))

    current = loss(beta)
    for _ in range(max_iter):
        mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (mu - y)) + ridge * beta
        hess = (x * (w * mu * (1.0 - mu))[:, None]).T @ x + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            candidate = beta - t * step
            new = loss(candidate)
            if new <= current + 1e-12 or t < 1e-8:
                break
            t /= 2.0
        beta, previous, current = candidate, current, new
        if abs(previous - current) < 1e-12 * max(1.0, abs(current)) and np.max(np.abs(t * step)) < 1e-9:
            break
    mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
    hess = (x * (w * mu * (1.0 - mu))[:, None]).T @ x + np.diag(ridge)
    return beta, mu, hess


fit_logistic = _fit_logistic  # the public name (weighted fits outside this module)


def length_controlled_win_rate(
    outcomes: Any,
    len_diff: Any,
    clusters: Any = None,
    ci: float = 0.95,
    slope_ridge: float = 1.0,
) -> Estimate:
    """The win rate the candidate would have if its answers were as long as the served ones.

    As AlpacaEval 2's length-controlled win rate (Dubois et al. 2024, ``alpaca_eval``
    ``metrics/glm_winrate.py``): a logistic regression of the preference on
    ``tanh(len_diff / sd(len_diff))`` (the length difference in characters, candidate minus
    served, scaled by its standard deviation and squashed so a few huge differences do not
    dominate), read at a length difference of 0: ``LC = sigmoid(intercept)``. Ties are soft
    labels of 0.5 (AlpacaEval splits them into a half-win and a half-loss: the same log loss).
    Unlike AlpacaEval there is no per-instruction difficulty term and no regularisation towards
    gamed baselines (neither exists here); a weak L2 penalty on the slope only
    (``slope_ridge``, a N(0, 1) prior) keeps the fit finite when length separates the outcomes.

    Interval: the delta method on the intercept with a sandwich (robust) covariance, clustered
    by conversation when ``clusters`` is given; the sandwich is right for soft labels, which are
    not Bernoulli. If every outcome is the same, the regression has no finite fit and the plain
    rate with its Wilson interval is returned (there is no length effect to remove).
    """
    y = _scores(outcomes)
    d = as_1d_float(len_diff, "len_diff")
    if d.size != y.size:
        raise ValueError("outcomes and len_diff must have the same length")
    if y.size < 2:
        raise InsufficientData(f"{y.size} pair(s): a regression needs more")
    if np.all(y == y[0]):
        return wilson(float(y.sum()), y.size, z_for(ci))
    intercept, se = _lc_fit(y, d, clusters, slope_ridge)
    zq = z_for(ci)

    def sigmoid(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t))

    return Estimate(sigmoid(intercept), sigmoid(intercept - zq * se), sigmoid(intercept + zq * se))


def _lc_fit(y: np.ndarray, d: np.ndarray, clusters: Any = None, slope_ridge: float = 1.0) -> tuple[float, float]:
    """The length-controlled fit's intercept (logit of the rate at equal lengths) and its sandwich
    standard error, clustered when ``clusters`` is given."""
    sd = float(d.std(ddof=1))
    feature = np.tanh(d / sd) if sd > 0 else np.zeros_like(d)
    x = np.column_stack([np.ones_like(feature), feature])
    beta, mu, hess = _fit_logistic(x, y, np.array([0.0, slope_ridge]))
    scores = x * (y - mu)[:, None]
    if clusters is not None:
        codes = cluster_codes(clusters, y.size)
        k = int(codes.max()) + 1
        scores = np.column_stack([np.bincount(codes, weights=scores[:, j], minlength=k) for j in range(2)])
    k = scores.shape[0]
    meat = scores.T @ scores * (k / (k - 1) if k > 1 else 1.0)
    bread = np.linalg.inv(hess)
    cov = bread @ meat @ bread
    return float(beta[0]), math.sqrt(max(cov[0, 0], 0.0))


# --- a judge against people ------------------------------------------------------------------

VERDICTS = ("a", "b", "tie")


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def pairwise_calibration(
    judge: Sequence[str | None],
    human: Sequence[str],
    len_a: Sequence[int],
    len_b: Sequence[int],
    judge_swapped: Sequence[str | None] | None = None,
    ci: float = 0.95,
) -> dict[str, Any]:
    """How a pairwise judge's verdicts ("a" | "b" | "tie") compare with human ones.

    ``judge`` are the verdicts with A shown first; ``judge_swapped`` (optional) those with B shown
    first, already mapped back to the original labels ("a" still means answer A won). With both
    orders the judge's final verdict is the common one, and a tie when the orders disagree (an
    inconsistent pair). ``None`` marks a missing verdict (malformed output): such pairs are left
    out and counted in ``missing``.

    Returns the keys of ``judge_calibrate --json``:
    ``pairs``; ``agreement`` (final verdict == human, ties included, over all pairs);
    ``agreement_decisive`` (over pairs where the human picked a winner; a judge tie is a miss:
    that is "agreement on pairs with a clear winner");
    ``cohen_kappa`` (three categories); ``swap_consistency`` (share of pairs whose two orders
    agree; None with one order); ``first_position_rate`` (share of the judge's decisive picks, in
    every order asked, that chose the answer shown first: 0.5 is unbiased);
    ``longer_preferred_rate`` / ``human_longer_preferred_rate`` (share of decisive picks on pairs of
    unequal length that chose the longer answer, in characters). Plus ``missing``, the
    denominators in ``n`` and Wilson intervals in ``intervals`` (every rate carries its n), and
    ``agreement_both_decisive`` (pairs where neither the human nor the judge said tie: the MT-Bench
    paper's "without ties" setup, the highest of the three agreement figures).
    Rates whose denominator is 0 are None.
    """
    n_all = len(human)
    if not (len(judge) == len(len_a) == len(len_b) == n_all):
        raise ValueError("judge, human, len_a and len_b must have the same length")
    if judge_swapped is not None and len(judge_swapped) != n_all:
        raise ValueError("judge_swapped must have one verdict per pair")
    for v in list(human) + [v for v in judge if v is not None] + [
        v for v in (judge_swapped or []) if v is not None
    ]:
        if v not in VERDICTS:
            raise ValueError(f"verdicts must be one of {VERDICTS}, got {v!r}")

    keep = [
        i for i in range(n_all)
        if judge[i] is not None and (judge_swapped is None or judge_swapped[i] is not None)
    ]
    h = np.array([human[i] for i in keep], dtype=object)
    first = np.array([judge[i] for i in keep], dtype=object)
    la = np.array([len_a[i] for i in keep])
    lb = np.array([len_b[i] for i in keep])
    if judge_swapped is None:
        final = first
        consistent = None
        shown_first_wins = int((first == "a").sum())
        decisive_asks = int((first != "tie").sum())
    else:
        second = np.array([judge_swapped[i] for i in keep], dtype=object)
        same = first == second
        final = np.where(same, first, "tie")
        consistent = int(same.sum())
        # In the swapped order the answer shown first is B.
        shown_first_wins = int((first == "a").sum() + (second == "b").sum())
        decisive_asks = int((first != "tie").sum() + (second != "tie").sum())

    n = len(keep)
    human_decisive = h != "tie"
    both_decisive = human_decisive & (final != "tie")
    longer = np.where(la > lb, "a", np.where(lb > la, "b", ""))
    unequal = longer != ""
    judge_dec = (final != "tie") & unequal
    human_dec = human_decisive & unequal

    counts = {
        "agreement": (int((final == h).sum()), n),
        "agreement_decisive": (int((final == h)[human_decisive].sum()), int(human_decisive.sum())),
        "agreement_both_decisive": (int((final == h)[both_decisive].sum()), int(both_decisive.sum())),
        "swap_consistency": (consistent, n) if consistent is not None else (None, 0),
        "first_position_rate": (shown_first_wins, decisive_asks),
        "longer_preferred_rate": (int((final == longer)[judge_dec].sum()), int(judge_dec.sum())),
        "human_longer_preferred_rate": (int((h == longer)[human_dec].sum()), int(human_dec.sum())),
    }
    zq = z_for(ci)
    rates: dict[str, float | None] = {}
    intervals: dict[str, list[float] | None] = {}
    for key, (num, den) in counts.items():
        if num is None or den == 0:
            rates[key], intervals[key] = None, None
            continue
        est = wilson(num, den, zq)
        rates[key], intervals[key] = est.value, [est.lo, est.hi]
    try:
        kappa: float | None = cohen_kappa(final, h) if n else None
    except InsufficientData:
        kappa = None
    return {
        "pairs": n,
        "agreement": rates["agreement"],
        "agreement_decisive": rates["agreement_decisive"],
        "cohen_kappa": kappa,
        "swap_consistency": rates["swap_consistency"],
        "first_position_rate": rates["first_position_rate"],
        "longer_preferred_rate": rates["longer_preferred_rate"],
        "human_longer_preferred_rate": rates["human_longer_preferred_rate"],
        "agreement_both_decisive": rates["agreement_both_decisive"],
        "missing": n_all - n,
        "n": {key: den for key, (_, den) in counts.items()},
        "intervals": intervals,
    }
