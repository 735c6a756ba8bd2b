"""core.stats.sequential against independent computations: scipy (integrals, binomial and
chi-square tests), statsmodels (cluster-robust standard errors, Holm), and by simulation the one
property a confidence sequence has that an interval has not: reading it at every look."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate
from scipy import stats as ss
from statsmodels.stats.multitest import multipletests

from core import stats as st
from core.stats import sequential as seq
from shadow.decision import BETTER, INCONCLUSIVE, NON_INFERIOR, WORSE, pairs_evidence


def test_the_multiplier_is_robbins_normal_mixture_boundary():
    # The mixture over lambda ~ N(0, 1/r) of exp(lambda S - lambda^2 V / 2) is a nonnegative
    # martingale; Ville's inequality: it exceeds 1/alpha with probability <= alpha. The
    # multiplier is where it equals 1/alpha, with V = t (standardised) and |S| = c(t) sqrt(t).
    r = seq.mixture_r()
    for t in (10, 300, 1000, 20000):
        c = seq.mixture_multiplier(t)
        s_ = c * math.sqrt(t)
        mu, sd = s_ / (t + r), 1 / math.sqrt(t + r)  # where the integrand lives
        prior = 1 / math.sqrt(r)
        mix = integrate.quad(lambda lam: math.exp(lam * s_ - lam * lam * t / 2) * ss.norm.pdf(lam, scale=prior),
                             mu - 40 * sd, mu + 40 * sd, points=[mu])[0]
        assert mix == pytest.approx(1 / 0.05, rel=1e-6)
    # Waudby-Smith et al. (2024) eq. 2.6 with rho^2 = 1 / r
    rho2 = 1 / r
    t = 700
    assert seq.mixture_multiplier(t) * math.sqrt(1 / t) == pytest.approx(
        math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / 0.05)))
    assert seq.mixture_multiplier(1000) > ss.norm.ppf(0.975)  # the price of looking at any time


def test_mean_sequence_is_the_cluster_robust_standard_error_times_the_multiplier():
    rng = np.random.default_rng(3)
    sessions = np.repeat(np.arange(300), rng.integers(1, 5, 300))
    x = np.clip(rng.normal(0.55, 0.3, sessions.size) + rng.normal(0, 0.2, 300)[sessions], 0, 1)
    x = np.round(x * 2) / 2  # wins, ties, losses
    est = st.mean_sequence(x, sessions)
    c = seq.mixture_multiplier(300)
    assert est.value == pytest.approx(x.mean())
    # Each end is where the clustered test of "mean = p0" (statsmodels) or, when wider, the
    # binomial-variance (Wilson) test stands exactly at the multiplier.
    for p0 in (est.lo, est.hi):
        robust = sm.OLS(x - p0, np.ones(x.size)).fit(cov_type="cluster", cov_kwds={"groups": sessions}).tvalues[0]
        binomial = (x.mean() - p0) / math.sqrt(p0 * (1 - p0) / x.size)
        assert min(abs(robust), abs(binomial)) == pytest.approx(c, rel=1e-6)
    # wins and losses only: never narrower than Wilson's interval at z = c
    y = (x[:400] > 0.5).astype(float)
    est = st.mean_sequence(y)
    k, n, c = y.sum(), y.size, seq.mixture_multiplier(400)
    centre, half = (k + c * c / 2) / (n + c * c), c * math.sqrt(k * (n - k) / n + c * c / 4) / (n + c * c)
    assert est.lo <= centre - half + 1e-12 and est.hi >= centre + half - 1e-12


def test_decisive_sequence_ends_are_where_the_clustered_test_stands_at_the_multiplier():
    rng = np.random.default_rng(5)
    sessions = np.repeat(np.arange(400), 2)
    s = rng.choice([1.0, 0.0, 0.5], sessions.size, p=[0.45, 0.35, 0.2])
    est = st.decisive_sequence(s, sessions)
    wins, dec = (s == 1).astype(float), (s != 0.5).astype(float)
    assert est.value == pytest.approx(wins.sum() / dec.sum())
    c = seq.mixture_multiplier(400)
    for p0 in (est.lo, est.hi):  # the linear test of "rate = p0", clustered, by statsmodels
        fit = sm.OLS(wins - p0 * dec, np.ones(s.size)).fit(cov_type="cluster", cov_kwds={"groups": sessions})
        assert abs(fit.tvalues[0]) == pytest.approx(c, rel=1e-6)
    # ties left out of the rate: the same wins and losses with more ties give the same point
    more_ties = np.concatenate([s, np.full(200, 0.5)])
    assert st.decisive_sequence(more_ties).value == pytest.approx(est.value)


def test_a_sample_of_wins_only_gets_wilsons_width_not_zero():
    est = st.decisive_sequence(np.ones(60))
    c = seq.mixture_multiplier(60)
    lo = ss.binomtest(60, 60).proportion_ci(method="wilson").low  # at z = 1.96...
    assert est.hi == 1.0 and est.lo < lo  # ...and wider at z = c
    assert est.lo == pytest.approx(60 / (60 + c * c))  # Wilson's lower bound for 60/60 at z = c


def test_the_sequence_holds_at_every_look_where_a_fixed_interval_does_not():
    # 300 candidates with no difference, looked at after every 50 pairs up to 3,000 (60 looks)
    rng = np.random.default_rng(11)
    ever_seq = ever_fixed = 0
    for _ in range(300):
        s = rng.choice([1.0, 0.0], 3000)
        seq_miss = fixed_miss = False
        for k in range(50, 3001, 50):
            e = st.decisive_sequence(s[:k])
            seq_miss |= not (e.lo <= 0.5 <= e.hi)
            w = st.wilson(float(s[:k].sum()), k)
            fixed_miss |= not (w.lo <= 0.5 <= w.hi)
        ever_seq += seq_miss
        ever_fixed += fixed_miss
    assert ever_seq / 300 <= 0.05
    assert ever_fixed / 300 > 0.15


def test_prediction_powered_rate_corrects_a_biased_judge():
    rng = np.random.default_rng(2)
    n_all, n_aud = 4000, 400
    human = rng.choice([1.0, 0.0], n_all, p=[0.5, 0.5])  # truly no better
    # the judge says "candidate" on 30 % of the pairs people gave to the served answer
    judge = np.where((human == 0) & (rng.random(n_all) < 0.3), 1.0, human)
    aud = rng.choice(n_all, n_aud, replace=False)
    judge_only = st.decisive_sequence(judge)
    ppi = st.ppi_decisive_sequence(judge, np.arange(n_all), judge[aud], human[aud], aud)
    assert judge_only.lo > 0.6  # the judge alone: clearly "better"
    assert ppi.lo < 0.5 < ppi.hi  # corrected: no difference
    # the estimate is mean_N(judge) + mean_n(human - judge) for wins and for decisive pairs
    assert ppi.value == pytest.approx((judge.mean() + (human[aud] - judge[aud]).mean()) / 1.0)
    # and at its ends the PPI z-statistic (independent parts, scipy's standard errors) is the multiplier
    c = max(seq.mixture_multiplier(n_all), seq.mixture_multiplier(n_aud))
    for p0 in (ppi.lo, ppi.hi):
        f = judge - p0
        r = (human[aud] - judge[aud])
        z = (f.mean() + r.mean()) / math.sqrt(ss.sem(f) ** 2 + ss.sem(r) ** 2)
        assert abs(z) == pytest.approx(c, rel=1e-6)


def test_length_controlled_sequence_is_the_length_controlled_fit_at_the_multiplier():
    rng = np.random.default_rng(4)
    d = rng.normal(100, 150, 800)
    p = 1 / (1 + np.exp(-(-0.2 + 1.5 * np.tanh(d / d.std(ddof=1)))))
    o = (rng.random(800) < p).astype(float)
    o[:100] = 0.5  # ties: left out
    est = st.length_controlled_sequence(o, d)
    c = seq.mixture_multiplier(700)
    ci = 2 * ss.norm.cdf(c) - 1
    ref = st.length_controlled_win_rate(o[100:], d[100:], ci=ci)
    assert tuple(est) == pytest.approx(tuple(ref))
    assert est.value < st.decisive_sequence(o).value - 0.1  # the raw rate is mostly length


def test_lengths_that_never_vary_cannot_be_separated_and_equal_lengths_need_no_control():
    o = np.array([1.0, 0.0, 1.0, 1.0] * 30)
    with pytest.raises(st.InsufficientData, match="cannot be separated"):
        st.length_controlled_sequence(o, np.full(o.size, 80.0))
    assert tuple(st.length_controlled_sequence(o, np.zeros(o.size))) == tuple(st.decisive_sequence(o))


def test_mcnemar_holm_and_sample_ratio_against_scipy_and_statsmodels():
    for w, b in ((12, 3), (0, 0), (5, 9), (45, 3), (1, 0)):
        ref = ss.binomtest(w, w + b, alternative="greater").pvalue if w + b else 1.0
        assert st.mcnemar_exact_p(w, b) == pytest.approx(ref, rel=1e-9)
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert st.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    for a, b, share in ((5100, 4900, 0.5), (1000, 1200, 0.5), (240, 760, 0.2)):
        ref = ss.chisquare([a, b], [(a + b) * share, (a + b) * (1 - share)]).pvalue
        assert st.srm_pvalue(a, b, share) == pytest.approx(ref, rel=1e-9)


def test_difference_of_clustered_means():
    rng = np.random.default_rng(8)
    gx, gy = np.repeat(np.arange(200), 3), np.repeat(np.arange(250), 2)
    x, y = (rng.random(600) < 0.1).astype(float), (rng.random(500) < 0.12).astype(float)
    est = st.diff_means_sequence(x, gx, y, gy)
    se = [sm.OLS(v, np.ones(v.size)).fit(cov_type="cluster", cov_kwds={"groups": g}).bse[0]
          for v, g in ((x, gx), (y, gy))]
    floor = [math.sqrt((v.sum() + 1) / (v.size + 2) * (1 - (v.sum() + 1) / (v.size + 2)) / v.size) for v in (x, y)]
    c = seq.mixture_multiplier(200)
    assert est.value == pytest.approx(x.mean() - y.mean())
    assert est.hi - est.value == pytest.approx(c * math.hypot(max(se[0], floor[0]), max(se[1], floor[1])))
    # no flag on either side yet: not a zero-width "no difference"
    none = st.diff_means_sequence(np.zeros(600), gx, np.zeros(500), gy)
    assert none.lo < -0.005 and none.hi > 0.005


# --- the verdict the report and the gate share --------------------------------------------------

def test_a_worse_but_longer_candidate_under_a_length_loving_judge_does_not_pass():
    rng = np.random.default_rng(1)
    n = 3000
    served = rng.lognormal(math.log(400), 0.5, n)
    d = served * rng.uniform(0.5, 1.5, n)  # the candidate writes about twice as long
    truth = (rng.random(n) < 0.45).astype(float)
    p = 1 / (1 + np.exp(-(np.where(truth == 1, 2.0, -2.0) + 1.2 * np.tanh(d / d.std()))))
    judged = (rng.random(n) < p).astype(float)
    ev = pairs_evidence(judged, np.arange(n), d, margin=0.05)
    assert ev["judge"]["ci_low"] > 0.5  # the judge's raw verdicts say "better"
    assert ev["verdict"] == INCONCLUSIVE and "rests on longer answers" in ev["reason"]
    assert ev["length_controlled"]["ci_low"] < 0.45 < ev["judge"]["ci_low"]


def test_ties_do_not_hide_a_decisive_loser():
    # 45 : 55 on decisive pairs, half the pairs ties: 0.475 with ties as half, inside a 0.05 margin
    s = np.array([1.0] * 450 + [0.0] * 550 + [0.5] * 1000)
    ev = pairs_evidence(s, np.arange(s.size), np.zeros(s.size), margin=0.05)
    assert ev["win_rate_ties_half"]["value"] == pytest.approx(0.475)
    assert ev["judge"]["value"] == pytest.approx(0.45) and ev["verdict"] in (INCONCLUSIVE, WORSE)
    better = np.array([1.0] * 700 + [0.0] * 300)
    assert pairs_evidence(better, np.arange(1000), np.zeros(1000))["verdict"] == BETTER
    same = np.array([1.0, 0.0] * 2000)
    assert pairs_evidence(same, np.arange(4000), np.zeros(4000), margin=0.05)["verdict"] == NON_INFERIOR
