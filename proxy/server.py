"""The proxy's ASGI app: forwards every /v1/* request to the upstream and streams the answer back
as it arrives, byte for byte (still content-encoded, headers as sent, less hop-by-hop ones).

A POST /v1/chat/completions is handed to the recorder once its last byte has been sent: the user
never waits on evalgap. The answer carries `X-Evalgap-Turn-Id`, the turn id browser events name
(docs/proxy-and-events.md). `GET /_evalgap/stats` shows the recorder's counters.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import httpx

from .calls import Call
from .recorder import Recorder

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's; host is the upstream's.
HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
       b"transfer-encoding", b"upgrade", b"host", b"content-length"}
CHAT = "/v1/chat/completions"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ProxyApp:
    def __init__(self, *, upstream: str, recorder: Recorder | None, timeout: float = 600.0,
                 max_connections: int = 1000):
        self.upstream = upstream.rstrip("/")
        self.recorder = recorder
        self.timeout = timeout
        self.max_connections = max_connections
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/_evalgap/stats" and self.recorder is not None:
            return await _json(send, 200, self.recorder.counters.as_dict())
        if not path.startswith("/v1/"):
            return await _json(send, 404, {"error": {"message": f"evalgap proxy: {path} is not under /v1/",
                                                     "type": "not_found"}})
        body = await _body(receive)
        recorded = self.recorder is not None and scope["method"] == "POST" and path == CHAT
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP]
        turn_id = _header(scope, b"x-turn-id") or uuid.uuid4().hex
        call = Call(turn_id=turn_id, request_body=body, session_header=_header(scope, b"x-session-id"),
                    started_at=_now(), finished_at=_now(), status=0) if recorded else None
        # The upstream is the base URL an OpenAI client would use (".../v1"): the path after /v1 goes on it.
        url = self.upstream + path[3:] + (("?" + scope["query_string"].decode("latin-1"))
                                          if scope["query_string"] else "")
        client = self._client()
        try:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
        except httpx.HTTPError as e:
            if call is not None:
                call.status, call.error, call.finished_at = 502, f"upstream unreachable: {type(e).__name__}", _now()
                self.recorder.submit(call)
            return await _json(send, 502, {"error": {"message": f"evalgap proxy: upstream unreachable ({e})",
                                                     "type": "upstream_unreachable"}})
        out_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP - {b"content-length"}]
        if call is not None:
            out_headers.append((b"x-evalgap-turn-id", turn_id.encode()))
            call.status = response.status_code
            call.content_type = response.headers.get("content-type", "")
            call.content_encoding = response.headers.get("content-encoding", "")
        try:
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():
                if call is not None:
                    call.chunks.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.HTTPError, OSError) as e:
            if call is not None:
                call.error = f"interrupted: {type(e).__name__}"
        finally:
            await response.aclose()
            if call is not None:
                call.finished_at = _now()
                self.recorder.submit(call)

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
            self.client = httpx.AsyncClient(timeout=self.timeout, limits=limits)
        return self.client

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope, name: bytes) -> str:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1").strip()
    return ""


async def _body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
