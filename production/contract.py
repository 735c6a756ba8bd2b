"""The input contract (docs/production-log.md): one record in, a validated turn or event out.

Every rule of the contract lives here, so the JSONL, CSV, messages and API paths reject the
same things with the same reasons. A reason always names the field it is about.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import orjson

EVENT_TYPES = ("copy", "thumbs_up", "thumbs_down", "human_override", "escalation", "navigate_away")
TURN_FIELDS = {
    "id", "session_id", "timestamp", "query", "response", "type", "user_id", "contexts", "model",
    "response_timestamp", "latency_ms", "events", "metadata",
}
EVENT_FIELDS = {"type", "timestamp", "corrected_response", "actor", "reason"}


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
    return ts


def _type(value) -> str:
    return "null" if value is None else type(value).__name__


def _str(obj: dict, key: str, name: str, required: bool, allow_empty: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise ContractError(f"{name}: missing required field")
        return ""
    if not isinstance(value, str):
        raise ContractError(f"{name}: expected a string, got {_type(value)}")
    if not allow_empty and not value.strip():
        raise ContractError(f"{name}: must not be empty")
    return value


def parse_event(obj, turn_external_id: str, name: str = "event") -> ParsedEvent:
    if not isinstance(obj, dict):
        raise ContractError(f"{name}: expected an object, got {_type(obj)}")
    etype = _str(obj, "type", f"{name}.type", required=True, allow_empty=False)
    ts = obj.get("timestamp")
    timestamp = None if ts is None else parse_timestamp(ts, f"{name}.timestamp")
    corrected = _str(obj, "corrected_response", f"{name}.corrected_response", required=etype == "human_override")
    actor = _str(obj, "actor", f"{name}.actor", required=False)
    reason = _str(obj, "reason", f"{name}.reason", required=False)
    payload = {k: v for k, v in obj.items() if k not in EVENT_FIELDS}
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


def parse_record(obj) -> ParsedTurn | ParsedEvent:
    """Validate one decoded JSON value as a turn record or an event line."""
    if not isinstance(obj, dict):
        raise ContractError(f"record: expected a JSON object, got {_type(obj)}")
    rtype = obj.get("type", "turn")
    if rtype == "event":
        turn_id = _str(obj, "turn_id", "turn_id", required=True, allow_empty=False)
        return parse_event(obj.get("event"), turn_id, "event")
    if rtype != "turn":
        raise ContractError(f"type: expected 'turn' or 'event', got {str(rtype)[:40]!r}")
    return parse_turn(obj)


def parse_turn(obj: dict, *, position: int | None = None, timestamp_required: bool = True) -> ParsedTurn:
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
    if (
        type(turn_id) is str and type(session_id) is str and type(ts) is str and type(query) is str
        and type(response) is str and (user_id is None or type(user_id) is str)
        and (model is None or type(model) is str) and turn_id.strip() and session_id.strip()
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
        return _parse_turn_rest(obj, turn, turn_id)
    return _parse_turn_full(obj, position=position, timestamp_required=timestamp_required)


def _parse_turn_full(obj: dict, *, position: int | None, timestamp_required: bool) -> ParsedTurn:
    turn_id = _str(obj, "id", "id", required=True, allow_empty=False)
    session_id = _str(obj, "session_id", "session_id", required=True, allow_empty=False)
    ts = obj.get("timestamp")
    if ts is None and not timestamp_required:
        timestamp = None
    else:
        if ts is None:
            raise ContractError("timestamp: missing required field")
        timestamp = parse_timestamp(ts, "timestamp")
    query = _str(obj, "query", "query", required=True)
    if "response" not in obj:
        raise ContractError("response: missing required field (it may be \"\")")
    response = _str(obj, "response", "response", required=True)
    turn = ParsedTurn(
        external_id=turn_id,
        session_external_id=session_id,
        timestamp=timestamp,
        query=query,
        response=response,
        user_id=_str(obj, "user_id", "user_id", required=False),
        model=_str(obj, "model", "model", required=False),
        position=position,
    )
    return _parse_turn_rest(obj, turn, turn_id)


def _parse_turn_rest(obj: dict, turn: ParsedTurn, turn_id: str) -> ParsedTurn:
    contexts = obj.get("contexts")
    if contexts is not None:
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise ContractError("contexts: expected an array of strings")
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
        turn.metadata = metadata
    extra = {k: v for k, v in obj.items() if k not in TURN_FIELDS}
    if extra:
        # Unknown fields are kept, not dropped: the source system may know why they are there.
        turn.metadata = {**turn.metadata, "_extra": extra}
    events = obj.get("events")
    if events is not None:
        if not isinstance(events, list):
            raise ContractError(f"events: expected an array, got {_type(events)}")
        turn.events = [parse_event(e, turn_id, f"events[{i}]") for i, e in enumerate(events)]
    return turn


def parse_messages_line(obj) -> list[ParsedTurn]:
    """An OpenAI-style conversation: each user message and the assistant reply after it is a turn."""
    if not isinstance(obj, dict):
        raise ContractError(f"record: expected a JSON object, got {_type(obj)}")
    session_id = _str(obj, "session_id", "session_id", required=True, allow_empty=False)
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
            turn = parse_turn(record, position=n, timestamp_required=False)
        except ContractError as e:
            raise ContractError(f"messages[{i}]: {e}") from None
        turns.append(turn)
        i = answer_at + 1 if answer_at is not None else i + 1
    if not turns:
        raise ContractError("messages: no user message in the conversation")
    return turns
