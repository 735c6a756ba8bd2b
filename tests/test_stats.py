"""core.stats against independent computations: scipy.stats, published examples, hand counts.

Plain functions, no database. Bootstrap intervals are compared with scipy.stats.bootstrap run
with its own random stream, so they agree only up to Monte-Carlo error: the tolerances below are
a few times that error, and far below the gap a wrong resampling scheme (items instead of
conversations, pooled instead of stratified, unpaired instead of paired) would open.
"""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as ss

from core import stats as st
from core.stats import Estimate, InsufficientData

Z95 = float(ss.norm.ppf(0.975))
REPO = Path(__file__).resolve().parent.parent


def scipy_wilson(k: int, n: int) -> tuple[float, float]:
    ci = ss.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def scipy_percentile_bootstrap(data, statistic, *, paired=False, vectorized=False, n_resamples=4000, seed=7):
    res = ss.bootstrap(
        data, statistic, paired=paired, vectorized=vectorized, n_resamples=n_resamples,
        method="percentile", random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


# --- the module stands alone ------------------------------------------------------------------

def test_stats_imports_neither_django_nor_scipy():
    code = (
        "import sys, core.stats; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'scipy', 'sklearn')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- proportions ------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (7, 20), (50, 100), (99, 100), (100, 100), (3, 1000)])
def test_wilson_matches_scipy(k, n):
    p, lo, hi = st.wilson(k, n, z=Z95)
    assert p == k / n
    assert (lo, hi) == pytest.approx(scipy_wilson(k, n), abs=1e-9)


def test_wilson_refuses_no_data_and_impossible_counts():
    with pytest.raises(InsufficientData):
        st.wilson(0, 0)
    with pytest.raises(ValueError):
        st.wilson(11, 10)


def test_weighted_proportion_is_wilson_at_kish_n():
    # nine items of weight 1 and one of weight 3: Kish n = 12^2 / 18 = 8
    w = np.array([1.0] * 9 + [3.0])
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1.0])
    assert st.kish_n_eff(w) == pytest.approx(8.0)
    p, lo, hi = st.weighted_proportion(y, w, z=Z95)
    assert p == pytest.approx(6 / 12)
    assert (lo, hi) == pytest.approx(scipy_wilson(4, 8), abs=1e-9)


def test_weighted_proportion_with_integer_weights_equals_the_replicated_rate():
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.3).astype(float)
    w = rng.integers(1, 5, 200).astype(float)
    p, _, _ = st.weighted_proportion(y, w)
    assert p == pytest.approx(np.repeat(y, w.astype(int)).mean())


def test_equal_weights_give_plain_wilson():
    y = np.array([1.0] * 13 + [0.0] * 27)
    assert st.weighted_proportion(y, np.full(40, 2.5), z=Z95)[1:] == pytest.approx(scipy_wilson(13, 40))


def test_newcombe_difference_matches_the_published_example_and_scipy_wilson():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10.
    d, lo, hi = st.diff_proportions(56, 70, 48, 80, z=Z95)
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    l1, u1 = scipy_wilson(56, 70)
    l2, u2 = scipy_wilson(48, 80)
    assert lo == pytest.approx(0.2 - math.hypot(0.8 - l1, u2 - 0.6))
    assert hi == pytest.approx(0.2 + math.hypot(u1 - 0.8, 0.6 - l2))


def test_standardise_rate_at_the_observed_mix_is_the_crude_rate():
    rates = {"web": 10 / 100, "api": 30 / 50}
    ns = {"web": 100, "api": 50}
    p, lo, hi = st.standardise_rate(rates, ns, {"web": 100, "api": 50}, z=Z95)
    assert p == pytest.approx(40 / 150)
    assert (lo, hi) == pytest.approx(scipy_wilson(40, 150), abs=1e-9)


def test_standardise_rate_reweights_to_the_reference_mix():
    rates = {"web": 0.1, "api": 0.6, "mobile": 0.3}
    ns = {"web": 100, "api": 50, "mobile": 10}
    # mobile is absent from the reference: it gets no weight
    p, lo, hi = st.standardise_rate(rates, ns, {"web": 1, "api": 3}, z=Z95)
    assert p == pytest.approx(0.25 * 0.1 + 0.75 * 0.6)
    n_eff = 1 / (0.25**2 / 100 + 0.75**2 / 50)
    # Wilson at that effective n, written out
    centre = (p + Z95**2 / (2 * n_eff)) / (1 + Z95**2 / n_eff)
    half = Z95 * math.sqrt(p * (1 - p) / n_eff + Z95**2 / (4 * n_eff**2)) / (1 + Z95**2 / n_eff)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    with pytest.raises(InsufficientData):
        st.standardise_rate(rates, ns, {"web": 1, "chat": 1})


def _lift_by_hand(y, s, w, axis=-1):
    p1 = np.sum(w * s * y, axis=axis) / np.sum(w * s, axis=axis)
    return p1 / (np.sum(w * y, axis=axis) / np.sum(w, axis=axis))


def test_lift_point_estimate_by_hand_weighted_and_replicated():
    rng = np.random.default_rng(11)
    y = (rng.random(300) < 0.25).astype(float)
    s = (rng.random(300) < np.where(y == 1, 0.5, 0.2)).astype(float)
    w = rng.integers(1, 6, 300).astype(float)
    assert st.lift(y, s).value == pytest.approx(_lift_by_hand(y, s, np.ones(300)))
    k = w.astype(int)
    replicated = _lift_by_hand(np.repeat(y, k), np.repeat(s, k), np.ones(k.sum()))
    assert st.lift(y, s, w).value == pytest.approx(replicated)


@pytest.mark.parametrize("signal_rate", [0.15, 0.6])
def test_lift_delta_interval_agrees_with_a_scipy_bootstrap(signal_rate):
    # a common signal (0.6) makes the two rates share most items: their covariance matters
    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(n) < 0.2).astype(float)
    s = (rng.random(n) < np.where(y == 1, min(1.0, 1.8 * signal_rate), signal_rate)).astype(float)
    w = 1.0 / rng.choice([0.1, 0.5, 1.0], n)
    _, lo, hi = st.lift(y, s, w, z=Z95)
    blo, bhi = scipy_percentile_bootstrap(
        (y, s, w), _lift_by_hand, paired=True, vectorized=True, n_resamples=2000
    )
    assert lo == pytest.approx(blo, rel=0.04)
    assert hi == pytest.approx(bhi, rel=0.04)


def test_lift_edges():
    y = np.array([1, 1, 0, 0, 0, 0.0])
    assert st.lift(y, np.array([0, 0, 1, 1, 0, 0.0])).value == 0.0  # never together: lift 0
    assert st.lift(y, np.array([0, 0, 1, 1, 0, 0.0])).hi > 0
    with pytest.raises(InsufficientData):
        st.lift(y, np.zeros(6))
    with pytest.raises(InsufficientData):
        st.lift(np.zeros(6), np.ones(6))


# --- bootstrap by cluster ---------------------------------------------------------------------

def test_cluster_bootstrap_with_singletons_is_the_ordinary_bootstrap():
    rng = np.random.default_rng(1)
    v = rng.choice([0.0, 0.5, 1.0], 400, p=[0.35, 0.2, 0.45])
    est = st.cluster_bootstrap_mean(v, np.arange(400), n_resamples=4000, seed=3)
    assert est.value == pytest.approx(v.mean())
    blo, bhi = scipy_percentile_bootstrap((v,), np.mean)
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.008)


def test_cluster_bootstrap_resamples_whole_conversations():
    # 60 conversations of 5 identical pairs: the information is 60 values, not 300
    rng = np.random.default_rng(2)
    per_conv = (rng.random(60) < 0.6).astype(float)
    v = np.repeat(per_conv, 5)
    conv = np.repeat([f"s{i}" for i in range(60)], 5)
    est = st.cluster_bootstrap_mean(v, conv, n_resamples=4000, seed=1)
    blo, bhi = scipy_percentile_bootstrap((per_conv,), np.mean)
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.02)
    naive = st.cluster_bootstrap_mean(v, np.arange(300), n_resamples=4000, seed=1)
    assert (est.hi - est.lo) > 1.8 * (naive.hi - naive.lo)  # ~ sqrt(5) wider


def test_cluster_bootstrap_with_unequal_conversations_and_many_distinct_values():
    # continuous values: every conversation its own cell (the gather path)
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 6, 150)
    values = np.concatenate([rng.normal(m, 1, k) for m, k in zip(rng.normal(0, 1, 150), sizes)])
    conv = np.repeat(np.arange(150), sizes)
    est = st.cluster_bootstrap_mean(values, conv, n_resamples=4000, seed=2)
    sums = np.bincount(conv, weights=values)
    blo, bhi = scipy_percentile_bootstrap(
        (sums, sizes.astype(float)), lambda a, b: a.sum() / b.sum(), paired=True
    )
    assert est.value == pytest.approx(values.mean())
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.03)


def test_bootstrap_is_deterministic_given_a_seed():
    rng = np.random.default_rng(0)
    v, c = rng.random(500), rng.integers(0, 80, 500)
    assert st.cluster_bootstrap_mean(v, c, seed=9) == st.cluster_bootstrap_mean(v, c, seed=9)
    assert st.cluster_bootstrap_mean(v, c, seed=9) != st.cluster_bootstrap_mean(v, c, seed=10)
    with pytest.raises(InsufficientData):
        st.cluster_bootstrap_mean([1.0, 0.0], ["one", "one"])


# --- win rates and their tests ----------------------------------------------------------------

def _outcomes(wins, losses, ties):
    return np.array([1.0] * wins + [0.0] * losses + [0.5] * ties)


def test_win_rate_counts_ties_as_half_and_decisive_rate_leaves_them_out():
    o = _outcomes(30, 20, 10)
    p, lo, hi = st.win_rate(o)
    assert p == pytest.approx(35 / 60)
    assert (lo, hi) == pytest.approx(st.wilson(35, 60, z=Z95)[1:])
    assert st.decisive_win_rate(o) == pytest.approx((0.6, *scipy_wilson(30, 50)))
    assert st.tie_rate(o) == pytest.approx((10 / 60, *scipy_wilson(10, 60)))
    with pytest.raises(InsufficientData):
        st.decisive_win_rate(_outcomes(0, 0, 5))


def test_win_rate_resamples_conversations_when_they_hold_several_pairs():
    o = _outcomes(40, 30, 10)
    conv = np.arange(80) // 2
    assert st.win_rate(o, conv, seed=4) == st.cluster_bootstrap_mean(o, conv, seed=4)
    assert st.win_rate(o, np.arange(80)) == st.win_rate(o)  # one pair each: Wilson


@pytest.mark.parametrize("wins,losses", [(60, 40), (5, 15), (10, 10), (0, 7), (530, 470), (12, 0)])
def test_sign_test_matches_scipy_binomtest(wins, losses):
    o = _outcomes(wins, losses, 13)
    assert st.win_rate_pvalue(o) == pytest.approx(ss.binomtest(wins, wins + losses).pvalue, rel=1e-9)


def test_clustered_pvalue_is_unmoved_by_repeating_pairs_within_a_conversation():
    rng = np.random.default_rng(8)
    o = rng.choice([0.0, 0.5, 1.0], 120, p=[0.3, 0.2, 0.5])
    conv = np.arange(120) // 3
    p = st.win_rate_pvalue(o, conv)
    dev = np.bincount(conv, weights=o - 0.5)
    z = dev.sum() / math.sqrt(np.square(dev).sum())
    assert p == pytest.approx(2 * ss.norm.sf(abs(z)))
    assert st.win_rate_pvalue(np.repeat(o, 2), np.repeat(conv, 2)) == pytest.approx(p)
    # the same pairs treated as independent would look more significant
    assert st.win_rate_pvalue(np.repeat(o, 2)) < p


def test_benjamini_hochberg_on_the_papers_example_and_against_scipy():
    # Benjamini & Hochberg (1995), section 4: 15 p-values, 4 discoveries at q = 0.05
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
         0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]
    q = st.benjamini_hochberg(p)
    assert int((q <= 0.05).sum()) == 4
    assert q == pytest.approx(ss.false_discovery_control(p))
    shuffled = np.random.default_rng(0).permutation(15)
    assert st.benjamini_hochberg(np.array(p)[shuffled]) == pytest.approx(q[shuffled])
    with_gap = st.benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(with_gap[1]) and with_gap[[0, 2]] == pytest.approx([0.02, 0.04])


# --- length-controlled win rate ---------------------------------------------------------------

def test_length_controlled_fit_matches_scipy_optimize():
    rng = np.random.default_rng(12)
    d = rng.normal(0, 300, 400)
    o = rng.choice([0.0, 0.5, 1.0], 400, p=[0.3, 0.2, 0.5])
    x = np.tanh(d / d.std(ddof=1))

    def loss(b):
        eta = b[0] + b[1] * x
        return np.sum(np.logaddexp(0, eta) - o * eta) + 0.5 * b[1] ** 2

    b = optimize.minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    assert st.length_controlled_win_rate(o, d).value == pytest.approx(1 / (1 + math.exp(-b[0])), abs=1e-6)


def test_a_win_made_of_length_only_is_not_a_length_controlled_win():
    # the judge prefers the longer answer; otherwise the two systems are equally good
    rng = np.random.default_rng(13)
    d = rng.normal(150, 200, 1500)  # the candidate is usually longer
    p_win = 1 / (1 + np.exp(-2.0 * np.tanh(d / d.std(ddof=1))))
    o = (rng.random(1500) < p_win).astype(float)
    assert st.win_rate(o).lo > 0.6
    lc = st.length_controlled_win_rate(o, d)
    assert lc.lo < 0.5 < lc.hi


def test_length_control_leaves_a_genuine_win_alone_and_is_symmetric():
    rng = np.random.default_rng(14)
    d = rng.normal(0, 200, 1500)
    o = rng.choice([0.0, 0.5, 1.0], 1500, p=[0.3, 0.1, 0.6])
    raw, lc = st.win_rate(o), st.length_controlled_win_rate(o, d)
    assert lc.value == pytest.approx(raw.value, abs=0.02)
    assert lc.lo > 0.5
    flipped = st.length_controlled_win_rate(1 - o, -d)
    assert flipped.value == pytest.approx(1 - lc.value) and flipped.lo == pytest.approx(1 - lc.hi)


def test_length_controlled_interval_matches_a_bootstrap_of_the_fit():
    # 45 % ties: soft labels vary less than Bernoulli ones, so a model-based (non-sandwich)
    # standard error would be ~35 % too wide here
    rng = np.random.default_rng(15)
    n = 300
    d = rng.normal(50, 200, n)
    decisive = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + np.tanh(d / 200))))).astype(float)
    o = np.where(rng.random(n) < 0.45, 0.5, decisive)
    est = st.length_controlled_win_rate(o, d)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    se_sandwich = (logit(est.hi) - logit(est.lo)) / (2 * 1.96)
    boot = []
    for _ in range(400):
        i = rng.integers(0, n, n)
        boot.append(logit(st.length_controlled_win_rate(o[i], d[i]).value))
    assert se_sandwich == pytest.approx(np.std(boot, ddof=1), rel=0.15)


def test_length_control_without_contest_falls_back_to_wilson():
    all_wins = st.length_controlled_win_rate(np.ones(20), np.arange(20.0))
    assert all_wins == pytest.approx(st.wilson(20, 20, z=Z95))


# --- agreement, rank correlation, AUC ---------------------------------------------------------

def test_cohen_kappa_hand_computed():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert st.cohen_kappa(a, b) == pytest.approx(0.4)
    # three labels: p_o = 7/10; margins a (4,3,3), b (3,4,3): p_e = (12+12+9)/100
    a3 = list("aaaabbbccc")
    b3 = list("aabbbbaccc")
    assert st.cohen_kappa(a3, b3) == pytest.approx((0.7 - 0.33) / (1 - 0.33))
    assert st.cohen_kappa(a3, a3) == pytest.approx(1.0)
    with pytest.raises(InsufficientData):
        st.cohen_kappa(["x"] * 5, ["x"] * 5)


def test_cohen_kappa_interval_agrees_with_a_scipy_bootstrap():
    rng = np.random.default_rng(21)
    a = rng.choice(["a", "b", "tie"], 400)
    b = np.where(rng.random(400) < 0.6, a, rng.choice(["a", "b", "tie"], 400))
    codes = {"a": 0, "b": 1, "tie": 2}
    ai, bi = np.array([codes[x] for x in a]), np.array([codes[x] for x in b])

    def kappa_by_hand(x, y):
        conf = np.zeros((3, 3))
        np.add.at(conf, (x, y), 1)
        n = conf.sum()
        po, pe = np.trace(conf) / n, (conf.sum(1) @ conf.sum(0)) / n**2
        return (po - pe) / (1 - pe)

    est = st.cohen_kappa_bootstrap_ci(a, b, n_resamples=4000)
    assert est.value == pytest.approx(kappa_by_hand(ai, bi))
    blo, bhi = scipy_percentile_bootstrap((ai, bi), kappa_by_hand, paired=True)
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.012)


def test_spearman_with_ties_matches_scipy():
    rng = np.random.default_rng(30)
    x = rng.integers(0, 6, 40).astype(float)
    y = x + rng.integers(-3, 4, 40)
    assert st.spearman(x, y) == pytest.approx(ss.spearmanr(x, y).statistic, abs=1e-12)
    assert st.rankdata(x) == pytest.approx(ss.rankdata(x))
    with pytest.raises(InsufficientData):
        st.spearman([1, 1, 1, 1], [1, 2, 3, 4])


def test_spearman_bootstrap_over_releases_agrees_with_scipy_paired_bootstrap():
    rng = np.random.default_rng(31)
    offline = rng.normal(0, 1, 20)
    production = -offline + rng.normal(0, 1, 20)
    est = st.spearman_bootstrap_ci(offline, production, n_resamples=4000, seed=5)
    assert est.value == pytest.approx(ss.spearmanr(offline, production).statistic)
    def rho_rows(a, b, axis=-1):
        ra, rb = ss.rankdata(a, axis=axis), ss.rankdata(b, axis=axis)
        ra = ra - ra.mean(axis=axis, keepdims=True)
        rb = rb - rb.mean(axis=axis, keepdims=True)
        return (ra * rb).sum(axis=axis) / np.sqrt((ra * ra).sum(axis=axis) * (rb * rb).sum(axis=axis))

    blo, bhi = scipy_percentile_bootstrap((offline, production), rho_rows, paired=True, vectorized=True)
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.04)


def test_spearman_fisher_interval_reproduces_the_design_note():
    # ../shared/shadow.md: rho = 0.8 over 10 releases has a 95 % interval of about 0.24-0.96
    _, lo, hi = st.spearman_fisher_ci(0.8, 10)
    assert (round(lo, 2), round(hi, 2)) == (0.24, 0.96)


def test_auc_is_mann_whitney_with_ties():
    rng = np.random.default_rng(40)
    scores = rng.integers(0, 8, 300).astype(float)
    labels = rng.random(300) < 0.2 + scores / 20
    u = ss.mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert st.auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)
    assert st.auc(-scores, labels) == pytest.approx(1 - st.auc(scores, labels))
    with pytest.raises(InsufficientData):
        st.auc([0.1, 0.2], [1, 1])


def test_weighted_auc_equals_the_auc_of_the_replicated_sample():
    rng = np.random.default_rng(41)
    scores = rng.normal(size=200).round(1)
    labels = rng.random(200) < 0.3
    w = rng.integers(1, 5, 200)
    expanded = st.auc(np.repeat(scores, w), np.repeat(labels, w))
    assert st.auc(scores, labels, w.astype(float)) == pytest.approx(expanded, abs=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "graded"])
def test_auc_interval_agrees_with_scipy_stratified_bootstrap(kind):
    # balanced classes: each class's resampling carries half the variance, so resampling only
    # one of them (or neither) would narrow the interval well beyond the tolerance
    rng = np.random.default_rng(42)
    labels = rng.random(600) < 0.5
    if kind == "continuous":
        scores = rng.normal(size=600) + labels  # each item its own cell: index draws + bincount
    else:
        # three grades: few cells, counts drawn from a multinomial
        scores = np.where(rng.random(600) < 0.3 + 0.3 * labels, 1.0, rng.choice([0.0, 0.5], 600))
    est = st.auc_bootstrap_ci(scores, labels, n_resamples=4000, seed=1)

    def auc_mw(pos, neg, axis=-1):
        return ss.mannwhitneyu(pos, neg, axis=axis).statistic / (pos.shape[axis] * neg.shape[axis])

    # two independent samples: scipy resamples each separately (stratified)
    blo, bhi = scipy_percentile_bootstrap((scores[labels], scores[~labels]), auc_mw, vectorized=True)
    assert est.value == pytest.approx(auc_mw(scores[labels], scores[~labels]))
    assert (est.lo, est.hi) == pytest.approx((blo, bhi), abs=0.006)


# --- no number without data -------------------------------------------------------------------

def test_guarded_returns_none_below_the_minimum_or_when_undefined():
    assert st.guarded(5, 30, st.wilson, 2, 5) is None
    assert st.guarded(30, 30, st.wilson, 2, 30) == st.wilson(2, 30)
    assert st.guarded(10, 1, st.auc, [0.1] * 10, [1] * 10) is None
    assert st.summary(None, 5) == {"n": 5, "status": "insufficient_data"}
    assert st.summary(Estimate(0.5, 0.4, 0.6), 96, key="win_rate") == {
        "win_rate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 96
    }


# --- a judge against people -------------------------------------------------------------------

def test_pairwise_calibration_by_hand():
    human = ["a", "a", "b", "b", "tie", "a"]
    judge = ["a", "b", "b", "tie", "tie", None]
    len_a = [10, 50, 10, 30, 5, 1]
    len_b = [20, 40, 30, 20, 5, 1]
    out = st.pairwise_calibration(judge, human, len_a, len_b)
    assert out["pairs"] == 5 and out["missing"] == 1
    assert out["agreement"] == pytest.approx(3 / 5)
    assert out["agreement_decisive"] == pytest.approx(2 / 4)
    assert out["agreement_both_decisive"] == pytest.approx(2 / 3)  # pairs 0, 1, 2
    assert out["cohen_kappa"] == pytest.approx(st.cohen_kappa(judge[:5], human[:5]))
    assert out["swap_consistency"] is None
    assert out["first_position_rate"] == pytest.approx(1 / 3)  # a, b, b
    # judge decisive on unequal lengths: pairs 0 (a, shorter), 1 (b, shorter), 2 (b, longer)
    assert out["longer_preferred_rate"] == pytest.approx(1 / 3)
    # human decisive on unequal lengths: 0 (a, shorter), 1 (a, longer), 2 (b, longer), 3 (b, shorter)
    assert out["human_longer_preferred_rate"] == pytest.approx(2 / 4)
    assert out["n"]["agreement_decisive"] == 4
    assert out["intervals"]["agreement"] == pytest.approx(list(scipy_wilson(3, 5)), abs=1e-3)


def test_a_judge_that_always_picks_the_first_answer_is_all_ties_when_asked_both_ways():
    human = ["a", "b", "a", "tie"]
    out = st.pairwise_calibration(["a"] * 4, human, [1, 2, 3, 4], [4, 3, 2, 1], judge_swapped=["b"] * 4)
    assert out["swap_consistency"] == 0.0
    assert out["first_position_rate"] == 1.0
    assert out["agreement"] == pytest.approx(1 / 4)  # only the human tie
    assert out["agreement_decisive"] == 0.0
    assert out["longer_preferred_rate"] is None  # never decisive


# --- the weekly AUC change test (core.stats.change) ----------------------------------------------

def test_auc_variance_is_mann_whitney_exact_at_no_discrimination():
    from core.stats.change import auc_variance

    # at AUC 0.5 Hanley-McNeil reduces to the exact null variance of U / (m n): (m + n + 1) / (12 m n)
    for m, n in ((4, 16), (10, 10), (37, 250)):
        assert auc_variance(0.5, m, n) == pytest.approx((m + n + 1) / (12 * m * n), rel=1e-12)
    assert auc_variance(1.0, 10, 10) == auc_variance(0.99, 10, 10) > 0  # bounded away from a zero variance


def test_cusum_adds_shortfalls_in_standard_errors_and_restarts_after_an_alarm():
    from core.stats.change import Week, auc_variance, cusum_drop

    steady = [Week(0.8, 20, 80)] * 6
    rows = cusum_drop(steady, k=0.5, h=5, floor=0.6)
    assert [r["z"] for r in rows[:2]] == [None, None] and all(r["cusum"] == 0 for r in rows)
    assert not any(r["drop_alarm"] or r["floor_alarm"] for r in rows)
    # one week below its reference: the sum is that week's shortfall in standard errors minus k
    rows = cusum_drop(steady[:3] + [Week(0.7, 20, 80)], k=0.5, h=5, floor=0.6)
    se = math.sqrt(auc_variance(0.8, 20, 80) + 3 * auc_variance(0.8, 20, 80) / 9)
    assert rows[3]["reference_auc"] == pytest.approx(0.8)
    assert rows[3]["z"] == pytest.approx((0.7 - 0.8) / se) and rows[3]["cusum"] == pytest.approx(-rows[3]["z"] - 0.5)
    # a lasting drop alarms once, then the reference starts again from the alarm week
    rows = cusum_drop(steady[:3] + [Week(0.6, 20, 80)] * 6, k=0.5, h=5, floor=0.5)
    first = next(i for i, r in enumerate(rows) if r["drop_alarm"])
    assert sum(r["drop_alarm"] for r in rows) == 1 and rows[first + 1]["reference_weeks"] == 1
    assert rows[first + 2]["reference_auc"] == pytest.approx(0.6) and rows[-1]["cusum"] == 0
    # a week without an AUC changes nothing
    rows = cusum_drop([Week(0.8, 20, 80), Week(None, 0, 20), Week(0.8, 20, 80)], k=0.5, h=5, floor=0.6)
    assert rows[1]["z"] is None and rows[1]["reference_weeks"] == 1 and rows[2]["reference_weeks"] == 1
