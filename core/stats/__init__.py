"""The statistics behind every rate, win rate and correlation evalgap shows.

Pure functions over numpy arrays: no Django, no database, no scipy at run time (numpy and the
standard library only). Deterministic: every resampling function takes a ``seed`` (default 0).
Intervals are two-sided; ``ci`` (default 0.95) or ``z`` (default 1.96) sets the level.

Conventions:
- An estimate with an interval is an :class:`Estimate` ``(value, lo, hi)``.
- When the data cannot define a number (no items, one class only, a constant variable), an
  estimator raises :class:`InsufficientData` instead of returning NaN. :func:`guarded` turns that,
  and a sample below a minimum n, into ``None``; :func:`summary` renders either as JSON.

Which interval where (see each docstring for the why):

================================  ================================================================
rate of n items                   :func:`wilson`
rate over weighted items          :func:`weighted_proportion` (Hajek ratio, Wilson at Kish's n)
difference of two rates           :func:`diff_proportions` (Newcombe's hybrid score)
rate at a reference mix           :func:`standardise_rate` (direct standardisation)
lift of a signal                  :func:`lift` (delta method on the log scale)
mean over conversations           :func:`cluster_bootstrap_mean` (percentile, whole clusters)
win rate / decisive / ties        :func:`win_rate`, :func:`decisive_win_rate`, :func:`tie_rate`
win rate vs 1/2                   :func:`win_rate_pvalue` (exact sign test / cluster score test)
many comparisons                  :func:`benjamini_hochberg`
length-controlled win rate        :func:`length_controlled_win_rate` (AlpacaEval 2 LC, sandwich)
judge vs people                   :func:`pairwise_calibration`
read any number of times          :func:`mean_sequence`, :func:`decisive_sequence`,
                                  :func:`length_controlled_sequence`, :func:`ppi_decisive_sequence`,
                                  :func:`diff_means_sequence` (confidence sequences, sequential.py)
paired flags, many modes          :func:`mcnemar_exact_p`, :func:`holm`
arms against the declared split   :func:`srm_pvalue`
agreement of two raters           :func:`cohen_kappa`, :func:`cohen_kappa_bootstrap_ci`
rank correlation                  :func:`spearman`, :func:`spearman_bootstrap_ci`,
                                  :func:`spearman_fisher_ci`
separation of two classes         :func:`auc`, :func:`auc_bootstrap_ci` (stratified bootstrap)
================================  ================================================================
"""

from ._base import (
    INSUFFICIENT_DATA,
    Estimate,
    InsufficientData,
    guarded,
    summary,
    z_for,
)
from .association import (
    auc,
    auc_bootstrap_ci,
    cohen_kappa,
    cohen_kappa_bootstrap_ci,
    rankdata,
    spearman,
    spearman_bootstrap_ci,
    spearman_fisher_ci,
)
from .pairwise import (
    benjamini_hochberg,
    decisive_win_rate,
    fit_logistic,
    length_controlled_win_rate,
    pairwise_calibration,
    sign_test_p,
    tie_rate,
    win_rate,
    win_rate_pvalue,
)
from .proportions import (
    diff_proportions,
    kish_n_eff,
    lift,
    standardise_rate,
    weighted_proportion,
    wilson,
)
from .resampling import cluster_bootstrap_mean
from .sequential import (
    decisive_sequence,
    diff_means_sequence,
    holm,
    length_controlled_sequence,
    mcnemar_exact_p,
    mean_sequence,
    mixture_multiplier,
    ppi_decisive_sequence,
    ratio_sequence,
    srm_pvalue,
)

__all__ = [
    "INSUFFICIENT_DATA",
    "Estimate",
    "InsufficientData",
    "auc",
    "auc_bootstrap_ci",
    "benjamini_hochberg",
    "cluster_bootstrap_mean",
    "cohen_kappa",
    "cohen_kappa_bootstrap_ci",
    "decisive_sequence",
    "diff_means_sequence",
    "holm",
    "length_controlled_sequence",
    "mcnemar_exact_p",
    "mean_sequence",
    "mixture_multiplier",
    "ppi_decisive_sequence",
    "ratio_sequence",
    "srm_pvalue",
    "decisive_win_rate",
    "diff_proportions",
    "fit_logistic",
    "guarded",
    "kish_n_eff",
    "length_controlled_win_rate",
    "lift",
    "pairwise_calibration",
    "rankdata",
    "sign_test_p",
    "spearman",
    "spearman_bootstrap_ci",
    "spearman_fisher_ci",
    "standardise_rate",
    "summary",
    "tie_rate",
    "weighted_proportion",
    "wilson",
    "win_rate",
    "win_rate_pvalue",
    "z_for",
]
