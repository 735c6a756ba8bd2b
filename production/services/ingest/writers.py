"""Two writers behind one protocol: `CopyWriter` (PostgreSQL, COPY) and `OrmWriter` (the ORM; SQLite).

A writer stores one chunk per transaction and reports what it stored; a re-run of the same input
creates nothing new, because turns are keyed on (source, turn id) and events on their fingerprint.
"""
from __future__ import annotations

import hashlib
import zlib
from datetime import datetime, time
from datetime import timezone as dt_timezone
from typing import Iterable, Protocol

import orjson
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from core.jobs import safe_error

from ...contract import ParsedEvent, ParsedShadow, ParsedTurn
from ...models import Event, IngestJob, MirroredAnswer, RejectedLine, Session, Source, Turn
from ...readers import Reject
from . import copy_text
from .chunks import Chunk
from .result import IngestResult


class Writer(Protocol):
    def prepare(self, chunk: Chunk) -> None:
        """Runs on the reading thread, without the database: render what `write` will send."""

    def write(self, chunk: Chunk) -> IngestResult:
        """Store the chunk in one transaction; return what was created, duplicated, rejected."""

    def finish(self) -> None:
        """Attach events and mirrored answers stored before their turn to turns that have arrived since."""


def writer_for(source: Source, origin: str, job: IngestJob | None) -> Writer:
    cls = CopyWriter if connection.vendor == "postgresql" else OrmWriter
    return cls(source, origin, job)


def session_spans(turns: Iterable[tuple[str, datetime | None]]) -> dict[str, tuple]:
    """(session external id, timestamp) pairs -> session -> (first, last) timestamp, in first-seen order."""
    spans: dict[str, tuple] = {}
    for session, ts in turns:
        first, last = spans.get(session, (ts, ts))
        if ts is not None:
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
        spans[session] = (first, last)
    return spans


def reject_rows(source: Source, job: IngestJob | None, origin: str, rejects: list[Reject]) -> list[RejectedLine]:
    return [RejectedLine(source=source, job=job, origin=origin, line_no=r.line_no, reason=r.reason, raw=r.raw,
                         raw_sha1=hashlib.sha1(r.raw.encode("utf-8", "surrogatepass")).hexdigest())
            for r in rejects]


def refused(line_no: int, what: str, error: BaseException) -> Reject:
    """A line the contract accepted but the database would not store: rejected like any other line. The
    reason keeps the first line of the error only (`safe_error`), never the row the database quoted."""
    return Reject(line_no, f"{what}: the database refused it ({safe_error(error)})", "")


class _Base:
    def __init__(self, source: Source, origin: str, job: IngestJob | None):
        self.source, self.origin, self.job = source, origin, job

    def insert_rejects(self, rejects: list[Reject]) -> None:
        RejectedLine.objects.bulk_create(reject_rows(self.source, self.job, self.origin, rejects),
                                         ignore_conflicts=True, batch_size=500)

    def store_rejects(self, chunk: Chunk, result: IngestResult, refusals: list[Reject]) -> None:
        """The chunk's rejected lines and the database's refusals, counted once per line."""
        rejects = chunk.rejects
        if refusals:
            rejects = rejects + refusals
            result.rejected += len({r.line_no for r in refusals})
        if rejects:
            self.insert_rejects(rejects)


    def admit_shadows(self, chunk: Chunk) -> list[Reject]:
        """Mirrored answers are taken only from sources allowed to mirror (SHADOW_MIRROR_SOURCES) and at
        most SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY per release per UTC day, counted over every source
        (each one becomes a pair the judge pays for). The others are rejected, each with its reason;
        the chunk keeps the admitted ones. Runs inside the chunk's transaction."""
        if not chunk.shadows:
            return []
        allowed = settings.SHADOW_MIRROR_SOURCES
        if "*" not in allowed and self.source.name not in allowed:
            rejects = [Reject(n, f"shadow: source {self.source.name[:80]!r} is not allowed to mirror answers "
                                 f"(SHADOW_MIRROR_SOURCES)", "") for n in chunk.shadow_lines]
            chunk.shadows, chunk.shadow_lines = [], []
            return rejects
        cap = settings.SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY
        if cap is None:
            return []
        releases = sorted({m.release for m in chunk.shadows})
        if connection.vendor == "postgresql":
            # Two ingests (of any sources) mirroring the same release count one after the other.
            with connection.cursor() as c:
                for name in releases:
                    c.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_MIRROR_LOCK_CLASS, zlib.crc32(name.encode())
                                                                        - 2**31])
        start = datetime.combine(timezone.now().astimezone(dt_timezone.utc).date(), time.min, tzinfo=dt_timezone.utc)
        counts = dict(MirroredAnswer.objects.filter(release__in=releases, received_at__gte=start)
                      .values_list("release").annotate(n=Count("id")).order_by())
        keep, lines, rejects = [], [], []
        for m, n in zip(chunk.shadows, chunk.shadow_lines):
            if counts.get(m.release, 0) >= cap:
                rejects.append(Reject(n, f"shadow: release {m.release[:80]!r} has {cap} mirrored answers today, its "
                                         f"cap (SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY)", ""))
                continue
            counts[m.release] = counts.get(m.release, 0) + 1
            keep.append(m)
            lines.append(n)
        chunk.shadows, chunk.shadow_lines = keep, lines
        return rejects


_MIRROR_LOCK_CLASS = zlib.crc32(b"production.mirror_cap") - 2**31


class OrmWriter(_Base):
    """Bulk inserts through the ORM, for SQLite (which serialises writers itself)."""

    def prepare(self, chunk: Chunk) -> None:
        pass

    def write(self, chunk: Chunk) -> IngestResult:
        result = IngestResult(duplicates=chunk.duplicates, rejected=len(chunk.rejects))
        refusals: list[Reject] = []
        with transaction.atomic():
            if chunk.turns:
                existing = self._existing_keys([t.external_id for t in chunk.turns])
                new = [(t, n) for t, n in zip(chunk.turns, chunk.turn_lines) if t.external_id not in existing]
                result.duplicates += len(existing)
                if new:
                    spans = session_spans((t.session_external_id, t.timestamp) for t, _ in new)
                    refusals = self._insert_turns(new, self._upsert_sessions(list(spans)))
                    result.created = len(new) - len(refusals)
            if chunk.events:
                result.events, more = self._insert_events(chunk.events, chunk.event_lines)
                refusals += more
            refusals += self.admit_shadows(chunk)
            if chunk.shadows:
                result.shadow, more = self._insert_shadows(chunk.shadows, chunk.shadow_lines)
                result.duplicates += len(chunk.shadows) - result.shadow - len(more)
                refusals += more
            self.store_rejects(chunk, result, refusals)
        return result

    def _existing_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 900):  # stay under SQLite's bound-variable limit
            found.update(Turn.objects.filter(source=self.source, external_id__in=keys[i:i + 900])
                         .values_list("external_id", flat=True))
        return found

    def _upsert_sessions(self, keys: list[str]) -> dict[str, int]:
        Session.objects.bulk_create([Session(source=self.source, external_id=k) for k in keys],
                                    ignore_conflicts=True, batch_size=500)
        ids: dict[str, int] = {}
        for i in range(0, len(keys), 900):
            ids.update(Session.objects.filter(source=self.source, external_id__in=keys[i:i + 900])
                       .values_list("external_id", "id"))
        return ids

    def _insert_turns(self, turns: list[tuple[ParsedTurn, int]], session_ids: dict[str, int]) -> list[Reject]:
        rows = [Turn(source=self.source, external_id=t.external_id, session_id=session_ids[t.session_external_id],
                     timestamp=t.timestamp, position=t.position, query=t.query, response=t.response,
                     user_id=t.user_id, contexts=t.contexts, model=t.model,
                     response_timestamp=t.response_timestamp, latency_ms=t.latency_ms, metadata=t.metadata)
                 for t, _ in turns]
        refusals = []
        try:
            with transaction.atomic():
                Turn.objects.bulk_create(rows, batch_size=500)
        except (DataError, IntegrityError):
            # The database refused a row the contract let through: store the others one by one.
            for row, (_, line_no) in zip(rows, turns):
                try:
                    with transaction.atomic():
                        row.save(force_insert=True)
                except (DataError, IntegrityError) as e:
                    refusals.append(refused(line_no, "record", e))
        # A session's span is recomputed from all its turns, so turns of earlier runs count too.
        spans = (Turn.objects.filter(session_id__in=set(session_ids.values())).values("session_id")
                 .annotate(first=Min("timestamp"), last=Max("timestamp")))
        for s in spans:
            Session.objects.filter(id=s["session_id"]).update(first_seen=s["first"], last_seen=s["last"], dirty=True)
        return refusals

    def _insert_events(self, events: list[ParsedEvent], lines: list[int]) -> tuple[int, list[Reject]]:
        before = Event.objects.filter(source=self.source).count()
        rows = [_event(self.source, e) for e in events]
        refusals = []
        try:
            with transaction.atomic():
                Event.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        except (DataError, IntegrityError):
            for row, line_no in zip(rows, lines):
                try:
                    with transaction.atomic():
                        Event.objects.bulk_create([row], ignore_conflicts=True)
                except (DataError, IntegrityError) as e:
                    refusals.append(refused(line_no, "event", e))
        return Event.objects.filter(source=self.source).count() - before, refusals

    def _insert_shadows(self, shadows: list[ParsedShadow], lines: list[int]) -> tuple[int, list[Reject]]:
        mine = MirroredAnswer.objects.filter(source=self.source)
        before = mine.count()
        rows = [MirroredAnswer(source=self.source, turn_external_id=m.turn_external_id, release=m.release,
                               response=m.response, latency_ms=m.latency_ms) for m in shadows]
        refusals = []
        try:
            with transaction.atomic():
                MirroredAnswer.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        except (DataError, IntegrityError):
            for row, line_no in zip(rows, lines):
                try:
                    with transaction.atomic():
                        MirroredAnswer.objects.bulk_create([row], ignore_conflicts=True)
                except (DataError, IntegrityError) as e:
                    refusals.append(refused(line_no, "shadow", e))
        return mine.count() - before, refusals

    def finish(self) -> None:
        pending = Event.objects.filter(source=self.source, turn__isnull=True)
        by_key = dict(Turn.objects.filter(source=self.source, external_id__in=pending.values("turn_external_id"))
                      .values_list("external_id", "id"))
        for ext, turn_id in by_key.items():
            pending.filter(turn_external_id=ext).update(turn_id=turn_id)
        Session.objects.filter(turns__id__in=by_key.values()).update(dirty=True)
        mirrored = MirroredAnswer.objects.filter(source=self.source, turn__isnull=True)
        by_key = dict(Turn.objects.filter(source=self.source, external_id__in=mirrored.values("turn_external_id"))
                      .values_list("external_id", "id"))
        for ext, turn_id in by_key.items():
            mirrored.filter(turn_external_id=ext).update(turn_id=turn_id)


def _event(source: Source, e: ParsedEvent) -> Event:
    return Event(source=source, turn_external_id=e.turn_external_id, type=e.type, timestamp=e.timestamp,
                 corrected_response=e.corrected_response, actor=e.actor, reason=e.reason, payload=e.payload,
                 fingerprint=e.fingerprint)


class _Rendered:
    """A chunk's new turns as the reading thread renders them: each as its COPY row minus the session
    id (not known until the database has the session), and what the writes need to decide about it."""

    __slots__ = ("keys", "sessions", "stamps", "tails")

    def __init__(self, source_id: int, turns: list[ParsedTurn]):
        self.keys = [t.external_id for t in turns]
        self.sessions = [t.session_external_id for t in turns]
        self.stamps = [t.timestamp for t in turns]
        self.tails = [copy_text.turn_tail(source_id, t) for t in turns]


class _Once:
    """A file for psycopg2's copy_expert that hands over all its bytes in one read: the COPY then runs
    in C without taking the GIL back per block from the reading thread."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = self.data, b""
        return data


# One writer per source at a time: the existence checks and the COPYs must not interleave with
# another ingest of the same source.
_LOCK_CLASS = 7411


class CopyWriter(_Base):
    """PostgreSQL: new sessions, turns and events by COPY, optimistically.

    If none of a chunk's turns and none of the sessions new to this run exist yet (a first import, or
    a new day's log), the unique indexes confirm it during the COPY and nothing is looked up. If one
    does exist, that attempt is rolled back to its savepoint and the chunk takes the general path:
    look up the existing turns, upsert the sessions, COPY the rest.
    """

    TURN_COPY = f"COPY production_turn ({', '.join(copy_text.TURN_COLUMNS)}) FROM STDIN"
    TURN_COPY_WITH_ID = f"COPY production_turn (id, {', '.join(copy_text.TURN_COLUMNS)}) FROM STDIN"
    SESSION_COPY = "COPY production_session (id, source_id, external_id, first_seen, last_seen, dirty) FROM STDIN"
    EVENT_COPY = f"COPY production_event ({', '.join(copy_text.EVENT_COLUMNS)}) FROM STDIN"

    def __init__(self, source: Source, origin: str, job: IngestJob | None):
        super().__init__(source, origin, job)
        self.known_sessions: dict[str, int] = {}  # sessions this run has written, committed: key -> id

    def prepare(self, chunk: Chunk) -> None:
        chunk.prepared = _Rendered(self.source.id, chunk.turns)
        chunk.turns = []  # the rendered rows are all that is needed from here on

    def write(self, chunk: Chunk) -> IngestResult:
        rendered: _Rendered = chunk.prepared
        result = IngestResult(duplicates=chunk.duplicates, rejected=len(chunk.rejects))
        refusals: list[Reject] = []
        with transaction.atomic():
            with connection.cursor() as c:
                c.execute("SELECT pg_advisory_xact_lock(%s, %s), now()", [_LOCK_CLASS, self.source.id])
                now = c.fetchone()[1]  # what the events' created_at gets, as auto_now_add would
            turn_ids: dict[str, int] = {}
            if rendered.keys:
                existing, turn_ids, refused_rows = self._write_turns(rendered, {e.turn_external_id for e in chunk.events})
                result.duplicates += existing
                result.created = len(rendered.keys) - existing - len(refused_rows)
                refusals = [refused(chunk.turn_lines[i], "record", e) for i, e in refused_rows.items()]
            if chunk.events:
                result.events, more = self._insert_events(chunk.events, chunk.event_lines, now, turn_ids)
                refusals += more
            refusals += self.admit_shadows(chunk)
            if chunk.shadows:
                result.shadow, more = self._insert_shadows(chunk.shadows, chunk.shadow_lines)
                result.duplicates += len(chunk.shadows) - result.shadow - len(more)
                refusals += more
            self.store_rejects(chunk, result, refusals)
        return result

    def _write_turns(self, r: _Rendered, about: set[str]) -> tuple[int, dict[str, int], dict[int, BaseException]]:
        """Write the new turns; return how many were already there, the ids of the new turns that the
        chunk's events are about (so those events are stored attached), and the rows the database refused."""
        everything = range(len(r.keys))
        try:
            with transaction.atomic():
                learned, turn_ids, _ = self._copy_turns(r, everything, about, optimistic=True)
        except Exception as e:  # COPY raises psycopg2's own errors, Django's cursor does not wrap them
            if not (_is_unique_violation(e) or _is_row_error(e)):
                raise
        else:
            self.known_sessions.update(learned)
            return 0, turn_ids, {}
        existing = self._existing_keys(r.keys)
        new = [i for i, k in enumerate(r.keys) if k not in existing] if existing else list(everything)
        turn_ids, refused_rows = {}, {}
        if new:
            learned, turn_ids, refused_rows = self._copy_turns(r, new, about, optimistic=False)
            self.known_sessions.update(learned)
        return len(existing), turn_ids, refused_rows

    def _copy_turns(self, r: _Rendered, rows, about: set[str], optimistic: bool
                    ) -> tuple[dict[str, int], dict[str, int], dict[int, BaseException]]:
        keys, sessions, tails = r.keys, r.sessions, r.tails
        spans = session_spans((sessions[i], r.stamps[i]) for i in rows)
        if optimistic:
            known = self.known_sessions
            unknown = [k for k in spans if k not in known]
            ids = self._insert_sessions(unknown, spans) if unknown else {}
            if len(unknown) < len(spans):
                ids.update(self._upsert_sessions({k: v for k, v in spans.items() if k in known}))
        else:
            ids = self._upsert_sessions(spans)
        prefix = {k: f"{v}\t".encode() for k, v in ids.items()}
        with_events = [i for i in rows if keys[i] in about] if about else []
        turn_ids: dict[str, int] = {}
        # Optimistic: one COPY each, any error goes to the caller. Otherwise rows the database refuses
        # are found by halves and left out, and the rest is stored.
        copy = _copy_all if optimistic else _copy_finding_refusals
        refused_rows: dict[int, BaseException] = {}
        with connection.cursor() as c:
            if with_events:
                # Ids drawn ahead for the turns that have events here, so those events go in attached.
                drawn = dict(zip(with_events, _next_ids(c, "production_turn", len(with_events))))
                refused_rows.update(copy(c, self.TURN_COPY_WITH_ID, with_events, lambda part: b"".join(
                    [b"%d\t%s%s" % (drawn[i], prefix[sessions[i]], tails[i]) for i in part])))
                turn_ids = {keys[i]: drawn[i] for i in with_events if i not in refused_rows}
                rows = [i for i in rows if i not in drawn]
            if rows:
                def render(part):
                    parts = []
                    for i in part:
                        parts.append(prefix[sessions[i]])
                        parts.append(tails[i])
                    return b"".join(parts)

                refused_rows.update(copy(c, self.TURN_COPY, rows, render))
        return ids, turn_ids, refused_rows

    def _existing_keys(self, keys: list[str]) -> set[str]:
        with connection.cursor() as c:
            c.execute("SELECT external_id FROM production_turn WHERE source_id = %s AND external_id = ANY(%s)",
                      [self.source.id, keys])
            return {r[0] for r in c.fetchall()}

    def _insert_sessions(self, keys: list[str], spans: dict[str, tuple]) -> dict[str, int]:
        """Plain COPY of sessions believed new, ids drawn from the table's sequence; a session that
        exists after all fails the COPY on the unique index (the caller then takes the general path)."""
        with connection.cursor() as c:
            new_ids = _next_ids(c, "production_session", len(keys))
            src = self.source.id
            data = "".join([f"{i}\t{src}\t{copy_text.text(k)}\t{copy_text.ts(spans[k][0])}\t"
                            f"{copy_text.ts(spans[k][1])}\tt\n" for i, k in zip(new_ids, keys)])
            c.copy_expert(self.SESSION_COPY, _Once(data.encode()))
        return dict(zip(keys, new_ids))

    def _upsert_sessions(self, spans: dict[str, tuple]) -> dict[str, int]:
        keys = list(spans)
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
                [self.source.id, keys, [spans[k][0] for k in keys], [spans[k][1] for k in keys]],
            )
            return dict(c.fetchall())

    def _insert_events(self, events: list[ParsedEvent], lines: list[int], now: datetime, turn_ids: dict[str, int]
                       ) -> tuple[int, list[Reject]]:
        """COPY the chunk's events; if one is already stored, INSERT .. ON CONFLICT DO NOTHING instead, and
        if the database refuses one, that too one event at a time.

        Repeats inside the chunk are dropped first, keeping the first, as ON CONFLICT DO NOTHING would."""
        seen: set = set()
        unique: list[ParsedEvent] = []
        for e in events:
            k = (e.turn_external_id, e.fingerprint)
            if k not in seen:
                seen.add(k)
                unique.append(e)
        src, created = self.source.id, now.isoformat()
        data = "".join([copy_text.event_row(src, turn_ids.get(e.turn_external_id), e, created) for e in unique])
        try:
            with transaction.atomic():
                with connection.cursor() as c:
                    c.copy_expert(self.EVENT_COPY, _Once(data.encode()))
        except Exception as e:  # COPY raises psycopg2's own errors, Django's cursor does not wrap them
            if not (_is_unique_violation(e) or _is_row_error(e)):
                raise
        else:
            return len(unique), []
        return _all_or_each(events, lines, self._insert_events_on_conflict, "event")

    def _insert_events_on_conflict(self, events: list[ParsedEvent]) -> int:
        from psycopg2.extras import execute_values

        rows = [(self.source.id, e.turn_external_id, e.type, e.timestamp, e.corrected_response, e.actor, e.reason,
                 orjson.dumps(e.payload).decode(), e.fingerprint) for e in events]
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

    def _insert_shadows(self, shadows: list[ParsedShadow], lines: list[int]) -> tuple[int, list[Reject]]:
        """Store mirrored answers, the first of each (turn, release) winning, attached at once to turns
        already stored (this chunk's included); the rest wait for `finish`."""
        return _all_or_each(shadows, lines, self._insert_shadows_on_conflict, "shadow")

    def _insert_shadows_on_conflict(self, shadows: list[ParsedShadow]) -> int:
        from psycopg2.extras import execute_values

        with connection.cursor() as c:
            inserted = execute_values(
                c.cursor,
                f"""INSERT INTO production_mirroredanswer (source_id, turn_external_id, turn_id, release, response,
                        latency_ms)
                    SELECT {int(self.source.id)}, v.turn, t.id, v.release, v.response, v.latency
                    FROM (VALUES %s) AS v(turn, release, response, latency)
                    LEFT JOIN production_turn t ON t.source_id = {int(self.source.id)} AND t.external_id = v.turn
                    ON CONFLICT (source_id, turn_external_id, release) DO NOTHING RETURNING 1""",
                [(m.turn_external_id, m.release, m.response, m.latency_ms) for m in shadows],
                template="(%s, %s, %s, %s::double precision)",
                page_size=1000,
                fetch=True,
            )
        return len(inserted)

    def finish(self) -> None:
        with connection.cursor() as c:
            c.execute(
                """UPDATE production_mirroredanswer m SET turn_id = t.id FROM production_turn t
                   WHERE m.source_id = %s AND m.turn_id IS NULL
                     AND t.source_id = m.source_id AND t.external_id = m.turn_external_id""",
                [self.source.id],
            )
            # Most events went in attached; without any left over skip the join, whose plan can be poor
            # while the tables' statistics still describe them before a big ingest.
            c.execute("SELECT EXISTS (SELECT 1 FROM production_event WHERE source_id = %s AND turn_id IS NULL)",
                      [self.source.id])
            if not c.fetchone()[0]:
                return
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


def _next_ids(c, table: str, n: int) -> list[int]:
    c.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [n])
    return [r[0] for r in c.fetchall()]


def _copy_all(c, sql: str, rows: list[int], render) -> dict[int, BaseException]:
    c.copy_expert(sql, _Once(render(rows)))
    return {}


def _copy_finding_refusals(c, sql: str, rows: list[int], render) -> dict[int, BaseException]:
    """COPY the rows; if the database refuses the lot, find the rows it refuses by halves, each attempt in a
    savepoint, and store the others. Returns the refused rows with the error. Only errors about the data
    are looked into (`_is_row_error`): anything else (a lost connection, a full disk) fails the chunk."""
    refusals: dict[int, BaseException] = {}
    pending = [list(rows)]
    while pending:
        part = pending.pop()
        try:
            with transaction.atomic():
                c.copy_expert(sql, _Once(render(part)))
        except Exception as e:
            if not _is_row_error(e):
                raise
            if len(part) == 1:
                refusals[part[0]] = e
            else:
                half = len(part) // 2
                pending += [part[half:], part[:half]]
    return refusals


def _pgcode(e: BaseException) -> str:
    # COPY and execute_values run on the driver's cursor: its errors arrive unwrapped, with their SQLSTATE.
    return getattr(e, "pgcode", None) or ""


def _is_unique_violation(e: BaseException) -> bool:
    return _pgcode(e) == "23505"


def _is_row_error(e: BaseException) -> bool:
    """An error about a row's data: data exceptions (22: too long, bad encoding, bad value), integrity
    (23: a constraint or trigger refusing it), program limits (54: e.g. an index row too large)."""
    return _pgcode(e)[:2] in ("22", "23", "54")


def _all_or_each(rows: list, lines: list[int], insert, kind: str) -> tuple[int, list[Reject]]:
    """`insert(rows)` in one savepoint; if the database refuses a row, each row in its own savepoint,
    the refused ones rejected with their line number (the rest are kept)."""
    try:
        with transaction.atomic():
            return insert(rows), []
    except Exception as e:
        if not _is_row_error(e):
            raise
    inserted, refusals = 0, []
    for row, line_no in zip(rows, lines):
        try:
            with transaction.atomic():
                inserted += insert([row])
        except Exception as e:
            if not _is_row_error(e):
                raise
            refusals.append(refused(line_no, kind, e))
    return inserted, refusals
