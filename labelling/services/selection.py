"""Which production turns go to annotators: every failure candidate, plus a stratified random
sample of a month's turns with each item's inclusion probability (so label-based rates can be
weighted back to production: weight = 1 / inclusion_probability)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from production.models import Turn

from ..models import BatchItem, LabellingBatch
from ..vocabulary import FAILURE, SAMPLED_STRATA, stratum_of

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def query_key(query: str) -> str:
    """Near-duplicate key: case, punctuation, spacing and word order do not make a new query."""
    words = _NON_WORD.sub(" ", query.lower()).split()
    return " ".join(sorted(words))[:500]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=dt_timezone.utc)
    except (ValueError, TypeError):
        raise ValueError(f"month: expected YYYY-MM, got {month!r}") from None
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=dt_timezone.utc)
    return start, end


def previous_month(today: date | None = None) -> str:
    today = today or timezone.now().date()
    return f"{today.year - (today.month == 1)}-{(today.month - 2) % 12 + 1:02d}"


@dataclass
class _Candidate:
    turn_id: int
    external_id: str
    key: str
    stratum: str
    probability: float
    from_failures: bool = False


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of n over the strata, remainders to the largest fractions."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    exact = {s: n * sizes[s] / total for s in sizes}
    alloc = {s: int(exact[s]) for s in sizes}
    for s in sorted(sizes, key=lambda s: (alloc[s] - exact[s], s))[: n - sum(alloc.values())]:
        alloc[s] += 1
    return alloc


@transaction.atomic
def batch_select(*, failures: bool, sample: int, month: str | None, seed: int | None) -> LabellingBatch:
    """Create a batch. Same seed and same data give the same sample; a turn is never selected twice."""
    month = month or previous_month()
    seed = 0 if seed is None else seed
    start, end = month_bounds(month)
    unsent = Turn.objects.production().filter(labelling_item__isnull=True).select_related("signals")
    chosen: list[_Candidate] = []

    if failures:
        for t in unsent.filter(signals__failure_candidate=True).order_by("source_id", "external_id"):
            chosen.append(_Candidate(t.id, t.external_id, query_key(t.query), FAILURE, 1.0, from_failures=True))

    if sample > 0:
        taken = {c.turn_id for c in chosen}
        population: dict[str, list[Turn]] = {s: [] for s in SAMPLED_STRATA}
        for t in unsent.filter(timestamp__gte=start, timestamp__lt=end).order_by("source_id", "external_id"):
            if t.id in taken:
                continue
            population[stratum_of(getattr(t, "signals", None))].append(t)
        if failures:
            population[FAILURE] = []  # already taken in full above
        alloc = _allocate({s: len(v) for s, v in population.items()}, sample)
        for s in SAMPLED_STRATA:
            if not alloc[s]:
                continue
            rnd = random.Random(f"{seed}:{month}:{s}")
            picked = rnd.sample(population[s], alloc[s])
            p = alloc[s] / len(population[s])
            chosen += [_Candidate(t.id, t.external_id, query_key(t.query), s, p)
                       for t in sorted(picked, key=lambda t: (t.source_id, t.external_id))]

    # Near-duplicates are sent once: against each other and against what was sent before.
    seen = set(BatchItem.objects.filter(query_key__in={c.key for c in chosen}).values_list("query_key", flat=True))
    keep, skipped = [], 0
    for c in chosen:
        if c.key in seen:
            skipped += 1
            continue
        seen.add(c.key)
        keep.append(c)

    batch = LabellingBatch.objects.create(
        month=month, seed=seed, sample_size=sample, include_failures=failures,
        failures=sum(c.from_failures for c in keep),
        sampled=sum(not c.from_failures for c in keep),
        skipped_duplicates=skipped,
    )
    BatchItem.objects.bulk_create([
        BatchItem(batch=batch, turn_id=c.turn_id, stratum=c.stratum, inclusion_probability=c.probability,
                  query_key=c.key)
        for c in keep
    ], batch_size=1000)
    return batch


def batch_select_monthly() -> LabellingBatch:
    return batch_select(failures=True, sample=settings.LABELLING_SAMPLE_SIZE, month=previous_month(), seed=None)
