"""Values as fields of PostgreSQL COPY's text format (tab-separated, `\\N` for NULL)."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from ...contract import ParsedEvent, ParsedTurn

NULL = "\\N"
UTC = timezone.utc


def text(value: str) -> str:
    if "\\" in value or "\n" in value or "\t" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return value


def json_text(value) -> str:
    return text(orjson.dumps(value).decode())


def ts(value: datetime | None) -> str:
    if value is None:
        return NULL
    # In UTC: RFC 3339 allows offsets up to ±23:59, PostgreSQL only up to ±15:59.
    return value.isoformat() if value.tzinfo is UTC else value.astimezone(UTC).isoformat()


def turn_tail(source_id: int, t: ParsedTurn) -> bytes:
    """A turn as a COPY row minus its leading session id: the columns after session_id of TURN_COLUMNS."""
    pos, lat = t.position, t.latency_ms
    return (
        f"{source_id}\t{text(t.external_id)}\t{ts(t.timestamp)}\t{NULL if pos is None else pos}\t{text(t.query)}\t"
        f"{text(t.response)}\t{text(t.user_id)}\t{json_text(t.contexts) if t.contexts else '[]'}\t{text(t.model)}\t"
        f"{ts(t.response_timestamp)}\t{NULL if lat is None else lat}\t"
        f"{json_text(t.metadata) if t.metadata else '{}'}\n"
    ).encode()


TURN_COLUMNS = ("session_id", "source_id", "external_id", "timestamp", "position", "query", "response", "user_id",
                "contexts", "model", "response_timestamp", "latency_ms", "metadata")


def event_row(source_id: int, turn_id: int | None, e: ParsedEvent, created: str) -> str:
    return (
        f"{source_id}\t{NULL if turn_id is None else turn_id}\t{text(e.turn_external_id)}\t{text(e.type)}\t"
        f"{ts(e.timestamp)}\t{text(e.corrected_response)}\t{text(e.actor)}\t{text(e.reason)}\t"
        f"{json_text(e.payload)}\t{e.fingerprint}\t{created}\n"
    )


EVENT_COLUMNS = ("source_id", "turn_id", "turn_external_id", "type", "timestamp", "corrected_response", "actor",
                 "reason", "payload", "fingerprint", "created_at")
