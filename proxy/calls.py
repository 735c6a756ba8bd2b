"""One proxied chat call, and the production-log lines it becomes (docs/production-log.md).

Pure functions, no Django: the recorder's threads call them after the user's answer has been sent,
so none of this parsing is on the user's path.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Call:
    """What the proxy saw of one POST /v1/chat/completions: the request as sent, the answer's raw
    bytes as the upstream sent them (still content-encoded), and when."""

    turn_id: str
    request_body: bytes
    session_header: str
    started_at: datetime
    finished_at: datetime
    status: int
    content_type: str = ""
    content_encoding: str = ""
    chunks: list[bytes] = field(default_factory=list)
    error: str = ""


def request_json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def session_of(call: Call, request: dict) -> str:
    """X-Session-Id, else the request's `user`, else the turn alone is its session."""
    user = request.get("user")
    return call.session_header or (user if isinstance(user, str) and user else "") or call.turn_id


def text_of(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def query_of(messages) -> str:
    """The user's message this call answers: the last user message."""
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            return text_of(m.get("content"))
    return ""


def decoded(call: Call) -> bytes:
    raw = b"".join(call.chunks)
    enc = call.content_encoding.lower().strip()
    try:
        if enc == "gzip":
            return gzip.decompress(raw)
        if enc == "deflate":
            return zlib.decompress(raw)
    except (OSError, zlib.error):
        return b""
    return raw


def answer_of(call: Call) -> tuple[str, str]:
    """(answer text, model) from a plain JSON completion or a streamed one (server-sent events)."""
    body = decoded(call)
    if "text/event-stream" in call.content_type:
        parts, model = [], ""
        for line in body.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            model = model or chunk.get("model") or ""
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) == 0:
                    parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts), model
    try:
        data = json.loads(body)
        choice = (data.get("choices") or [{}])[0]
        return text_of((choice.get("message") or {}).get("content")) or "", data.get("model") or ""
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ""


def turn_line(call: Call, request: dict) -> dict:
    """The turn record of a call. A call that failed (upstream error, unreachable) is still a turn:
    the user got no answer, and the record says why in metadata.proxy."""
    ok = 200 <= call.status < 300 and not call.error
    answer, model = answer_of(call) if ok else ("", "")
    messages = request.get("messages")
    meta = {"status": call.status, "stream": bool(request.get("stream")),
            "messages": len(messages) if isinstance(messages, list) else 0}
    if call.error:
        meta["error"] = call.error
    line = {
        "id": call.turn_id,
        "session_id": session_of(call, request),
        "timestamp": call.started_at.isoformat(),
        "query": query_of(messages),
        "response": answer,
        "model": model or (request.get("model") if isinstance(request.get("model"), str) else ""),
        "response_timestamp": call.finished_at.isoformat(),
        "latency_ms": round((call.finished_at - call.started_at).total_seconds() * 1000, 3),
        "metadata": {"proxy": meta},
    }
    if isinstance(request.get("user"), str) and request["user"]:
        line["user_id"] = request["user"]
    return line


def shadow_line(*, turn_id: str, release: str, response: str, latency_ms: float) -> dict:
    return {"type": "shadow", "turn_id": turn_id, "release": release, "response": response,
            "latency_ms": round(latency_ms, 3)}


def session_in_shadow(*, salt: str, release: str, session_id: str, percent: float) -> bool:
    """Whether a session's calls are mirrored to `release`: a salted hash of the session id against
    the release's share, so a session is in or out for good (and independently per release)."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{salt}\x1f{release}\x1f{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 1_000_000 < round(percent * 10_000)
