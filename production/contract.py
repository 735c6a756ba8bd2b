"""The input contract (docs/production-log.md): one record in, a validated turn or event out.

Every rule of the contract lives here, so the JSONL, CSV, messages and API paths reject the
same things with the same reasons. A reason always names the field it is about.

Besides the types, a record must be storable as it is, on PostgreSQL and SQLite alike: no NUL
character anywhere (PostgreSQL text and jsonb cannot hold one), ids and names within their
columns (`MAX_ID` ...), text fields within `Limits.max_field_chars`, JSON within orjson's nesting
limit. So poison is rejected as its line, with a reason, before anything reaches the database.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

EVENT_TYPES = ("copy", "thumbs_up", "thumbs_down", "human_override", "escalation", "navigate_away")
TURN_FIELDS = {
    "id", "session_id", "timestamp", "query", "response", "type", "user_id", "contexts", "model",
    "response_timestamp", "latency_ms", "events", "metadata",
}
EVENT_FIELDS = {"type", "timestamp", "corrected_response", "actor", "reason"}

# Column sizes, in characters (the models use these): turn, session and user ids, model and actor
# names; an event's type.
MAX_ID = 255
MAX_EVENT_TYPE = 100
MAX_RELEASE = 200  # a shadow line's release name
# Metadata and event payloads are stored as JSON, and later embedded in exports and API answers:
# well within the 254 levels orjson writes.
MAX_JSON_DEPTH = 64
NUL = "\x00"


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes a record may have (settings INGEST_MAX_FIELD_CHARS, INGEST_MAX_LINE_BYTES)."""

    max_field_chars: int = 1_000_000  # one text field (query, response, a context ...); JSON fields as JSON text
    max_line_bytes: int = 16 * 1024 * 1024  # one input line, checked by the readers before parsing


DEFAULT_LIMITS = Limits()


class ContractError(ValueError):
    """A record breaks the contract; the message names the field."""


@dataclass(slots=True)
class ParsedEvent:
    turn_external_id: str
    type: str
    timestamp: datetime | None
    corrected_response: str
    actor: str
    reason: str
    payload: dict
    fingerprint: str


@dataclass(slots=True)
class ParsedShadow:
    """A candidate release's answer to a turn's query, mirrored by the gateway, never served."""

    turn_external_id: str
    release: str
    response: str
    latency_ms: float | None


@dataclass(slots=True)
class ParsedTurn:
    external_id: str
    session_external_id: str
    timestamp: datetime | None
    query: str
    response: str
    user_id: str = ""
    contexts: list = field(default_factory=list)
    model: str = ""
    response_timestamp: datetime | None = None
    latency_ms: float | None = None
    metadata: dict = field(default_factory=dict)
    position: int | None = None
    events: list[ParsedEvent] = field(default_factory=list)


def parse_timestamp(value, name: str) -> datetime:
    if not isinstance(value, str):
        raise ContractError(f"{name}: expected an RFC 3339 string, got {_type(value)}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{name}: not an RFC 3339 timestamp: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise ContractError(f"{name}: timestamp has no zone offset (add 'Z' or '+00:00'): {value[:40]!r}")
    if len(value) < 16 or value[10] not in "Tt ":
        raise ContractError(f"{name}: not an RFC 3339 date-time: {value[:40]!r}")
    if ts.year in (1, 9999):
        try:  # both databases store UTC: the first and last days of the calendar may not convert
            ts.astimezone(timezone.utc)
        except OverflowError:
            raise ContractError(f"{name}: out of range in UTC: {value[:40]!r}") from None
    return ts


def _type(value) -> str:
    return "null" if value is None else type(value).__name__


def _str(obj: dict, key: str, name: str, required: bool, allow_empty: bool = True, max_len: int | None = None,
         limits: Limits = DEFAULT_LIMITS) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise ContractError(f"{name}: missing required field")
        return ""
    if not isinstance(value, str):
        raise ContractError(f"{name}: expected a string, got {_type(value)}")
    if not allow_empty and not value.strip():
        raise ContractError(f"{name}: must not be empty")
    _check_text(value, name, max_len, limits)
    return value


def _check_text(value: str, name: str, max_len: int | None, limits: Limits) -> None:
    if NUL in value:
        raise ContractError(f"{name}: contains a NUL character (\\u0000), which cannot be stored")
    if max_len is not None:
        if len(value) > max_len:
            raise ContractError(f"{name}: longer than {max_len} characters ({len(value)})")
    elif len(value) > limits.max_field_chars:
        raise ContractError(f"{name}: longer than INGEST_MAX_FIELD_CHARS ({len(value)} characters, the limit is "
                            f"{limits.max_field_chars})")


def _check_json(value, name: str, limits: Limits) -> None:
    """A JSON value that is stored as JSON (metadata, an event's payload): nesting, NUL, size."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:  # the only way a parsed value fails to serialise: nesting
        raise ContractError(f"{name}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    # Fewer brackets than the limit cannot nest deeper than it: only then is the value walked.
    if text.count(b"{") + text.count(b"[") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ContractError(f"{name}: nested deeper than {MAX_JSON_DEPTH} levels")
    if b"\\u0000" in text:  # maybe only the text \\u0000; the walk says
        where = _nul_path(value, name)
        if where:
            raise ContractError(f"{where}: contains a NUL character (\\u0000), which cannot be stored")
    if len(text) > limits.max_field_chars:
        raise ContractError(f"{name}: longer than INGEST_MAX_FIELD_CHARS ({len(text)} characters of JSON, the "
                            f"limit is {limits.max_field_chars})")


def _deeper_than(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if depth > limit:
            return True
        stack.extend((x, depth + 1) for x in v)
    return False


def _nul_path(value, name: str) -> str | None:
    """Where in a JSON value a NUL character is (a string or a key), as a path: `metadata.a[2]`."""
    stack = [(value, name)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str):
            if NUL in v:
                return path
        elif isinstance(v, dict):
            for k, x in v.items():
                if NUL in k:
                    return f"{path} (a key)"
                stack.append((x, f"{path}.{k}"))
        elif isinstance(v, list):
            stack.extend((x, f"{path}[{i}]") for i, x in enumerate(v))
    return None


def parse_event(obj, turn_external_id: str, name: str = "event", limits: Limits = DEFAULT_LIMITS) -> ParsedEvent:
    if not isinstance(obj, dict):
        raise ContractError(f"{name}: expected an object, got {_type(obj)}")
    etype = _str(obj, "type", f"{name}.type", required=True, allow_empty=False, max_len=MAX_EVENT_TYPE)
    ts = obj.get("timestamp")
    timestamp = None if ts is None else parse_timestamp(ts, f"{name}.timestamp")
    corrected = _str(obj, "corrected_response", f"{name}.corrected_response", required=etype == "human_override",
                     limits=limits)
    actor = _str(obj, "actor", f"{name}.actor", required=False, max_len=MAX_ID)
    reason = _str(obj, "reason", f"{name}.reason", required=False, limits=limits)
    payload = {k: v for k, v in obj.items() if k not in EVENT_FIELDS}
    if payload:
        _check_json(payload, name, limits)
    canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return ParsedEvent(
        turn_external_id=turn_external_id,
        type=etype,
        timestamp=timestamp,
        corrected_response=corrected,
        actor=actor,
        reason=reason,
        payload=payload,
        fingerprint=hashlib.sha1(canonical).hexdigest(),
    )


def parse_record(obj, limits: Limits = DEFAULT_LIMITS) -> ParsedTurn | ParsedEvent | ParsedShadow:
    """Validate one decoded JSON value as a turn record, an event line or a shadow line."""
    if not isinstance(obj, dict):
        raise ContractError(f"record: expected a JSON object, got {_type(obj)}")
    rtype = obj.get("type", "turn")
    if rtype == "event":
        turn_id = _str(obj, "turn_id", "turn_id", required=True, allow_empty=False, max_len=MAX_ID)
        return parse_event(obj.get("event"), turn_id, "event", limits)
    if rtype == "shadow":
        return parse_shadow(obj, limits)
    if rtype != "turn":
        raise ContractError(f"type: expected 'turn', 'event' or 'shadow', got {str(rtype)[:40]!r}")
    return parse_turn(obj, limits=limits)


def parse_shadow(obj: dict, limits: Limits = DEFAULT_LIMITS) -> ParsedShadow:
    """`{"type": "shadow", "turn_id": ID, "release": NAME, "response": TEXT, "latency_ms": N?}`; other
    fields are ignored, as on event lines."""
    turn_id = _str(obj, "turn_id", "turn_id", required=True, allow_empty=False, max_len=MAX_ID)
    release = _str(obj, "release", "release", required=True, allow_empty=False, max_len=MAX_RELEASE)
    if "response" not in obj:
        raise ContractError("response: missing required field (it may be \"\")")
    response = _str(obj, "response", "response", required=True, limits=limits)
    latency = obj.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            raise ContractError(f"latency_ms: expected a number, got {_type(latency)}")
        latency = float(latency)
    return ParsedShadow(turn_id, release, response, latency)


def parse_turn(obj: dict, *, position: int | None = None, timestamp_required: bool = True,
               limits: Limits = DEFAULT_LIMITS) -> ParsedTurn:
    # Fast path for the common, well-formed record: the same checks in the same order, fewer calls.
    # Anything it is not sure about goes to the full path below, which gives the exact reason.
    get = obj.get
    turn_id = get("id")
    session_id = get("session_id")
    ts = get("timestamp")
    query = get("query")
    response = get("response")
    user_id = get("user_id")
    model = get("model")
    cap = limits.max_field_chars
    if (
        type(turn_id) is str and type(session_id) is str and type(ts) is str and type(query) is str
        and type(response) is str and (user_id is None or type(user_id) is str)
        and (model is None or type(model) is str) and turn_id.strip() and session_id.strip()
        and len(turn_id) <= MAX_ID and len(session_id) <= MAX_ID and len(query) <= cap and len(response) <= cap
        and (user_id is None or len(user_id) <= MAX_ID) and (model is None or len(model) <= MAX_ID)
        and NUL not in query and NUL not in response and NUL not in turn_id and NUL not in session_id
        and (user_id is None or NUL not in user_id) and (model is None or NUL not in model)
    ):
        turn = ParsedTurn(
            turn_id, session_id, parse_timestamp(ts, "timestamp"), query, response,
            "" if user_id is None else user_id, [], "" if model is None else model, None, None, {}, position, [],
        )
        if TURN_FIELDS.issuperset(obj):
            latency = get("latency_ms")
            if (
                (latency is None or type(latency) is int or type(latency) is float)
                and get("contexts") is None and get("response_timestamp") is None
                and get("metadata") is None and get("events") is None
            ):
                if latency is not None:
                    turn.latency_ms = float(latency)
                return turn
        return _parse_turn_rest(obj, turn, turn_id, limits)
    return _parse_turn_full(obj, position=position, timestamp_required=timestamp_required, limits=limits)


def _parse_turn_full(obj: dict, *, position: int | None, timestamp_required: bool, limits: Limits) -> ParsedTurn:
    turn_id = _str(obj, "id", "id", required=True, allow_empty=False, max_len=MAX_ID)
    session_id = _str(obj, "session_id", "session_id", required=True, allow_empty=False, max_len=MAX_ID)
    ts = obj.get("timestamp")
    if ts is None and not timestamp_required:
        timestamp = None
    else:
        if ts is None:
            raise ContractError("timestamp: missing required field")
        timestamp = parse_timestamp(ts, "timestamp")
    query = _str(obj, "query", "query", required=True, limits=limits)
    if "response" not in obj:
        raise ContractError("response: missing required field (it may be \"\")")
    response = _str(obj, "response", "response", required=True, limits=limits)
    turn = ParsedTurn(
        external_id=turn_id,
        session_external_id=session_id,
        timestamp=timestamp,
        query=query,
        response=response,
        user_id=_str(obj, "user_id", "user_id", required=False, max_len=MAX_ID),
        model=_str(obj, "model", "model", required=False, max_len=MAX_ID),
        position=position,
    )
    return _parse_turn_rest(obj, turn, turn_id, limits)


def _parse_turn_rest(obj: dict, turn: ParsedTurn, turn_id: str, limits: Limits) -> ParsedTurn:
    contexts = obj.get("contexts")
    if contexts is not None:
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise ContractError("contexts: expected an array of strings")
        for i, c in enumerate(contexts):
            _check_text(c, f"contexts[{i}]", None, limits)
        turn.contexts = contexts
    rts = obj.get("response_timestamp")
    if rts is not None:
        turn.response_timestamp = parse_timestamp(rts, "response_timestamp")
    latency = obj.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            raise ContractError(f"latency_ms: expected a number, got {_type(latency)}")
        turn.latency_ms = float(latency)
    metadata = obj.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ContractError(f"metadata: expected an object, got {_type(metadata)}")
        _check_json(metadata, "metadata", limits)
        turn.metadata = metadata
    extra = {k: v for k, v in obj.items() if k not in TURN_FIELDS}
    if extra:
        for k, v in extra.items():
            if NUL in k:
                raise ContractError("record: a field name contains a NUL character (\\u0000), which cannot be stored")
            _check_json(v, k, limits)
        # Unknown fields are kept, not dropped: the source system may know why they are there.
        turn.metadata = {**turn.metadata, "_extra": extra}
        _check_json(turn.metadata, "metadata", limits)
    events = obj.get("events")
    if events is not None:
        if not isinstance(events, list):
            raise ContractError(f"events: expected an array, got {_type(events)}")
        turn.events = [parse_event(e, turn_id, f"events[{i}]", limits) for i, e in enumerate(events)]
    return turn


def parse_messages_line(obj, limits: Limits = DEFAULT_LIMITS) -> list[ParsedTurn]:
    """An OpenAI-style conversation: each user message and the assistant reply after it is a turn."""
    if not isinstance(obj, dict):
        raise ContractError(f"record: expected a JSON object, got {_type(obj)}")
    # Turn ids are "<session id>-<n>": room is left for the suffix.
    session_id = _str(obj, "session_id", "session_id", required=True, allow_empty=False, max_len=MAX_ID - 6)
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise ContractError(f"messages: expected an array, got {_type(messages)}")
    timestamps = obj.get("timestamps")
    if timestamps is not None and (not isinstance(timestamps, list) or len(timestamps) != len(messages)):
        raise ContractError("timestamps: expected an array with one timestamp per message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ContractError(f"messages[{i}]: expected an object with string 'role' and 'content'")
    turns: list[ParsedTurn] = []
    i = 0
    while i < len(messages):
        if messages[i]["role"] != "user":
            i += 1
            continue
        answer_at = i + 1 if i + 1 < len(messages) and messages[i + 1]["role"] == "assistant" else None
        n = len(turns) + 1
        record = {
            "id": f"{session_id}-{n}",
            "session_id": session_id,
            "query": messages[i]["content"],
            "response": messages[answer_at]["content"] if answer_at is not None else "",
            "model": obj.get("model") if isinstance(obj.get("model"), str) else None,
        }
        if timestamps is not None:
            record["timestamp"] = timestamps[i]
            if answer_at is not None:
                record["response_timestamp"] = timestamps[answer_at]
        try:
            turn = parse_turn(record, position=n, timestamp_required=False, limits=limits)
        except ContractError as e:
            raise ContractError(f"messages[{i}]: {e}") from None
        turns.append(turn)
        i = answer_at + 1 if answer_at is not None else i + 1
    if not turns:
        raise ContractError("messages: no user message in the conversation")
    return turns
