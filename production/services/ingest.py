"""Ingest: read a production log into turns, sessions, events and rejected lines.

Work goes in chunks, one transaction each, so a crash keeps what was written and a re-run
(keyed on source + turn id) picks up without duplicates. On PostgreSQL new turns are written
with COPY; elsewhere (the SQLite demo) with bulk inserts.
"""
from __future__ import annotations

import hashlib
import io
import queue
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.jobs import TRANSIENT_ERRORS, job_fail, job_held, job_progress, job_release

from ..contract import ParsedEvent, ParsedTurn
from ..copy_rows import json_text as _json
from ..copy_rows import render_turn_tail
from ..models import Event, IngestJob, RejectedLine, Session, Source, Turn
from ..readers import READERS, Item, Reject, detect_format, read_json_array


class IngestError(Exception):
    """The input as a whole cannot be read (missing file, unknown format)."""


@dataclass
class IngestResult:
    read: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    events: int = 0

    def add(self, other: "IngestResult") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return asdict(self)


def source_get_or_create(*, name: str) -> Source:
    if not name or not name.strip():
        raise IngestError("source: a non-empty source name is required")
    source, _ = Source.objects.get_or_create(name=name.strip())
    return source


# --- writers: the same chunk protocol on PostgreSQL (COPY) and elsewhere (ORM bulk).

class _OrmWriter:
    def __init__(self, source: Source):
        self.source = source

    def lock(self) -> None:
        pass  # SQLite serialises writers itself

    def existing_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 900):  # stay under SQLite's bound-variable limit
            found.update(
                Turn.objects.filter(source=self.source, external_id__in=keys[i:i + 900])
                .values_list("external_id", flat=True)
            )
        return found

    def upsert_sessions(self, spans: dict[str, tuple]) -> dict[str, int]:
        keys = list(spans)
        Session.objects.bulk_create(
            [Session(source=self.source, external_id=k) for k in keys], ignore_conflicts=True, batch_size=500
        )
        ids: dict[str, int] = {}
        for i in range(0, len(keys), 900):
            ids.update(
                Session.objects.filter(source=self.source, external_id__in=keys[i:i + 900])
                .values_list("external_id", "id")
            )
        return ids

    def insert_turns(self, turns: list[ParsedTurn], session_ids: dict[str, int]) -> None:
        Turn.objects.bulk_create(
            [
                Turn(source=self.source, external_id=t.external_id, session_id=session_ids[t.session_external_id],
                     timestamp=t.timestamp, position=t.position, query=t.query, response=t.response,
                     user_id=t.user_id, contexts=t.contexts, model=t.model,
                     response_timestamp=t.response_timestamp, latency_ms=t.latency_ms, metadata=t.metadata)
                for t in turns
            ],
            batch_size=500,
        )
        touched = set(session_ids.values())
        spans = (
            Turn.objects.filter(session_id__in=touched).values("session_id")
            .annotate(first=Min("timestamp"), last=Max("timestamp"))
        )
        for s in spans:
            Session.objects.filter(id=s["session_id"]).update(first_seen=s["first"], last_seen=s["last"], dirty=True)

    def insert_events(self, events: list[ParsedEvent]) -> int:
        before = Event.objects.filter(source=self.source).count()
        Event.objects.bulk_create([_event_row(self.source, e) for e in events], ignore_conflicts=True, batch_size=500)
        return Event.objects.filter(source=self.source).count() - before

    def insert_rejects(self, rows: list[RejectedLine]) -> None:
        RejectedLine.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)

    def attach_events(self) -> int:
        pending = Event.objects.filter(source=self.source, turn__isnull=True)
        by_key = dict(
            Turn.objects.filter(source=self.source, external_id__in=pending.values("turn_external_id"))
            .values_list("external_id", "id")
        )
        attached = 0
        for ext, turn_id in by_key.items():
            attached += pending.filter(turn_external_id=ext).update(turn_id=turn_id)
        Session.objects.filter(turns__id__in=by_key.values()).update(dirty=True)
        return attached


class _PostgresWriter(_OrmWriter):
    TURN_COLUMNS = (
        "source_id", "external_id", "session_id", "timestamp", "position", "query", "response", "user_id",
        "contexts", "model", "response_timestamp", "latency_ms", "metadata",
    )
    NOT_NULL_TEXT = ("external_id", "query", "response", "user_id", "contexts", "model", "metadata")

    def lock(self) -> None:
        # One writer per source at a time: the existence check and the COPY must not interleave
        # with another ingest of the same source.
        with connection.cursor() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7411, self.source.id])

    def existing_keys(self, keys: list[str]) -> set[str]:
        with connection.cursor() as c:
            c.execute(
                "SELECT external_id FROM production_turn WHERE source_id = %s AND external_id = ANY(%s)",
                [self.source.id, keys],
            )
            return {r[0] for r in c.fetchall()}

    def upsert_sessions(self, spans: dict[str, tuple]) -> dict[str, int]:
        keys = list(spans)
        firsts = [spans[k][0] for k in keys]
        lasts = [spans[k][1] for k in keys]
        with connection.cursor() as c:
            c.execute(
                """
                INSERT INTO production_session (source_id, external_id, first_seen, last_seen, dirty)
                SELECT %s, k, f, l, true FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) AS u(k, f, l)
                ON CONFLICT (source_id, external_id) DO UPDATE SET
                    first_seen = LEAST(production_session.first_seen, EXCLUDED.first_seen),
                    last_seen = GREATEST(production_session.last_seen, EXCLUDED.last_seen),
                    dirty = true
                RETURNING external_id, id
                """,
                [self.source.id, keys, firsts, lasts],
            )
            return dict(c.fetchall())

    def insert_turns(self, turns: list[ParsedTurn], session_ids: dict[str, int]) -> None:
        buf = io.StringIO()
        prefix = f"{self.source.id},"
        for t in turns:
            key = _csv_cell(t.external_id)
            buf.write(f"{prefix}{key},{session_ids[t.session_external_id]},{render_turn_tail(t)}")
        buf.seek(0)
        # CSV COPY reads an unquoted empty cell as NULL; FORCE_NOT_NULL keeps "" for text columns.
        sql = (
            f"COPY production_turn ({', '.join(self.TURN_COLUMNS)}) FROM STDIN "
            f"WITH (FORMAT csv, FORCE_NOT_NULL ({', '.join(self.NOT_NULL_TEXT)}))"
        )
        with connection.cursor() as c:
            c.copy_expert(sql, buf)

    def insert_events(self, events: list[ParsedEvent]) -> int:
        if not events:
            return 0
        from psycopg2.extras import execute_values

        rows = [
            (self.source.id, e.turn_external_id, e.type, e.timestamp, e.corrected_response, e.actor, e.reason,
             _json(e.payload), e.fingerprint)
            for e in events
        ]
        with connection.cursor() as c:
            inserted = execute_values(
                c.cursor,
                """INSERT INTO production_event (source_id, turn_external_id, type, timestamp, corrected_response,
                   actor, reason, payload, fingerprint, created_at) VALUES %s
                   ON CONFLICT (source_id, turn_external_id, fingerprint) DO NOTHING RETURNING 1""",
                rows,
                template="(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, now())",
                page_size=1000,
                fetch=True,
            )
        return len(inserted)

    # --- the fast path (_flush_rendered): rows rendered by the reading thread, optimistic COPY.

    TURN_COPY_SQL = (
        # text format, rows rendered by _render_turn
        f"COPY production_turn ({{}}session_id, {', '.join(c for c in TURN_COLUMNS if c != 'session_id')}) "
        "FROM STDIN"
    )
    SESSION_COPY_SQL = "COPY production_session (id, source_id, external_id, first_seen, last_seen, dirty) FROM STDIN"
    EVENT_COPY_SQL = (
        "COPY production_event (source_id, turn_id, turn_external_id, type, timestamp, corrected_response, actor, "
        "reason, payload, fingerprint, created_at) FROM STDIN"
    )

    def __init__(self, source: Source):
        super().__init__(source)
        # Sessions this run has written, committed: external id -> id.
        self.known_sessions: dict[str, int] = {}

    def lock_now(self) -> datetime:
        """Take the per-source lock; return the transaction's now(), what the events' created_at gets."""
        with connection.cursor() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s, %s), now()", [7411, self.source.id])
            return c.fetchone()[1]

    def write_rendered_turns(self, chunk: "_RenderedChunk") -> tuple[int, dict[str, int]]:
        """Write the chunk's turns that are new; return how many were already there, and the ids of the
        new turns that the chunk's events are about (so those events are stored attached).

        Optimistic first: if none of the turns and none of the sessions new to this run exist yet
        (a first import, or a new day's log), the unique indexes confirm it during the COPY and no
        lookup is needed. If one does exist, that attempt is rolled back to its savepoint and the
        chunk takes the general path: look up the existing turns, upsert the sessions.
        """
        everything = range(len(chunk.keys))
        try:
            with transaction.atomic():
                learned, turn_ids = self._write_turns(chunk, everything, optimistic=True)
        except Exception as e:  # COPY raises psycopg2's own errors, Django's cursor does not wrap them
            if not _is_unique_violation(e):
                raise
        else:
            self.known_sessions.update(learned)
            return 0, turn_ids
        existing = self.existing_keys(chunk.keys)
        new = [i for i, k in enumerate(chunk.keys) if k not in existing] if existing else everything
        turn_ids = {}
        if new:
            learned, turn_ids = self._write_turns(chunk, new, optimistic=False)
            self.known_sessions.update(learned)
        return len(existing), turn_ids

    def _write_turns(self, chunk: "_RenderedChunk", rows, optimistic: bool) -> tuple[dict[str, int], dict[str, int]]:
        sessions, stamps = chunk.sessions, chunk.stamps
        spans: dict[str, tuple] = {}
        for i in rows:
            ts = stamps[i]
            s = sessions[i]
            first, last = spans.get(s, (ts, ts))
            if ts is not None:
                first = ts if first is None or ts < first else first
                last = ts if last is None or ts > last else last
            spans[s] = (first, last)
        if optimistic:
            known = self.known_sessions
            unknown = [k for k in spans if k not in known]
            ids = self._insert_sessions(unknown, spans) if unknown else {}
            if len(unknown) < len(spans):
                ids.update(self.upsert_sessions({k: v for k, v in spans.items() if k in known}))
        else:
            ids = self.upsert_sessions(spans)
        text, keys = chunk.rows, chunk.keys
        about = {e.turn_external_id for e in chunk.events}
        with_events = [i for i in rows if keys[i] in about] if about else []
        turn_ids: dict[str, int] = {}
        with connection.cursor() as c:
            if with_events:
                # Ids drawn ahead for the turns that have events here, so those events go in attached.
                turn_ids = dict(zip((keys[i] for i in with_events), self._next_ids(c, "production_turn",
                                                                                   len(with_events))))
                buf = io.StringIO("".join([f"{turn_ids[keys[i]]}\t{ids[sessions[i]]}\t{text[i]}"
                                           for i in with_events]))
                c.copy_expert(self.TURN_COPY_SQL.format("id, "), buf, size=1 << 18)
                rows = [i for i in rows if keys[i] not in turn_ids]
            if rows:
                buf = io.StringIO("".join([f"{ids[sessions[i]]}\t{text[i]}" for i in rows]))
                c.copy_expert(self.TURN_COPY_SQL.format(""), buf, size=1 << 18)
        return ids, turn_ids

    @staticmethod
    def _next_ids(c, table: str, n: int) -> list[int]:
        c.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [n])
        return [r[0] for r in c.fetchall()]

    def _insert_sessions(self, keys: list[str], spans: dict[str, tuple]) -> dict[str, int]:
        """Plain COPY of sessions believed new, ids drawn from the table's sequence; a session that
        exists after all fails the COPY on the unique index (the caller then takes the general path)."""
        with connection.cursor() as c:
            new_ids = self._next_ids(c, "production_session", len(keys))
            src = self.source.id
            text = "".join([f"{i}\t{src}\t{_text(k)}\t{_ts(spans[k][0])}\t{_ts(spans[k][1])}\tt\n"
                            for i, k in zip(new_ids, keys)])
            c.copy_expert(self.SESSION_COPY_SQL, io.StringIO(text), size=1 << 18)
        return dict(zip(keys, new_ids))

    def insert_events_copy(self, events: list[ParsedEvent], now: datetime, turn_ids: dict[str, int]) -> int:
        """COPY the chunk's events; if one is already stored, fall back to INSERT .. ON CONFLICT DO NOTHING.

        Repeats inside the chunk are dropped first, keeping the first, as ON CONFLICT DO NOTHING would."""
        seen: set = set()
        unique: list[ParsedEvent] = []
        for e in events:
            k = (e.turn_external_id, e.fingerprint)
            if k not in seen:
                seen.add(k)
                unique.append(e)
        src, created = self.source.id, now.isoformat()
        text = "".join([
            f"{src}\t{turn_ids.get(e.turn_external_id, NULL)}\t{_text(e.turn_external_id)}\t{_text(e.type)}\t"
            f"{_ts(e.timestamp)}\t{_text(e.corrected_response)}\t{_text(e.actor)}\t{_text(e.reason)}\t"
            f"{_text(_json(e.payload))}\t{e.fingerprint}\t{created}\n"
            for e in unique
        ])
        try:
            with transaction.atomic():
                with connection.cursor() as c:
                    c.copy_expert(self.EVENT_COPY_SQL, io.StringIO(text), size=1 << 18)
        except Exception as e:  # COPY raises psycopg2's own errors, Django's cursor does not wrap them
            if not _is_unique_violation(e):
                raise
            return self.insert_events(events)
        return len(unique)

    def attach_events(self) -> int:
        with connection.cursor() as c:
            # Most events went in attached; without any left over skip the join, whose plan can be poor
            # while the tables' statistics still describe them before a big ingest.
            c.execute("SELECT EXISTS (SELECT 1 FROM production_event WHERE source_id = %s AND turn_id IS NULL)",
                      [self.source.id])
            if not c.fetchone()[0]:
                return 0
            c.execute(
                """
                WITH attached AS (
                    UPDATE production_event e SET turn_id = t.id
                    FROM production_turn t
                    WHERE e.source_id = %s AND e.turn_id IS NULL
                      AND t.source_id = e.source_id AND t.external_id = e.turn_external_id
                    RETURNING t.session_id
                )
                UPDATE production_session SET dirty = true WHERE id IN (SELECT session_id FROM attached)
                """,
                [self.source.id],
            )
            return c.rowcount


def _event_row(source: Source, e: ParsedEvent) -> Event:
    return Event(
        source=source, turn_external_id=e.turn_external_id, type=e.type, timestamp=e.timestamp,
        corrected_response=e.corrected_response, actor=e.actor, reason=e.reason, payload=e.payload,
        fingerprint=e.fingerprint,
    )


def _csv_cell(value: str) -> str:
    if any(c in value for c in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def _reject_rows(source: Source, job, origin: str, rejects: list[Reject]) -> list[RejectedLine]:
    return [RejectedLine(source=source, job=job, origin=origin, line_no=r.line_no, reason=r.reason, raw=r.raw,
                         raw_sha1=hashlib.sha1(r.raw.encode("utf-8", "surrogatepass")).hexdigest())
            for r in rejects]


def _writer(source: Source) -> _OrmWriter:
    return _PostgresWriter(source) if connection.vendor == "postgresql" else _OrmWriter(source)


class _Chunk:
    def __init__(self) -> None:
        self.turns: dict[str, ParsedTurn] = {}
        self.events: list[ParsedEvent] = []
        self.rejects: list[Reject] = []
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self.turns) + len(self.events) + len(self.rejects)


def _flush(writer: _OrmWriter, chunk: _Chunk, origin: str, job: IngestJob | None) -> IngestResult:
    result = IngestResult(duplicates=chunk.duplicates, rejected=len(chunk.rejects))
    with transaction.atomic():
        writer.lock()
        if chunk.turns:
            existing = writer.existing_keys(list(chunk.turns))
            new = [t for k, t in chunk.turns.items() if k not in existing]
            result.duplicates += len(existing)
            if new:
                spans: dict[str, tuple] = {}
                for t in new:
                    first, last = spans.get(t.session_external_id, (t.timestamp, t.timestamp))
                    if t.timestamp is not None:
                        first = t.timestamp if first is None or t.timestamp < first else first
                        last = t.timestamp if last is None or t.timestamp > last else last
                    spans[t.session_external_id] = (first, last)
                writer.insert_turns(new, writer.upsert_sessions(spans))
                result.created = len(new)
        if chunk.events:
            result.events = writer.insert_events(chunk.events)
        if chunk.rejects:
            writer.insert_rejects(_reject_rows(writer.source, job, origin, chunk.rejects))
    return result


def _is_unique_violation(e: Exception) -> bool:
    if isinstance(e, IntegrityError):  # Django's, wrapping the driver's
        e = e.__cause__
    return getattr(e, "pgcode", None) == "23505"


def _ts(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


class _RenderedChunk:
    """A chunk as the reading thread hands it over: each new turn as its CSV row minus the session id
    (not known until the database has the session), plus what the writes need to decide about it."""

    __slots__ = ("keys", "sessions", "stamps", "rows", "events", "rejects", "duplicates", "read", "last")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.sessions: list[str] = []
        self.stamps: list[datetime | None] = []
        self.rows: list[str] = []
        self.events: list[ParsedEvent] = []
        self.rejects: list[Reject] = []
        self.duplicates = 0
        self.read = 0  # lines read so far in the whole input, up to the end of this chunk
        self.last = False


NULL = "\\N"  # COPY text format


def _text(value: str) -> str:
    """A value as a field of COPY's text format."""
    if "\\" in value or "\n" in value or "\t" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return value


def _render_turn(source_id: int, t: ParsedTurn) -> str:
    """A turn as a COPY text-format row, minus its leading session id: the columns after session_id
    of _PostgresWriter.TURN_COPY_SQL. The same values the CSV rows of insert_turns carry."""
    ts, rts, lat, pos = t.timestamp, t.response_timestamp, t.latency_ms, t.position
    return (
        f"{source_id}\t{_text(t.external_id)}\t{NULL if ts is None else ts.isoformat()}\t"
        f"{NULL if pos is None else pos}\t{_text(t.query)}\t{_text(t.response)}\t{_text(t.user_id)}\t"
        f"{_text(_json(t.contexts)) if t.contexts else '[]'}\t{_text(t.model)}\t"
        f"{NULL if rts is None else rts.isoformat()}\t{NULL if lat is None else lat}\t"
        f"{_text(_json(t.metadata)) if t.metadata else '{}'}\n"
    )



def _render_chunks(source_id: int, items: Iterable[Item], batch_size: int, put: Callable) -> None:
    """Group items into chunks exactly as the ORM path does, render the turns' COPY rows; runs in a
    thread of its own so that reading and rendering overlap the database work of the previous chunk."""
    chunk = _RenderedChunk()
    index: set[str] = set()
    read = 0
    last_line = None
    for line_no, item in items:
        if line_no != last_line:
            read += 1
            last_line = line_no
        if isinstance(item, ParsedTurn):
            key = item.external_id
            if key in index:
                chunk.duplicates += 1
            else:
                index.add(key)
                chunk.keys.append(key)
                chunk.sessions.append(item.session_external_id)
                chunk.stamps.append(item.timestamp)
                chunk.rows.append(_render_turn(source_id, item))
            if item.events:
                chunk.events.extend(item.events)
        elif isinstance(item, Reject):
            chunk.rejects.append(item)
        else:
            chunk.events.append(item)
        if len(index) + len(chunk.events) + len(chunk.rejects) >= batch_size:
            chunk.read = read
            if not put(chunk):
                return
            chunk = _RenderedChunk()
            index = set()
    chunk.read = read
    chunk.last = True
    put(chunk)


def _flush_rendered(writer: _PostgresWriter, chunk: _RenderedChunk, origin: str, job: IngestJob | None
                    ) -> IngestResult:
    """_flush for a rendered chunk: the same transaction, lock and results."""
    result = IngestResult(duplicates=chunk.duplicates, rejected=len(chunk.rejects))
    with transaction.atomic():
        now = writer.lock_now()
        if chunk.keys:
            existing, turn_ids = writer.write_rendered_turns(chunk)
            result.duplicates += existing
            result.created = len(chunk.keys) - existing
        else:
            turn_ids = {}
        if chunk.events:
            result.events = writer.insert_events_copy(chunk.events, now, turn_ids)
        if chunk.rejects:
            writer.insert_rejects(_reject_rows(writer.source, job, origin, chunk.rejects))
    return result


_STOP = object()


def _ingest_pipelined(writer: _PostgresWriter, items: Iterable[Item], origin: str, job: IngestJob | None,
                      batch_size: int) -> IngestResult:
    """Read and render in a thread, write here: the database work of chunk N overlaps the reading of
    chunk N+1 (psycopg2 lets go of the GIL while it waits for the server). The database connection is
    only ever used from this, the calling, thread."""
    chunks: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            _render_chunks(writer.source.id, items, batch_size, put)
        except BaseException as e:  # handed to the writing thread, which raises it
            put(e)

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    # This thread mostly waits on the server; when an answer is in, it should get the GIL back soon
    # rather than after the default 5 ms slice of the reading thread.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, 0.0005))
    thread.start()
    total = IngestResult()
    try:
        while True:
            chunk = chunks.get()
            if isinstance(chunk, BaseException):
                raise chunk
            total.add(_flush_rendered(writer, chunk, origin, job))
            total.read = chunk.read
            if chunk.last:
                break
            if job is not None:
                _job_progress(job, total)
    finally:
        stop.set()
        thread.join(timeout=30)
        sys.setswitchinterval(switch)
    return total


def turns_ingest_items(
    *, source: Source, items: Iterable[Item], origin: str, job: IngestJob | None = None,
    batch_size: int | None = None,
) -> IngestResult:
    """Write parsed items in chunks; the shared back half of every ingest path."""
    batch_size = batch_size or settings.INGEST_BATCH_SIZE
    writer = _writer(source)
    if isinstance(writer, _PostgresWriter):
        total = _ingest_pipelined(writer, items, origin, job, batch_size)
    else:
        total = _ingest_serial(writer, items, origin, job, batch_size)
    with transaction.atomic():
        writer.attach_events()
    if settings.SIGNALS_DETECT_AFTER_INGEST and (total.created or total.events):
        from ..tasks import signals_detect

        transaction.on_commit(signals_detect.delay)
    return total


def _ingest_serial(writer: _OrmWriter, items: Iterable[Item], origin: str, job: IngestJob | None,
                   batch_size: int) -> IngestResult:
    total = IngestResult()
    chunk = _Chunk()
    last_line = None
    for line_no, item in items:
        if line_no != last_line:
            total.read += 1
            last_line = line_no
        if isinstance(item, Reject):
            chunk.rejects.append(item)
        elif isinstance(item, ParsedTurn):
            if item.external_id in chunk.turns:
                chunk.duplicates += 1
            else:
                chunk.turns[item.external_id] = item
            # Events of a re-sent turn still count: that is how a late event can arrive too.
            chunk.events.extend(item.events)
        else:
            chunk.events.append(item)
        if len(chunk) >= batch_size:
            total.add(_flush(writer, chunk, origin, job))
            chunk = _Chunk()
            if job is not None:
                _job_progress(job, total)
    total.add(_flush(writer, chunk, origin, job))
    return total


def _job_progress(job: IngestJob, result: IngestResult) -> None:
    # Beats the heart too: a job whose chunks stop coming is presumed dead by the sweeper.
    job_progress(IngestJob, job.pk, **result.as_dict())


def turns_ingest_stream(
    *, source: Source, stream: BinaryIO, origin: str, fmt: str = "auto", job: IngestJob | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    if fmt == "auto":
        fmt = detect_format(stream, origin)
    if fmt not in READERS:
        raise IngestError(f"format: unknown format {fmt!r} (expected one of auto, jsonl, csv, messages)")
    return turns_ingest_items(source=source, items=READERS[fmt](stream, progress), origin=origin, job=job)


def turns_ingest_path(
    *, source_name: str, path: str | Path, fmt: str = "auto", progress_factory=None,
) -> IngestResult:
    """Ingest one file. Raises IngestError when the file cannot be opened at all."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise IngestError(f"{path}: cannot read ({e.strerror or e})") from None
    source = source_get_or_create(name=source_name)
    job = IngestJob.objects.create(source=source, origin=str(path), format=fmt, status=IngestJob.Status.RUNNING)
    try:
        with f:
            size = path.stat().st_size if path.is_file() else None
            bar = progress_factory(size, path.name) if progress_factory else None
            try:
                result = turns_ingest_stream(
                    source=source, stream=f, origin=str(path), fmt=fmt, job=job, progress=bar.update if bar else None,
                )
            finally:
                if bar:
                    bar.close()
    except Exception as e:
        IngestJob.objects.filter(pk=job.pk).update(status=IngestJob.Status.FAILED, error=str(e)[:2000],
                                                   finished_at=timezone.now())
        raise
    _job_finish(job, result)
    return result


def _job_finish(job: IngestJob, result: IngestResult) -> None:
    IngestJob.objects.filter(pk=job.pk).update(status=IngestJob.Status.DONE, finished_at=timezone.now(),
                                               **result.as_dict())


def turns_ingest_body(*, source: Source, body: bytes, job: IngestJob | None = None) -> IngestResult:
    """The API body: JSON lines, or one JSON array."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        items = read_json_array(stripped)
    else:
        items = READERS["jsonl"](io.BytesIO(body))
    result = turns_ingest_items(source=source, items=items, origin=f"api:job-{job.pk}" if job else "api", job=job)
    if job is not None:
        _job_finish(job, result)
    return result


def ingest_job_run(*, job_id: int) -> IngestResult | None:
    """Run a spooled API ingest. A finished job is never run again; one running in a live worker is
    left to it; an interrupted one (its worker died) is resumed from the start of its spool file,
    which is safe because ingest is keyed on (source, turn id) and rejects on (origin, line)."""
    with job_held(IngestJob, job_id, statuses=(IngestJob.Status.PENDING,)) as mine:
        if not mine:
            return None
        job = IngestJob.objects.select_related("source").get(pk=job_id)
        if not job.spool_path:
            # A command's ingest whose process stopped: only its user can run it again.
            job_fail(IngestJob, job_id, "the ingest command that ran this job stopped; run it again")
            return None
        try:
            body = Path(job.spool_path).read_bytes()
            result = turns_ingest_body(source=job.source, body=body, job=job)
        except TRANSIENT_ERRORS as e:
            job_release(IngestJob, job_id, e)  # the task retries it
            raise
        except Exception as e:
            job_fail(IngestJob, job_id, e)
            raise
    Path(job.spool_path).unlink(missing_ok=True)
    return result


def ingest_job_spool(*, source: Source, body: bytes, user=None) -> IngestJob:
    spool = Path(settings.INGEST_SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True)
    job = IngestJob.objects.create(source=source, origin="api", format="jsonl",
                                   created_by=user if getattr(user, "pk", None) else None)
    path = spool / f"ingest-{job.pk}.jsonl"
    path.write_bytes(body)
    IngestJob.objects.filter(pk=job.pk).update(spool_path=str(path))
    job.spool_path = str(path)
    return job
