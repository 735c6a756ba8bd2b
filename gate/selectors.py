"""Reads: recorded gate decisions, per release and one by one."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from releases.models import Release
from releases.selectors import release_get, release_list

from .models import GateDecision
from .policy import KEYS, PolicyError, policy_floor
from .render import as_markdown


def decision_list(*, release: str | None = None, as_candidate_only: bool = False) -> QuerySet[GateDecision]:
    """Newest first; with `release`, the decisions about it (as candidate, or also as baseline)."""
    qs = GateDecision.objects.select_related("candidate", "baseline")
    if release:
        rel = release_get(name=release)
        if rel is None:
            return qs.none()
        qs = qs.filter(Q(candidate=rel) if as_candidate_only else Q(candidate=rel) | Q(baseline=rel))
    return qs.order_by("-created_at", "-id")


def decision_get(*, pk: int) -> GateDecision | None:
    return GateDecision.objects.select_related("candidate", "baseline").filter(pk=pk).first()


def gate_releases() -> list[Release]:
    """Releases a decision can be asked about (every release)."""
    return list(release_list().order_by("name"))


def release_by_name(name: str) -> Release | None:
    return release_get(name=name)


def decision_markdown(decision: GateDecision) -> str:
    """The decision for a pull request (as `release_gate --format markdown`)."""
    return as_markdown(decision)


def decision_policy_rows(decision: GateDecision) -> list[tuple]:
    """(key, value in force, what it means) for each policy key the decision recorded."""
    return [(k, decision.policy.get(k), KEYS[k][1]) for k in KEYS if k in decision.policy]


def shadow_window_days() -> int:
    """The days of judged pairs the gate reads (the server's policy): the shadow pages read the same
    window, so the page and the gate count the same pairs."""
    try:
        return policy_floor().shadow_window_days
    except PolicyError:  # a broken policy file is reported where the gate is asked, not on every page
        from django.conf import settings

        return settings.SHADOW_REPORT_DAYS
