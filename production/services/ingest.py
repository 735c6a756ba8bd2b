"""Ingest: read a production log into turns, sessions, events and rejected lines.

Work goes in chunks, one transaction each, so a crash keeps what was written and a re-run
(keyed on source + turn id) picks up without duplicates. On PostgreSQL new turns are written
with COPY; elsewhere (the SQLite demo) with bulk inserts.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

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
        w = csv.writer(buf, lineterminator="\n")
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

    def attach_events(self) -> int:
        with connection.cursor() as c:
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
            writer.insert_rejects([
                RejectedLine(source=writer.source, job=job, origin=origin, line_no=r.line_no, reason=r.reason,
                             raw=r.raw, raw_sha1=hashlib.sha1(r.raw.encode("utf-8", "surrogatepass")).hexdigest())
                for r in chunk.rejects
            ])
    return result


def turns_ingest_items(
    *, source: Source, items: Iterable[Item], origin: str, job: IngestJob | None = None,
    batch_size: int | None = None,
) -> IngestResult:
    """Write parsed items in chunks; the shared back half of every ingest path."""
    batch_size = batch_size or settings.INGEST_BATCH_SIZE
    writer = _writer(source)
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
    with transaction.atomic():
        writer.attach_events()
    if settings.SIGNALS_DETECT_AFTER_INGEST and (total.created or total.events):
        from ..tasks import signals_detect

        transaction.on_commit(signals_detect.delay)
    return total


def _job_progress(job: IngestJob, result: IngestResult) -> None:
    IngestJob.objects.filter(pk=job.pk).update(**{k: v for k, v in result.as_dict().items() if k != "read"},
                                               read=result.read)


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
    """Run a spooled API ingest. A finished job is never run again; an interrupted one is resumed,
    which is safe because ingest is keyed on (source, turn id)."""
    claimed = IngestJob.objects.filter(pk=job_id).exclude(status=IngestJob.Status.DONE).update(
        status=IngestJob.Status.RUNNING
    )
    if not claimed:
        return None
    job = IngestJob.objects.select_related("source").get(pk=job_id)
    try:
        body = Path(job.spool_path).read_bytes()
        result = turns_ingest_body(source=job.source, body=body, job=job)
    except Exception as e:
        IngestJob.objects.filter(pk=job_id).update(status=IngestJob.Status.FAILED, error=str(e)[:2000],
                                                   finished_at=timezone.now())
        raise
    Path(job.spool_path).unlink(missing_ok=True)
    return result


def ingest_job_spool(*, source: Source, body: bytes) -> IngestJob:
    spool = Path(settings.INGEST_SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True)
    job = IngestJob.objects.create(source=source, origin="api", format="jsonl")
    path = spool / f"ingest-{job.pk}.jsonl"
    path.write_bytes(body)
    IngestJob.objects.filter(pk=job.pk).update(spool_path=str(path))
    job.spool_path = str(path)
    return job
