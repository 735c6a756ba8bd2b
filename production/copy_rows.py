"""Rendering turns as CSV rows for PostgreSQL's COPY."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import orjson

from .contract import ParsedTurn


def json_text(value) -> str:
    return orjson.dumps(value).decode()


def ts_text(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def render_turn_tail(t: ParsedTurn) -> str:
    """The CSV cells of a turn after (source_id, external_id, session_id), with the line end."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow((
        ts_text(t.timestamp), "" if t.position is None else t.position, t.query, t.response, t.user_id,
        json_text(t.contexts), t.model, ts_text(t.response_timestamp),
        "" if t.latency_ms is None else t.latency_ms, json_text(t.metadata),
    ))
    return buf.getvalue()
