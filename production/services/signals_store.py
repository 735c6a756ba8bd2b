"""Reading turns for signal detection and writing its rows: the database half of ``signals``.

Each batch of sessions is claimed (``SELECT … FOR UPDATE SKIP LOCKED``), read, detected, written
and marked clean in ONE transaction: a crash leaves the batch dirty, and ingest re-dirtying a
claimed session waits for the commit and leaves it dirty for the next run.

On PostgreSQL the batches are pipelined over three connections: while batch k is detected (Python,
holding the GIL), batch k+1 is claimed and read on a second connection and batch k-1 is written
(COPY) and committed on a third. Each batch keeps its own transaction from claim to commit, so the
guarantees are those of the serial loop. Timestamps are read as epoch seconds and rows written as
COPY text: datetime and model objects cost more than detection itself (measured: benchmarks/README.md).
"""
from __future__ import annotations

import io
import queue
import threading
from collections import defaultdict
from operator import itemgetter

import orjson
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Event, Session, Turn, TurnSignals
from ..signal_definitions import DEFINITION_VERSION
from .signals import FLAG_COLUMNS, DetectConfig, DetectResult, SignalRow, detect_rows, epoch

PIPELINE_CONNECTIONS = 3  # reading k+1, detecting k, writing k-1


def load_batch(session_ids: list[int]) -> tuple[list[tuple], dict[int, list[tuple]]]:
    # Production turns only (here and in _TURNS/_EVENTS): a generated turn never gets signals, so
    # nothing that reads TurnSignals (rates, strata, failure candidates) can count one.
    turns = [(i, ext, s, epoch(ts), epoch(rts), q) for i, ext, s, ts, rts, q in
             Turn.objects.production().filter(session_id__in=session_ids)
             .order_by("session_id", F("timestamp").asc(nulls_last=True), F("position").asc(nulls_last=True), "id")
             .values_list("id", "external_id", "session_id", "timestamp", "response_timestamp", "query")]
    events: dict[int, list[tuple]] = defaultdict(list)
    for t, i, typ, ts, actor, reason, corr in (
            Event.objects.filter(turn__session_id__in=session_ids, turn__kind=Turn.Kind.PRODUCTION)
            .order_by("timestamp", "id")
            .values_list("turn_id", "id", "type", "timestamp", "actor", "reason", "corrected_response")):
        events[t].append((t, i, typ, epoch(ts), actor, reason, corr))
    return turns, events


def _write_orm(rows: list[SignalRow]) -> None:
    TurnSignals.objects.bulk_create(
        [TurnSignals(turn_id=r.turn_id, corrected_response=r.corrected_response, evidence=r.evidence,
                     failure_probability=r.failure_probability, definition_version=DEFINITION_VERSION, **r.flags)
         for r in rows],
        batch_size=1000, update_conflicts=True, unique_fields=["turn"],
        update_fields=[*FLAG_COLUMNS, "failure_probability", "definition_version", "corrected_response",
                       "evidence", "detected_at"],
    )


def run_batches(*, detector, cfg: DetectConfig, full: bool, batch_sessions: int, progress=None) -> DetectResult:
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _run_pipelined(detector=detector, cfg=cfg, full=full, batch_sessions=batch_sessions,
                              progress=progress)
    # SQLite (and PostgreSQL inside a caller's transaction, e.g. a test): one batch at a time.
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
            if connection.vendor == "postgresql":
                with connection.cursor() as c:
                    _copy_rows(c.cursor, rows)
            else:
                _write_orm(rows)
            Session.objects.filter(id__in=ids).update(dirty=False)
        result.sessions += len(ids)
        result.add(rows)
        if progress:
            progress(len(ids))
    return result


# --- PostgreSQL: raw SQL on psycopg2 connections of our own (one per pipeline stage)

_CLAIM = ("SELECT id FROM production_session WHERE id > %s{dirty} ORDER BY id LIMIT %s "
          "FOR UPDATE SKIP LOCKED")
_TURNS = ("SELECT id, external_id, session_id, EXTRACT(EPOCH FROM timestamp)::float8, "
          "EXTRACT(EPOCH FROM response_timestamp)::float8, query FROM production_turn WHERE session_id = ANY(%s) "
          f"AND kind = '{Turn.Kind.PRODUCTION}' ORDER BY session_id, timestamp NULLS LAST, position NULLS LAST, id")
_EVENTS = ("SELECT e.turn_id, e.id, e.type, EXTRACT(EPOCH FROM e.timestamp)::float8, e.actor, e.reason, "
           "e.corrected_response FROM production_event e JOIN production_turn t ON t.id = e.turn_id "
           f"WHERE t.session_id = ANY(%s) AND t.kind = '{Turn.Kind.PRODUCTION}' ORDER BY e.timestamp, e.id")
_COPY = (f"COPY production_turnsignals (turn_id, {', '.join(FLAG_COLUMNS)}, failure_probability, "
         f"definition_version, corrected_response, evidence, detected_at) FROM STDIN")
_flag_values = itemgetter(*FLAG_COLUMNS)
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_rows(cur, rows: list[SignalRow]) -> None:
    """Replace these turns' signals: DELETE, then COPY text (the sessions are claimed by this transaction)."""
    now = timezone.now().isoformat()
    tail = f"\t{DEFINITION_VERSION}\t"
    lines = []
    flag_text: dict[tuple, str] = {}  # a row's flags as COPY text, per combination (a few dozen occur)
    for r in rows:
        f = _flag_values(r.flags)
        ft = flag_text.get(f)
        if ft is None:
            ft = flag_text[f] = chr(9).join("t" if on else "f" for on in f)
        # orjson escapes control characters inside strings; only backslashes need doubling for COPY text.
        ev = orjson.dumps(r.evidence).decode().replace("\\", "\\\\")
        lines.append(f"{r.turn_id}\t{ft}\t"
                     f"{r.failure_probability!r}{tail}{r.corrected_response.translate(_TEXT_ESCAPES)}\t{ev}\t{now}\n")
    cur.execute("DELETE FROM production_turnsignals WHERE turn_id = ANY(%s)", [[r.turn_id for r in rows]])
    cur.copy_expert(_COPY, io.StringIO("".join(lines)))


def _read(cur, ids: list[int]) -> tuple[list[tuple], dict[int, list[tuple]]]:
    cur.execute(_TURNS, [ids])
    turns = cur.fetchall()
    cur.execute(_EVENTS, [ids])
    events: dict[int, list[tuple]] = defaultdict(list)
    for e in cur.fetchall():
        events[e[0]].append(e)
    return turns, events


def _run_pipelined(*, detector, cfg, full, batch_sessions, progress) -> DetectResult:
    params = connection.get_connection_params()
    conns = [connection.get_new_connection(params) for _ in range(PIPELINE_CONNECTIONS)]
    free: queue.Queue = queue.Queue()
    for c in conns:
        free.put(c)
    read_q: queue.Queue = queue.Queue(maxsize=1)
    write_q: queue.Queue = queue.Queue(maxsize=1)
    failed: list[BaseException] = []
    stop = threading.Event()
    claim = _CLAIM.format(dirty="" if full else " AND dirty")

    def reader() -> None:
        last = 0
        try:
            while not stop.is_set():
                conn = free.get()
                with conn.cursor() as cur:
                    cur.execute(claim, [last, batch_sessions])
                    ids = [r[0] for r in cur.fetchall()]
                    if not ids:
                        conn.rollback()
                        free.put(conn)
                        break
                    last = ids[-1]
                    turns, events = _read(cur, ids)
                read_q.put((conn, ids, turns, events))
        except BaseException as exc:  # handed to the main thread, which raises it
            failed.append(exc)
        finally:
            read_q.put(None)

    def writer() -> None:
        while True:
            item = write_q.get()
            if item is None:
                return
            conn, ids, rows = item
            try:
                if not failed:
                    with conn.cursor() as cur:
                        _copy_rows(cur, rows)
                        cur.execute("UPDATE production_session SET dirty = false WHERE id = ANY(%s)", [ids])
                    conn.commit()
                else:
                    conn.rollback()
            except BaseException as exc:
                failed.append(exc)
                conn.rollback()
            free.put(conn)

    threads = [threading.Thread(target=reader, name="signals-reader", daemon=True),
               threading.Thread(target=writer, name="signals-writer", daemon=True)]
    for t in threads:
        t.start()
    result = DetectResult()
    try:
        while True:
            item = read_q.get()
            if item is None or failed:
                if item is not None:
                    item[0].rollback()
                    free.put(item[0])
                break
            conn, ids, turns, events = item
            try:
                rows = detect_rows(turns, events, detector, cfg)
            except BaseException:
                conn.rollback()
                free.put(conn)
                raise
            write_q.put((conn, ids, rows))
            result.sessions += len(ids)
            result.add(rows)
            if progress:
                progress(len(ids))
    finally:
        stop.set()
        while threads[0].is_alive():  # unblock a reader waiting to hand over a batch
            try:
                left = read_q.get(timeout=0.05)
            except queue.Empty:
                continue
            if left is not None:
                left[0].rollback()
                free.put(left[0])
        write_q.put(None)
        for t in threads:
            t.join()
        for c in conns:
            c.close()
    if failed:
        raise failed[0]
    return result
