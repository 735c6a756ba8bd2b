"""Mirror: the gateway already sent a candidate's answers, as `{"type": "shadow", ...}` lines of the
production log. Production stores them (`MirroredAnswer`, attached to their turn before or after
it arrives) knowing nothing of releases; this turns them into pairs.

A mirrored answer becomes a pair when its turn has arrived and its release name is a known
release. One whose release is unknown is left where it is and counted (by name) in every sync's
result: it becomes a pair on the first sync after `release_add NAME`. One whose turn has not
arrived yet waits the same way. A (turn, release) that already has a pair (replayed, or an
earlier mirrored line) keeps it: the first answer wins, as in ingest.
"""
from __future__ import annotations

from datetime import timezone as dt_timezone

from django.db import transaction
from django.db.models import Count

from releases.models import Release
from releases.selectors import release_turn_filter

from ..models import ShadowPair

BATCH = 2000


def _mirrored_model():
    from production.models import MirroredAnswer

    return MirroredAnswer


def mirror_pairs_sync() -> dict:
    """Make pairs of every mirrored answer that can be paired now. Safe to run any time, twice."""
    MirroredAnswer = _mirrored_model()
    releases = {r.name: r for r in Release.objects.all()}
    paired = ShadowPair.objects.filter(mirrored_answer_id__isnull=False).values("mirrored_answer_id")
    unpaired = MirroredAnswer.objects.exclude(pk__in=paired)
    out = {"pairs_created": 0, "already_paired": 0, "self_served": 0,
           "waiting_for_turn": unpaired.filter(turn__isnull=True).count(),
           "unknown_release": dict(unpaired.exclude(release__in=list(releases)).values_list("release")
                                   .annotate(n=Count("id")).order_by("release"))}
    candidates = (unpaired.filter(turn__isnull=False, release__in=list(releases))
                  .select_related("turn").order_by("id"))
    last = 0
    while True:
        batch = list(candidates.filter(pk__gt=last)[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        with transaction.atomic():
            out_batch = _pair_batch(batch, releases)
        for k, v in out_batch.items():
            out[k] += v
    return out


def _pair_batch(batch, releases: dict[str, Release]) -> dict:
    from production.models import Turn

    counts = {"pairs_created": 0, "already_paired": 0, "self_served": 0}
    existing = set(ShadowPair.objects.filter(turn_id__in={m.turn_id for m in batch})
                   .values_list("turn_id", "release_id"))
    # A candidate compared with itself says nothing: skip answers mirrored for the release that served.
    served_by = {}
    for name in {m.release for m in batch}:
        rel = releases[name]
        served_by[name] = set(Turn.objects.filter(release_turn_filter(rel), pk__in=[m.turn_id for m in batch
                                                                                  if m.release == name])
                              .values_list("pk", flat=True))
    new = []
    for m in batch:
        rel = releases[m.release]
        if m.turn_id in served_by[m.release]:
            counts["self_served"] += 1
            continue
        if (m.turn_id, rel.pk) in existing:
            counts["already_paired"] += 1
            continue
        existing.add((m.turn_id, rel.pk))
        stamp = m.turn.timestamp or m.received_at
        new.append(ShadowPair(turn_id=m.turn_id, release=rel, origin=ShadowPair.Origin.MIRROR,
                              mirrored_answer_id=m.pk, session_id=m.turn.session_id,
                              day=stamp.astimezone(dt_timezone.utc).date(), candidate_answer=m.response,
                              latency_ms=m.latency_ms, candidate_input="raw"))  # the gateway mirrored the request
    ShadowPair.objects.bulk_create(new, ignore_conflicts=True)
    counts["pairs_created"] += len(new)
    return counts
