"""Reads of the fitted failure model (services.failure_model fits it): what the page and the command show."""
from __future__ import annotations

from production.services.failure_model import failure_model_active

from ..models import FailureModel


def failure_model_using() -> str:
    """What computes failure_probability in detection now."""
    active = failure_model_active()
    return f"fitted model v{active.version}" if active else "stated weights (SIGNALS_FAILURE_PROBABILITY)"


def failure_model_dict(model: FailureModel) -> dict:
    return {"version": model.version, "fitted_at": model.fitted_at.isoformat(), "active": model.active,
            "n_labelled": model.n_labelled, "coefficients": model.coefficients, "metrics": model.metrics,
            "rephrase_prior": model.metrics.get("rephrase_prior")}


def failure_model_summary() -> dict | None:
    """The active (else latest) fitted model, or None when none was ever fitted."""
    model = FailureModel.objects.filter(active=True).first() or FailureModel.objects.first()
    return None if model is None else {**failure_model_dict(model), "using": failure_model_using()}
