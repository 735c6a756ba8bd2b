"""Failure probability fitted on this team's labels (issue #23 item 1; docs/failure-model.md).

P(answer judged incorrect | signals, event types, rephrase score) by an L2-penalised logistic
regression on the labelled production turns, each weighted by 1 / inclusion probability (so the
fit describes production, not the over-sampled candidates); "incorrect" is labelling's soft scale
(1 / 0.5 / 0). Held out by stratified K-fold: every labelled turn gets a prediction from a model
that did not see it, and the fitted model and the stated weights (the noisy-OR of
SIGNALS_FAILURE_PROBABILITY and the re-ask probability) are scored on the same turns: AUC and
Brier with bootstrap intervals, a reliability table. Each input's lift is its odds ratio with a
sandwich (survey-weight-robust) interval.

Below FAILURE_MODEL_MIN_LABELS labelled turns, or FAILURE_MODEL_MIN_PER_CLASS of either class,
nothing is fitted and detection keeps the stated weights ("insufficient data: N labelled, need M").
A fit is stored as a new FailureModel version, made active, and its parameters handed to
production (``failure_model_set``); a refit on the same inputs changes nothing.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
from django.conf import settings
from django.db import transaction
from scipy.optimize import minimize_scalar

from core import stats
from production.services import failure_model as production_model

from ..failure_fit import auc, brier_ci, fit, held_out, reliability
from ..models import FailureModel
from ..selectors.failure_model import failure_model_dict, failure_model_using
from ..selectors.validity import labelled_items

FEATURES = production_model.FEATURES


def _design(data: dict) -> np.ndarray:
    """The model's inputs per labelled turn, in FEATURES order (production's one definition)."""
    flags = data["flags"]
    names = [n for n in flags if n != "failure_candidate"]
    rows = [production_model.features({n: flags[n][i] for n in names}, data["rephrase_score"][i])
            for i in range(data["y"].size)]
    return np.array(rows, dtype=float).reshape(-1, len(FEATURES))


def _stated(data: dict) -> np.ndarray:
    """What the stated weights give each labelled turn: recomputed from the flags and the balanced
    score at SIGNALS_REPHRASE_PRIOR (a turn may have been detected under a fitted model)."""
    weights = settings.SIGNALS_FAILURE_PROBABILITY
    counted = tuple(n for n, on in (("human_override", True),
                                    ("thumbs_down", settings.SIGNALS_FAILURE_ON_THUMBS_DOWN),
                                    ("escalated", settings.SIGNALS_FAILURE_ON_ESCALATION)) if on)
    flags, prior = data["flags"], settings.SIGNALS_REPHRASE_PRIOR
    at_prior = production_model.at_prior
    return np.array([production_model.stated_failure_probability(
        {n: bool(flags[n][i]) for n in counted}, None if s is None else at_prior(s, prior), weights, counted)
        for i, s in enumerate(data["rephrase_score"])], dtype=float)


def rephrase_prior(data: dict, x: np.ndarray) -> dict:
    """The re-ask base rate estimated from the labels.

    SIGNALS_REPHRASE_PRIOR moves the detector's balanced score s to P(re-ask) = odds(s) * prior /
    (1 - prior), and that probability enters failure_probability as the chance the answer failed.
    So the prior is fitted as the one offset c = logit(prior) for which sigmoid(logit(s) + c)
    matches the labelled verdicts, on the turns with a next query and no counted event (where the
    re-ask is the only evidence), weighted by 1 / inclusion probability; interval by the sandwich.
    """
    reaction = x[:, 0] == 1
    events = np.zeros(x.shape[0], dtype=bool)
    for name in ("human_override", "thumbs_down", "escalated"):
        events |= x[:, FEATURES.index(name)] == 1
    on = reaction & ~events
    y, w = data["y"][on], data["w"][on]
    n = int(on.sum())
    need = settings.FAILURE_MODEL_MIN_PER_CLASS
    if n < need or (y >= 0.5).sum() < 1 or (y < 0.5).sum() < 1:
        return {"n": n, "status": stats.INSUFFICIENT_DATA, "value": None, "source": "setting",
                "setting": settings.SIGNALS_REPHRASE_PRIOR}
    s = np.clip(x[on, 1], 1e-6, 1 - 1e-6)
    base = np.log(s / (1 - s))
    wn = w * (n / w.sum())

    def loss(c: float) -> float:
        eta = base + c
        return float(np.sum(wn * (np.logaddexp(0.0, eta) - y * eta)))

    c = float(minimize_scalar(loss, bounds=(-12.0, 12.0), method="bounded").x)
    mu = 1.0 / (1.0 + np.exp(-(base + c)))
    info = float(np.sum(wn * mu * (1 - mu)))
    se = math.sqrt(float(np.sum((wn * (y - mu)) ** 2))) / info if info > 0 else float("inf")
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    return {"value": sig(c), "ci_low": sig(c - 1.96 * se), "ci_high": sig(c + 1.96 * se), "n": n,
            "source": "fitted", "setting": settings.SIGNALS_REPHRASE_PRIOR}


def _lift(name: str, n: int, b: float, se: float) -> dict:
    """An input's odds ratio with its interval; an input no labelled turn has says nothing."""
    if n == 0:
        return {"input": name, "n": 0, "status": stats.INSUFFICIENT_DATA, "coefficient": None, "odds_ratio": None,
                "ci_low": None, "ci_high": None}
    return {"input": name, "n": n, "coefficient": float(b), "odds_ratio": math.exp(b),
            "ci_low": math.exp(b - 1.96 * se), "ci_high": math.exp(b + 1.96 * se)}


def _insufficient(n: int, n_pos: int, n_neg: int) -> str | None:
    need, per = settings.FAILURE_MODEL_MIN_LABELS, settings.FAILURE_MODEL_MIN_PER_CLASS
    if n < need or n_pos < per or n_neg < per:
        return (f"insufficient data: {n} labelled, need {need} (with at least {per} judged incorrect and "
                f"{per} correct; have {n_pos} and {n_neg}): keeping the stated weights")
    return None


def failure_model_fit() -> dict:
    """Fit, evaluate held out, store a new active version and hand it to production; or say why not.
    Idempotent: the same labelled inputs give back the stored version unchanged."""
    data = labelled_items()
    y, w = data["y"], data["w"]
    x = _design(data)
    n, n_pos, n_neg = int(y.size), int((y == 1).sum()), int((y == 0).sum())
    base = {"n_labelled": n, "n_incorrect": n_pos, "n_correct": n_neg,
            "min_labels": settings.FAILURE_MODEL_MIN_LABELS, "min_per_class": settings.FAILURE_MODEL_MIN_PER_CLASS}
    message = _insufficient(n, n_pos, n_neg)
    if message:
        return {"status": stats.INSUFFICIENT_DATA, "message": message, **base, "version": None, "using": failure_model_using()}

    folds = settings.FAILURE_MODEL_FOLDS
    digest = hashlib.sha1()
    for arr in (x, y, w):
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(repr((settings.FAILURE_MODEL_L2, folds, FEATURES)).encode())
    data_hash = digest.hexdigest()
    latest = FailureModel.objects.first()
    if latest is not None and latest.data_hash == data_hash:
        if latest.metrics.get("beats_stated") and not latest.active:
            _activate(latest)
        return {"status": "unchanged", "message": f"unchanged: v{latest.version} was fitted on these labels",
                **base, **failure_model_dict(latest), "using": failure_model_using()}

    # Held out: each turn predicted by the model fitted on the other folds.
    l2 = settings.FAILURE_MODEL_L2
    held = held_out(x, y, w, l2, folds)
    stated = _stated(data)
    brier = brier_ci({"fitted": held, "stated": stated}, y, w)
    beta, cov = fit(x, y, w, l2)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    lifts = [_lift(name, int((x[:, j] != 0).sum()), beta[j + 1], se[j + 1]) for j, name in enumerate(FEATURES)]
    prior = rephrase_prior(data, x)
    metrics = {
        "held_out": {"method": f"{folds}-fold cross-validation, stratified by verdict", "n": n,
                     "fitted": {"auc": auc(held, y, w), "brier": brier["fitted"]},
                     "stated": {"auc": auc(stated, y, w), "brier": brier["stated"]},
                     "brier_difference": brier["difference"]},
        "reliability": reliability(held, y, w),
        "reliability_stated": reliability(stated, y, w),
        "lifts": lifts,
        "rephrase_prior": prior,
        "l2": settings.FAILURE_MODEL_L2,
        # The rule (benchmarks/sim_failure_model.py): the fit replaces the stated weights only when
        # its held-out Brier score is lower with the whole 95% interval of the difference below 0.
        "beats_stated": brier["difference"]["ci_high"] < 0,
    }
    coefficients = {"intercept": float(beta[0]), "features": {name: float(beta[j + 1]) for j, name in enumerate(FEATURES)}}
    with transaction.atomic():
        version = (FailureModel.objects.select_for_update().order_by("-version").values_list("version", flat=True)
                   .first() or 0) + 1
        model = FailureModel.objects.create(version=version, n_labelled=n, coefficients=coefficients, metrics=metrics,
                                            rephrase_prior=prior["value"], data_hash=data_hash)
        if metrics["beats_stated"]:
            _activate(model)
            message = f"fitted v{version} on {n} labelled turns: active"
        else:
            _deactivate()
            d = brier["difference"]
            message = (f"fitted v{version} on {n} labelled turns, but it does not beat the stated weights held out "
                       f"(Brier difference {d['brier']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]): keeping the "
                       f"stated weights")
    return {"status": "fitted", "message": message, **base, **failure_model_dict(model), "using": failure_model_using()}


def _deactivate() -> None:
    with transaction.atomic():
        FailureModel.objects.filter(active=True).update(active=False)
        production_model.failure_model_clear()


def _activate(model: FailureModel) -> None:
    with transaction.atomic():
        FailureModel.objects.exclude(pk=model.pk).filter(active=True).update(active=False)
        FailureModel.objects.filter(pk=model.pk).update(active=True)
        model.active = True
        production_model.failure_model_set(version=model.version, coefficients=model.coefficients,
                                           rephrase_prior=model.rephrase_prior)
