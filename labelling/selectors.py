"""Reads for other apps: what people picked on pairwise tasks."""
from __future__ import annotations

from .models import PairwiseAnnotation


def pairwise_picks(*, keys) -> dict[str, list[dict]]:
    """{task key: [{"annotator", "pick", "updated_at"}]} of the live, valid picks on those tasks
    (deleted, cancelled and invalid annotations left out). Keys without a pick are absent."""
    out: dict[str, list[dict]] = {}
    rows = (PairwiseAnnotation.objects.filter(task__key__in=list(keys), deleted=False, was_cancelled=False,
                                              invalid_reason="")
            .exclude(pick="").order_by("id").values_list("task__key", "annotator", "pick", "ls_updated_at"))
    for key, annotator, pick, updated in rows:
        out.setdefault(key, []).append({"annotator": annotator, "pick": pick, "updated_at": updated})
    return out
