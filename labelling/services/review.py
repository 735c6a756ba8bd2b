"""Cases another app wants people to review (generated eval cases): labelling writes each as a
turn of its own source (so it is judged, pushed, pulled and promoted like any production turn) and
puts it in a review batch. The caller keeps only the key it chose and the turn id returned. The turns
are of kind "generated": no production number counts them (docs/architecture-data.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone as dt_timezone

import orjson
from django.db import transaction
from django.utils import timezone

from production.models import Turn
from production.services.generated import turns_mark_generated
from production.services.ingest import source_get_or_create, turns_ingest_body

from ..models import BatchItem, LabellingBatch
from ..vocabulary import GENERATED
from .selection import query_key


@dataclass(frozen=True)
class ReviewCase:
    key: str  # the turn id in the review source, stable across re-runs
    query: str
    model: str
    # Kept on the turn; push pre-fills the reference box from metadata["generation"]["reference_answer"].
    metadata: dict = field(default_factory=dict)


def review_batch_create(*, project_title: str) -> int:
    """An empty batch whose items go to the project `project_title` (pushed by the caller)."""
    return LabellingBatch.objects.create(project_title=project_title, sample_size=0).pk


def review_cases_add(*, batch_id: int, cases: list[ReviewCase], source: str = GENERATED) -> dict[str, int]:
    """Write the cases as turns of `source` (no answer; each its own session, so a reviewer sees no
    other case as earlier conversation) and add each to the batch (stratum "generated",
    inclusion probability 1). Keyed on (source, key): running it again after a crash creates no
    second turn and no second item. Returns {key: turn id}."""
    src = source_get_or_create(name=source)
    keys = [c.key for c in cases]
    have = set(Turn.objects.filter(source=src, external_id__in=keys).values_list("external_id", flat=True))
    todo = [c for c in cases if c.key not in have]
    # One transaction: the turns are never visible (to detection, rates, releases) as production ones.
    with transaction.atomic():
        if todo:
            now = timezone.now().astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            turns_ingest_body(source=src, body=b"".join(orjson.dumps({
                "id": c.key, "session_id": c.key, "timestamp": now, "query": c.query, "response": "",
                "model": c.model, "metadata": c.metadata}) + b"\n" for c in todo))
        turns_mark_generated(source=src, external_ids=keys)
    turn_ids = dict(Turn.objects.filter(source=src, external_id__in=keys).values_list("external_id", "id"))
    with transaction.atomic():
        # A turn goes to labelling once, ever (BatchItem.turn is one-to-one).
        have_item = set(BatchItem.objects.filter(turn_id__in=turn_ids.values()).values_list("turn_id", flat=True))
        BatchItem.objects.bulk_create([
            BatchItem(batch_id=batch_id, turn_id=turn_ids[c.key], stratum=GENERATED, inclusion_probability=1.0,
                      query_key=query_key(c.query))
            for c in cases if turn_ids[c.key] not in have_item])
    return turn_ids
