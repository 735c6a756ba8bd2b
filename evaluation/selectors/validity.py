"""Which production signals predict a wrong answer, measured on the team's own labelled items.

Each labelled production turn has a human verdict (labelling's adjudicated one: an admin's
resolution, else the annotators' majority with enough agreement; a tie, disagreement or
`cannot_judge` gives none) and was selected with a known inclusion probability,
so each weighs 1 / inclusion_probability and the rates estimate the production population, not
the over-sampled failure candidates. "Incorrect" counts 1 for `incorrect`, 0.5 for
`partially_correct` and 0 for `correct` (one minus the grader's score); AUCs compare `incorrect`
with `correct` items.
"""
from __future__ import annotations

import numpy as np

from core import stats
from labelling.models import BatchItem
from labelling.selectors import adjudicated_verdicts
from labelling.vocabulary import VERDICT_SCORES
from production.services.failure_model import rephrase_score_of

from .rates import FAILURE, signal_names

# How incorrect each verdict says the answer was: labelling's one scale, turned around.
INCORRECT = {v: 1.0 - score for v, score in VERDICT_SCORES.items()}


def human_verdicts() -> dict[int, str]:
    """BatchItem id -> the human verdict (labelling's adjudicated one: a resolution, else a majority
    with enough agreement), for the verdicts that carry a score (not cannot_judge)."""
    return {k: v for k, v in adjudicated_verdicts().items() if v in INCORRECT}


def labelled_items() -> dict:
    """Arrays over the labelled production turns whose signals were detected:
    y (incorrect: 1 / 0.5 / 0), w (1 / inclusion probability), one 0/1 array per flag, the
    failure probability where recorded, and from the evidence the rephrase detector's balanced
    score (None without a next query). Generated cases (not production samples) are left out."""
    verdicts = human_verdicts()
    flags = (FAILURE, *signal_names())
    # One join over the batch items (no id list sent back): the items without a verdict are few.
    rows = (BatchItem.objects.exclude(stratum=BatchItem.Stratum.GENERATED)
            .values_list("id", "inclusion_probability", "turn__signals__turn_id",
                         *(f"turn__signals__{f}" for f in flags), "turn__signals__failure_probability",
                         "turn__signals__evidence"))
    y, w, cols, probs, undetected = [], [], [[] for _ in flags], [], 0
    scores = []
    for row in rows.iterator(chunk_size=10000):
        verdict = verdicts.get(row[0])
        if verdict is None:
            continue
        if row[2] is None:
            undetected += 1  # labelled, but its signals were never detected
            continue
        y.append(INCORRECT[verdict])
        w.append(1.0 / max(row[1] or 1.0, 1e-9))
        for i in range(len(flags)):
            cols[i].append(bool(row[3 + i]))
        probs.append(row[-2])
        scores.append(rephrase_score_of(row[-1]))
    out = {"y": np.array(y, dtype=float), "w": np.array(w, dtype=float),
           "flags": {f: np.array(cols[i], dtype=float) for i, f in enumerate(flags)},
           "labelled": len(verdicts), "undetected": undetected, "failure_probability": probs,
           "rephrase_score": scores}
    return out


def _auc(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict:
    """AUC of `score` for incorrect (y = 1) against correct (y = 0) items, weighted, with a
    stratified bootstrap interval; partially correct items are left out."""
    keep = (y == 0) | (y == 1)
    n = int(keep.sum())
    est = stats.guarded(n, 2, stats.auc_bootstrap_ci, score[keep], y[keep].astype(int), w[keep])
    return stats.summary(est, n, key="auc")


def _estimate(values: np.ndarray, weights: np.ndarray) -> dict:
    est = stats.guarded(values.size, 1, stats.weighted_proportion, values, weights)
    return stats.summary(est, int(values.size))


def signal_validity() -> dict:
    """Per flag (the failure-candidate flag first, then every signal): P(incorrect | flag),
    P(incorrect), their ratio (lift) with a delta-method interval, and the flag's AUC.
    {"labelled", "used", "p_incorrect": {...}, "rows": [...], "failure_probability_auc"?}"""
    data = labelled_items()
    y, w = data["y"], data["w"]
    p_all = _estimate(y, w)
    rows = []
    for name, s in data["flags"].items():
        on = s == 1
        given = _estimate(y[on], w[on])
        lift = stats.guarded(int(on.sum()), 1, stats.lift, y, s, w) if y.size else None
        rows.append({
            "signal": name,
            "labelled": int(on.sum()),
            "p_incorrect_given_signal": given.get("rate"),
            "p_incorrect_given_signal_ci": [given.get("ci_low"), given.get("ci_high")] if "rate" in given else None,
            "p_incorrect": p_all.get("rate"),
            "lift": lift.value if lift else None,
            "ci_low": lift.lo if lift else None,
            "ci_high": lift.hi if lift else None,
            "auc": _auc(s, y, w) if y.size else {"n": 0, "status": stats.INSUFFICIENT_DATA},
        })
    out = {"labelled": data["labelled"], "used": int(y.size), "undetected": data["undetected"],
           "p_incorrect": p_all, "rows": rows}
    probs = data["failure_probability"]
    have = np.array([p is not None for p in probs], dtype=bool)
    score = np.array([p if p is not None else 0.0 for p in probs], dtype=float)
    out["failure_probability_auc"] = (_auc(score[have], y[have], w[have]) if have.any()
                                      else {"n": 0, "status": stats.INSUFFICIENT_DATA})
    return out


CONTRACT_KEYS = ("signal", "labelled", "p_incorrect_given_signal", "p_incorrect", "lift", "ci_low", "ci_high")


def signal_validity_rows(validity: dict) -> list[dict]:
    """The report's signal_validity entries (exact keys)."""
    return [{k: row[k] for k in CONTRACT_KEYS} for row in validity["rows"]]
