"""Reading turns for signal detection and writing its rows: the database half of ``signals``.

Each batch of sessions is claimed (``SELECT … FOR UPDATE SKIP LOCKED``), read, detected, written
and marked clean in ONE transaction: a crash leaves the batch dirty, and ingest re-dirtying a
claimed session waits for the commit and leaves it dirty for the next run. The hot path works on
plain tuples and, on PostgreSQL, writes with COPY: model instances cost more than detection.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict

import orjson
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Event, Session, Turn, TurnSignals
from ..signal_definitions import DEFINITION_VERSION
from .signals import FLAG_COLUMNS, DetectConfig, DetectResult, SignalRow, detect_rows


def load_batch(session_ids: list[int]) -> tuple[list[tuple], dict[int, list[tuple]]]:
    turns = (Turn.objects.filter(session_id__in=session_ids)
             .order_by("session_id", F("timestamp").asc(nulls_last=True), F("position").asc(nulls_last=True), "id")
             .values_list("id", "external_id", "session_id", "timestamp", "response_timestamp", "query"))
    events: dict[int, list[tuple]] = defaultdict(list)
    for e in (Event.objects.filter(turn__session_id__in=session_ids).order_by("timestamp", "id")
              .values_list("turn_id", "id", "type", "timestamp", "actor", "reason", "corrected_response")):
        events[e[0]].append(e)
    return list(turns), events


def write_rows(rows: list[SignalRow]) -> None:
    if connection.vendor != "postgresql":
        TurnSignals.objects.bulk_create(
            [TurnSignals(turn_id=r.turn_id, corrected_response=r.corrected_response, evidence=r.evidence,
                         failure_probability=r.failure_probability, definition_version=DEFINITION_VERSION, **r.flags)
             for r in rows],
            batch_size=1000, update_conflicts=True, unique_fields=["turn"],
            update_fields=[*FLAG_COLUMNS, "failure_probability", "definition_version", "corrected_response",
                           "evidence", "detected_at"],
        )
        return
    # The sessions are claimed (row-locked) by this transaction: replacing their signals is safe.
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    now = timezone.now().isoformat()
    w.writerows((r.turn_id, *("t" if r.flags[c] else "f" for c in FLAG_COLUMNS), r.failure_probability,
                 DEFINITION_VERSION, r.corrected_response, orjson.dumps(r.evidence).decode(), now) for r in rows)
    buf.seek(0)
    with connection.cursor() as c:
        c.execute("DELETE FROM production_turnsignals WHERE turn_id = ANY(%s)", [[r.turn_id for r in rows]])
        c.copy_expert(
            f"COPY production_turnsignals (turn_id, {', '.join(FLAG_COLUMNS)}, failure_probability, "
            f"definition_version, corrected_response, evidence, detected_at) "
            f"FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (corrected_response))", buf)


def run_batches(*, detector, cfg: DetectConfig, full: bool, batch_sessions: int, progress=None) -> DetectResult:
    result = DetectResult()
    last_id = 0
    while True:
        with transaction.atomic():
            todo = Session.objects.all() if full else Session.objects.filter(dirty=True)
            ids = list(todo.select_for_update(skip_locked=True).filter(id__gt=last_id).order_by("id")
                       .values_list("id", flat=True)[:batch_sessions])
            if not ids:
                break
            last_id = ids[-1]
            turns, events = load_batch(ids)
            rows = detect_rows(turns, events, detector, cfg)
            write_rows(rows)
            Session.objects.filter(id__in=ids).update(dirty=False)
        result.sessions += len(ids)
        result.add(rows)
        if progress:
            progress(len(ids))
    return result
