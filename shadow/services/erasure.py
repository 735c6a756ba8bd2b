"""Erasure of a production subject, shadow's part (production.dispatch.subject_erased)."""
from __future__ import annotations

from django.db import transaction

from labelling.services.erasure import pairwise_tasks_erase

from ..models import ShadowAuditItem, ShadowPair, ShadowVerdict


@transaction.atomic
def pairs_erase(*, turn_ids: list[int]) -> dict:
    """Mirrored and replayed answers to the subject's turns, and the judge's words about them, go;
    outcomes (the rates) stay. Audit tasks about those pairs leave Label Studio."""
    pairs = ShadowPair.objects.filter(turn_id__in=turn_ids)
    counts = {"shadow_pairs": pairs.update(candidate_answer="", outcome_reason=""),
              "shadow_verdicts": ShadowVerdict.objects.filter(pair__in=pairs).update(raw_answer="")}
    keys = list(ShadowAuditItem.objects.filter(pair__in=pairs).values_list("task_key", flat=True))
    return {**counts, **(pairwise_tasks_erase(keys=keys) if keys else {})}
