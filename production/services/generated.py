"""Turns that are not production traffic: cases written for review (generation), stored as turns so
that they are labelled, judged and promoted like one. Marked `Turn.Kind.GENERATED`, they carry no
signals, and `Turn.objects.production()` (what every production number reads) leaves them out."""
from __future__ import annotations

from django.db import transaction

from ..models import Source, Turn, TurnSignals


@transaction.atomic
def turns_mark_generated(*, source: Source, external_ids: list[str]) -> int:
    """Mark these turns of `source` as generated and drop any signals detection gave them. Call it in the
    transaction that ingested them, so no reader ever sees them as production. Idempotent; returns
    how many turns changed kind."""
    turns = Turn.objects.filter(source=source, external_id__in=external_ids)
    changed = turns.exclude(kind=Turn.Kind.GENERATED).update(kind=Turn.Kind.GENERATED)
    TurnSignals.objects.filter(turn__in=turns.values("id")).delete()
    return changed
