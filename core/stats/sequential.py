"""Anytime-valid intervals and the exact paired tests the release gate decides on.

A fixed-horizon 95 % interval read every day and acted on at the first "better" is wrong far more
than 5 % of the time. A *confidence sequence* holds at every sample size at once: the chance that
it ever excludes the truth, however often it is read, is at most alpha. Here it is Robbins'
normal-mixture boundary (Howard, Ramdas, McAuliffe & Sekhon, Ann. Statist. 2021) with the variance
estimated from the data: the *asymptotic confidence sequence* of Waudby-Smith, Arnold, Wu, Howard
& Ramdas (Ann. Statist. 2024, eq. 2.6)::

    estimate +/- se * c(t),   c(t) = sqrt((t + r) / t * log((t + r) / (r * alpha**2)))

with ``se`` the usual (cluster-robust) standard error of the estimate after ``t`` independent
units (conversations) and ``r`` the unit count around which the boundary is tightest. ``c(t)``
is about 2.6-3.2 where a fixed interval uses 1.96: the price of reading it any number of times.

Win rates on decisive pairs (wins / (wins + losses)) are ratios; their sequences are found by
inverting the linear test ``mean(win - p * decisive) = 0`` (Fieller): every p the test does not
reject at the boundary. The same inversion takes the prediction-powered estimate (judge verdicts
on every pair plus the humans' correction on the audited ones; Angelopoulos, Bates, Fannjiang,
Jordan & Zrnic, Science 2023): each part adds its mean and its variance.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ._base import Estimate, InsufficientData, as_1d_float
from .pairwise import _lc_fit, _log_binom_cdf_half
from .resampling import cluster_codes

ALPHA = 0.05
# The boundary is tightest around this many units: about a week of one judged pair per
# conversation at 150 a day. Away from it the boundary widens slowly (log t).
T_OPT = 1000


def mixture_r(t_opt: float = T_OPT, alpha: float = ALPHA) -> float:
    """The mixture's precision, in units, that makes the boundary tightest at ``t_opt`` units
    (Waudby-Smith et al. 2024: ``rho**2 = (-2 log a + log(1 - 2 log a)) / t_opt``, ``r = 1 / rho**2``)."""
    la = -2.0 * math.log(alpha)
    return t_opt / (la + math.log(1.0 + la))


def mixture_multiplier(t: float, alpha: float = ALPHA, t_opt: float = T_OPT) -> float:
    """How many standard errors the two-sided confidence sequence spans after ``t`` units."""
    if t <= 0:
        raise InsufficientData("no units")
    r = mixture_r(t_opt, alpha)
    return math.sqrt((t + r) / t * math.log((t + r) / (r * alpha * alpha)))


def _cluster_totals(values: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=k)


def _part(a: Any, b: Any, clusters: Any) -> tuple[float, float, float, float, float, float, int]:
    """Sums of a part of the estimating function ``a - p b`` and the cluster-centred cross products
    that make its variance a quadratic in p: (A/n, B/n, Suu, Suv, Svv, n, units), all / n**2."""
    a = as_1d_float(a, "a")
    b = as_1d_float(b, "b")
    n = a.size
    if n == 0:
        raise InsufficientData("no pairs")
    codes = cluster_codes(clusters, n) if clusters is not None else np.arange(n)
    k = int(codes.max()) + 1
    ta, tb = _cluster_totals(a, codes, k), _cluster_totals(b, codes, k)
    size = np.bincount(codes, minlength=k).astype(float)
    u = ta - size * a.mean()
    v = tb - size * b.mean()
    scale = (k / (k - 1) if k > 1 else 1.0) / (n * n)  # the usual small-sample factor of the sandwich
    return (a.mean(), b.mean(), float(u @ u) * scale, float(u @ v) * scale, float(v @ v) * scale, n, k)


def ratio_sequence(parts: Sequence[tuple[Any, Any, Any]], c: float) -> Estimate:
    """The set of p with ``|sum mean(a - p b)| <= c * sd(p)`` over independent parts (a, b, clusters):
    the ratio ``sum mean(a) / sum mean(b)`` and its interval at ``c`` standard errors (Fieller).

    ``sd(p)``: the cluster-robust standard error of the sum, but never below the one a binomial
    with success rate p would have on the first part's decisive units (``b``), as Wilson's interval
    does: a sample of wins only has no empirical variance, and a sequence of width 0 after three
    wins would be absurd. When the denominator is not yet clearly above 0 (few decisive pairs early
    in the sequence) the set reaches the ends: [0, 1] at worst."""
    sums = [_part(*p) for p in parts]
    ma = sum(s[0] for s in sums)
    mb = sum(s[1] for s in sums)
    suu = sum(s[2] for s in sums)
    suv = sum(s[3] for s in sums)
    svv = sum(s[4] for s in sums)
    if mb <= 0:
        raise InsufficientData("no decisive pair")
    w = sums[0][1] / sums[0][5]  # the first part's decisive units per unit, over n: the binomial floor
    point = min(1.0, max(0.0, ma / mb))
    c2 = c * c
    # |ma - p mb| <= c sd(p) with sd^2 = max(robust, binomial): p is in the sequence when either
    # variance accepts it. Each is a quadratic q2 p^2 - 2 q1 p + q0 <= 0 that holds at the point
    # estimate, so the sequence is the hull of the two intervals (Fieller's, Wilson's).
    lo, hi = point, point
    for q2, q1, q0 in ((mb * mb - c2 * svv, ma * mb - c2 * suv, ma * ma - c2 * suu),
                       (mb * mb + c2 * w, ma * mb + c2 * w / 2, ma * ma)):
        if q2 <= 0:  # the decisive share is not yet clearly above 0: every rate is still possible
            return Estimate(float(point), 0.0, 1.0)
        root = math.sqrt(max(q1 * q1 - q2 * q0, 0.0))
        lo, hi = min(lo, (q1 - root) / q2), max(hi, (q1 + root) / q2)
    return Estimate(float(point), float(max(0.0, lo)), float(min(1.0, hi)))


def mean_sequence(x: Any, clusters: Any = None, *, alpha: float = ALPHA, t_opt: float = T_OPT) -> Estimate:
    """Confidence sequence for a mean of values in [0, 1] (e.g. the win rate with ties as half),
    clustered: the ratio of the values to 1 (``ratio_sequence``)."""
    x = as_1d_float(x, "x")
    if x.size == 0:
        raise InsufficientData("no pairs")
    if np.any((x < 0) | (x > 1)):
        raise ValueError("values must lie in [0, 1]")
    c = mixture_multiplier(units(clusters, x.size), alpha, t_opt)
    return ratio_sequence([(x, np.ones(x.size), clusters)], c)


def _decisive_parts(outcomes: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_1d_float(outcomes, "outcomes")
    if not np.all(np.isin(s, (0.0, 0.5, 1.0))):
        raise ValueError("outcomes must be 1 (win), 0 (loss) or 0.5 (tie)")
    return (s == 1.0).astype(float), (s != 0.5).astype(float)


def units(clusters: Any, n: int) -> int:
    return int(np.unique(np.asarray(clusters)).size) if clusters is not None and n else n


def decisive_sequence(outcomes: Any, clusters: Any = None, *, alpha: float = ALPHA,
                      t_opt: float = T_OPT) -> Estimate:
    """Wins / (wins + losses), ties left out of both, with its confidence sequence, clustered by
    conversation (ties still count in the conversation's weight of evidence: they are the zero
    terms of ``win - p * decisive``)."""
    a, b = _decisive_parts(outcomes)
    if b.sum() == 0:
        raise InsufficientData("no decisive pair")
    c = mixture_multiplier(units(clusters, a.size), alpha, t_opt)
    return ratio_sequence([(a, b, clusters)], c)


def ppi_decisive_sequence(judge_all: Any, clusters_all: Any, judge_audited: Any, human_audited: Any,
                          clusters_audited: Any = None, *, alpha: float = ALPHA, t_opt: float = T_OPT) -> Estimate:
    """The humans' decisive win rate, estimated from the judge on every pair and corrected by the
    audited pairs (prediction-powered inference): ``mean_N(f) + mean_n(h - f)`` for wins and for
    decisive pairs, where f is the judge's verdict and h the people's on the same pair.

    Valid whatever the judge's bias: the correction is estimated with its own variance. The
    boundary uses the fewer units of the two samples (the wider multiplier)."""
    fa, fb = _decisive_parts(judge_all)
    ja, jb = _decisive_parts(judge_audited)
    ha, hb = _decisive_parts(human_audited)
    if ja.size == 0:
        raise InsufficientData("no audited pair")
    if ja.size != ha.size:
        raise ValueError("judge_audited and human_audited must have one verdict per audited pair")
    k_all = units(clusters_all, fa.size)
    k_aud = units(clusters_audited, ja.size)
    c = max(mixture_multiplier(k_all, alpha, t_opt), mixture_multiplier(k_aud, alpha, t_opt))
    return ratio_sequence([(fa, fb, clusters_all), (ha - ja, hb - jb, clusters_audited)], c)


def length_controlled_sequence(outcomes: Any, len_diff: Any, clusters: Any = None, *, alpha: float = ALPHA,
                               t_opt: float = T_OPT) -> Estimate:
    """The decisive win rate at equal answer lengths (``length_controlled_win_rate`` on the
    decisive pairs: ties say nothing about which answer is better), with its confidence sequence
    on the logit scale.

    Raises InsufficientData when the length difference never varies but is not zero: the
    candidate's effect and its length's effect are then one number and cannot be separated. When
    every pair has answers of equal length there is no length effect to remove: the plain
    decisive sequence is returned."""
    s = as_1d_float(outcomes, "outcomes")
    d = as_1d_float(len_diff, "len_diff")
    if d.size != s.size:
        raise ValueError("outcomes and len_diff must have the same length")
    keep = s != 0.5
    y, dd = s[keep], d[keep]
    cl = np.asarray(clusters)[keep] if clusters is not None else None
    if y.size < 2:
        raise InsufficientData(f"{y.size} decisive pair(s): a regression needs more")
    if np.all(dd == 0):
        return decisive_sequence(s, clusters, alpha=alpha, t_opt=t_opt)
    if float(dd.std()) == 0.0:
        raise InsufficientData("every candidate answer differs in length from the served one by the same amount: "
                               "the length effect cannot be separated from the candidate's")
    if np.all(y == y[0]):  # no finite fit: one outcome whatever the length difference
        if np.all(dd <= 0):  # the candidate never the longer: no verbosity to remove
            return decisive_sequence(s, clusters, alpha=alpha, t_opt=t_opt)
        raise InsufficientData("every decisive pair went the same way, and the candidate's answer was the longer in "
                               "some: the length effect cannot be separated from the candidate's")
    beta0, se = _lc_fit(y, dd, cl)
    c = mixture_multiplier(units(cl, y.size), alpha, t_opt)

    def sigmoid(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t))

    return Estimate(sigmoid(beta0), sigmoid(beta0 - c * se), sigmoid(beta0 + c * se))


def diff_means_sequence(x: Any, x_clusters: Any, y: Any, y_clusters: Any, *, alpha: float = ALPHA,
                        t_opt: float = T_OPT) -> Estimate:
    """mean(x) - mean(y) for two independent samples of values in [0, 1], each clustered (by user
    or session), with a confidence sequence: each side's variance is its cluster-robust one, never
    below a binomial's at the rate shrunk by one flagged and one unflagged unit (no flag in either
    arm yet is not certainty of no difference); ``t`` the units of the smaller side."""
    x, y = as_1d_float(x, "x"), as_1d_float(y, "y")
    if x.size == 0 or y.size == 0:
        raise InsufficientData("a side has no turns")
    variances, units_ = [], []
    for v, cl in ((x, x_clusters), (y, y_clusters)):
        part = _part(v, np.zeros(v.size), cl)
        shrunk = (v.sum() + 1) / (v.size + 2)
        variances.append(max(part[2], shrunk * (1 - shrunk) / v.size))
        units_.append(part[6])
    c = mixture_multiplier(min(units_), alpha, t_opt)
    d = float(x.mean() - y.mean())
    half = c * math.sqrt(sum(variances))
    return Estimate(d, d - half, d + half)


# --- paired binary outcomes and many of them ------------------------------------------------------

def mcnemar_exact_p(worse: int, better: int) -> float:
    """One-sided exact McNemar test that the candidate is flagged more often than the served answer:
    among discordant pairs (``worse``: flagged on the candidate only, ``better``: on the served
    answer only), ``P(X >= worse)`` for X ~ Binomial(worse + better, 1/2). Equals
    ``scipy.stats.binomtest(worse, worse + better, alternative="greater").pvalue``."""
    n = worse + better
    if n == 0:
        return 1.0
    return min(1.0, math.exp(_log_binom_cdf_half(better, n)))  # P(X >= w) = P(n - X <= b)


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over all the tests), input order;
    equals ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``."""
    p = np.asarray(pvalues, dtype=float).ravel()
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(1.0, adj)
    return out


def srm_pvalue(observed_a: int, observed_b: int, expected_share_a: float) -> float:
    """Sample-ratio mismatch: Pearson's chi-square (1 df) of the two arms' counts against the
    declared share of arm a; equals ``scipy.stats.chisquare([a, b], [n s, n (1 - s)]).pvalue``."""
    n = observed_a + observed_b
    if n == 0 or not 0.0 < expected_share_a < 1.0:
        raise InsufficientData("no units or a share outside (0, 1)")
    ea, eb = n * expected_share_a, n * (1.0 - expected_share_a)
    chi2 = (observed_a - ea) ** 2 / ea + (observed_b - eb) ** 2 / eb
    return math.erfc(math.sqrt(chi2 / 2.0))
