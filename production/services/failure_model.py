"""The fitted failure model's parameters, as production holds and applies them.

``evaluation`` fits P(answer judged incorrect | signals) on the team's labels and hands the
parameters over with :func:`failure_model_set`; signal detection then computes
``failure_probability`` as the logistic of ``intercept + sum(coefficient * feature)`` over
:data:`FEATURES` (read by :func:`features`, the one definition both apps use), and the rephrase
detector takes the re-ask prior estimated from the labels. Without active parameters detection
keeps the stated event weights (noisy-OR, :func:`stated_failure_probability`).
"""
from __future__ import annotations

import math

from django.db import transaction

from ..models import FailureModelParameters, Session
from ..signal_definitions import SIGNAL_NAMES

# The model's inputs. "reaction": a next query came within the window (rephrased or followed up);
# "rephrase_score": the detector's P(re-ask) at a balanced base rate, 0 without a next query. The
# rephrased/followed_up flags themselves are left out: they depend on the prior (the threshold
# is applied after it), so a model on them would shift when the prior it hands over is used.
EVENT_FEATURES = tuple(n for n in SIGNAL_NAMES if n not in ("rephrased", "followed_up"))
FEATURES: tuple[str, ...] = ("reaction", "rephrase_score", *EVENT_FEATURES)


def features(flags: dict, rephrase_score: float | None) -> list[float]:
    """The model's input vector (in FEATURES order) for one turn's flags and rephrase score."""
    reaction = bool(flags.get("rephrased") or flags.get("followed_up"))
    return [float(reaction), float(rephrase_score or 0.0) if reaction else 0.0,
            *(float(bool(flags.get(n))) for n in EVENT_FEATURES)]


def rephrase_score_of(evidence: dict | None) -> float | None:
    """The balanced rephrase score detection recorded in a turn's evidence, if it had a next query."""
    for name in ("rephrased", "followed_up"):
        item = (evidence or {}).get(name)
        if isinstance(item, dict) and item.get("score") is not None:
            return float(item["score"])
    return None


def at_prior(score: float, prior: float) -> float:
    """The detector's balanced score moved to a base rate (rephrase.detector's shift)."""
    s = min(max(score, 1e-9), 1 - 1e-9)
    p = min(max(prior, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + (1 - s) / s * (1 - p) / p)


def stated_failure_probability(flags: dict, p_reask: float | None, weights: dict, counted: tuple) -> float:
    """The stated weights' P(failed): noisy-OR of the re-ask probability and each counted event's
    weight (what detect_rows computes without a fitted model)."""
    not_failed = 1.0 - (p_reask or 0.0)
    for name in counted:
        if flags.get(name):
            not_failed *= 1.0 - weights[name]
    return 1.0 - not_failed


def validate(coefficients: dict) -> tuple[float, tuple[float, ...]]:
    """(intercept, coefficients in FEATURES order); a clear error naming the missing or bad field."""
    if not isinstance(coefficients, dict) or not isinstance(coefficients.get("features"), dict):
        raise ValueError("coefficients: expected {'intercept': number, 'features': {name: number}}")
    values = {"intercept": coefficients.get("intercept"), **{n: coefficients["features"].get(n) for n in FEATURES}}
    for name, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"coefficients: {name!r} must be a finite number, got {v!r}")
    return float(values["intercept"]), tuple(float(values[n]) for n in FEATURES)


def logistic(intercept: float, coefs: tuple[float, ...], x: list[float]) -> float:
    eta = intercept + sum(c * v for c, v in zip(coefs, x))
    return 1.0 / (1.0 + math.exp(-eta)) if eta > -700 else 0.0


def failure_model_set(*, version: int, coefficients: dict, rephrase_prior: float | None = None):
    """Store these parameters as the active ones (the previous active row is kept, inactive).
    When the active version changes every session is marked dirty, so the next detection run (the
    beat's, every 5 minutes) recomputes each stored failure_probability with them. Idempotent:
    setting the active version again changes nothing else."""
    validate(coefficients)
    if rephrase_prior is not None and not 0.0 < rephrase_prior < 1.0:
        raise ValueError(f"rephrase_prior: must be in (0, 1), got {rephrase_prior!r}")
    with transaction.atomic():
        if not FailureModelParameters.objects.filter(active=True, version=version).exists():
            Session.objects.filter(dirty=False).update(dirty=True)
        FailureModelParameters.objects.filter(active=True).exclude(version=version).update(active=False)
        row, _ = FailureModelParameters.objects.update_or_create(
            version=version, defaults={"coefficients": coefficients, "rephrase_prior": rephrase_prior,
                                       "active": True})
    return row


def failure_model_clear() -> int:
    """Back to the stated weights: no active parameters (sessions re-dirtied as above). Returns how
    many rows were deactivated."""
    with transaction.atomic():
        cleared = FailureModelParameters.objects.filter(active=True).update(active=False)
        if cleared:
            Session.objects.filter(dirty=False).update(dirty=True)
    return cleared


def failure_model_active():
    """The active parameters row, or None (detection then uses the stated weights)."""
    return FailureModelParameters.objects.filter(active=True).order_by("-version").first()
