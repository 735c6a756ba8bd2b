"""Browser events: what users do with an answer in the web app (copy, thumbs, leaving the page), sent
by evalgap-events.js with a publishable key (docs/proxy-and-events.md).

A publishable key can only add events of the browser's kinds to turns of its own source, from the
origins it lists, at most `rate_per_minute` a minute; the event goes through ingest as an event line
(the input contract, attached to its turn now or when the turn arrives, stored once).
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.cache import cache
from django.utils import timezone

from ..contract import MAX_ID
from ..models import PublishableKey
from . import ingest

BROWSER_EVENT_TYPES = ("copy", "thumbs_up", "thumbs_down", "navigate_away")
MAX_REASON = 1000



@dataclass
class Refused(Exception):
    """The event is not taken; `status` is the HTTP status that says why."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def origin_normalize(origin: str) -> str:
    """`scheme://host[:port]` as browsers send it in the Origin header; raises ValueError otherwise."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], e.g. https://app.example.com)")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def publishable_key_create(*, source_name: str, origins: list[str], name: str = "",
                           rate_per_minute: int = 600) -> PublishableKey:
    if not origins:
        raise ValueError("--origin: name at least one origin the web app is served from")
    if rate_per_minute < 1:
        raise ValueError("--rate: at least 1 event a minute")
    allowed = sorted({origin_normalize(o) for o in origins})
    source = ingest.source_get_or_create(name=source_name)
    return PublishableKey.objects.create(source=source, key="pk_" + secrets.token_urlsafe(24), name=name,
                                         allowed_origins=allowed, rate_per_minute=rate_per_minute)


def publishable_key_for(*, key: str, origin: str) -> PublishableKey:
    """The live key `key` if `origin` may use it; Refused (403) otherwise."""
    pk = PublishableKey.objects.select_related("source").filter(key=key or "", revoked_at__isnull=True).first()
    if pk is None:
        raise Refused(403, "key: not a live publishable key")
    try:
        allowed = origin_normalize(origin) in pk.allowed_origins
    except ValueError:
        allowed = False
    if not allowed:
        raise Refused(403, f"origin: {origin or '(none)'} is not an allowed origin of this key")
    return pk


def _rate_take(pk: PublishableKey) -> None:
    # A fixed one-minute window in Django's cache (per process with the default local-memory cache;
    # a shared cache makes the limit hold across processes).
    window = int(time.time() // 60)
    slot = f"evalgap:pk-rate:{pk.pk}:{window}"
    cache.add(slot, 0, timeout=120)
    try:
        n = cache.incr(slot)
    except ValueError:  # evicted between add and incr
        cache.set(slot, 1, timeout=120)
        n = 1
    if n > pk.rate_per_minute:
        raise Refused(429, f"rate: more than {pk.rate_per_minute} events a minute for this key")


def event_line(payload: dict) -> dict:
    """The event line of a browser event; Refused (400) naming the field that is wrong."""
    turn_id, kind = payload.get("turn_id"), payload.get("type")
    if not isinstance(turn_id, str) or not turn_id.strip() or len(turn_id) > MAX_ID or "\x00" in turn_id:
        raise Refused(400, f"turn_id: a turn id of 1 to {MAX_ID} characters is required")
    if kind not in BROWSER_EVENT_TYPES:
        raise Refused(400, f"type: one of {', '.join(BROWSER_EVENT_TYPES)}")
    event = {"type": kind, "timestamp": timezone.now().isoformat()}  # the server's clock, not the page's
    reason = payload.get("reason")
    if isinstance(reason, str) and reason:
        event["reason"] = reason[:MAX_REASON].replace("\x00", "")
    return {"type": "event", "turn_id": turn_id, "event": event}


def browser_event_add(*, key: str, origin: str, payload: dict) -> ingest.IngestResult:
    """Add one browser event to a turn of the key's source. Raises Refused (403 key or origin, 429
    rate, 400 a field)."""
    pk = publishable_key_for(key=key, origin=origin)
    line = event_line(payload)
    _rate_take(pk)
    return ingest.turns_ingest_body(source=pk.source, body=json.dumps(line).encode())
