"""Alarms: stored once (by fingerprint), then posted to ALARM_WEBHOOK_URL.

Posting never loses an alarm: the row is written first, in its own transaction; a post that fails
is retried with backoff a few times, then left with its error and a time for the next try, which
the beat task (`alarms_post_pending`) takes. Two workers never post one alarm at once: a post first
claims the row with a conditional UPDATE that moves `next_post_at` a lease ahead.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from releases.models import Release

from ..models import Alarm

logger = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)


def alarms_record(*, found: list[dict]) -> list[Alarm]:
    """Store the alarms a report found that were not raised before; returns the new ones and
    schedules their posting after commit."""
    if not found:
        return []
    known = set(Alarm.objects.filter(fingerprint__in=[a["fingerprint"] for a in found])
                .values_list("fingerprint", flat=True))
    releases = dict(Release.objects.filter(name__in=[a["release"] for a in found if a.get("release")])
                    .values_list("name", "id"))
    new = []
    for a in found:
        if a["fingerprint"] in known:
            continue
        try:
            with transaction.atomic():
                alarm = Alarm.objects.create(kind=a["kind"], release_id=releases.get(a.get("release")),
                                             fingerprint=a["fingerprint"], detail=a["detail"],
                                             evidence=json.loads(json.dumps(a.get("evidence") or {}, default=str)))
        except IntegrityError:
            continue  # raised meanwhile by another report run
        known.add(a["fingerprint"])
        new.append(alarm)
    if new and settings.ALARM_WEBHOOK_URL:
        from ..tasks import alarm_post

        ids = [a.pk for a in new]
        transaction.on_commit(lambda: [alarm_post.delay(pk) for pk in ids])
    return new


def alarm_payload(alarm: Alarm) -> dict:
    return {"id": alarm.pk, "kind": alarm.kind, "release": alarm.release.name if alarm.release else None,
            "detail": alarm.detail, "evidence": alarm.evidence, "raised_at": alarm.raised_at.isoformat(),
            # Slack and Mattermost incoming webhooks show "text".
            "text": f"evalgap alarm ({alarm.kind}): {alarm.detail}"}


class WebhookError(Exception):
    pass


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "evalgap-alarms"})
    try:
        with urllib.request.urlopen(request, timeout=settings.ALARM_POST_TIMEOUT_SECONDS) as response:
            if not 200 <= response.status < 300:
                raise WebhookError(f"HTTP {response.status}")
    except urllib.error.HTTPError as e:
        raise WebhookError(f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise WebhookError(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None


def _claim(alarm_id: int, now) -> bool:
    return Alarm.objects.filter(Q(next_post_at__isnull=True) | Q(next_post_at__lte=now), pk=alarm_id,
                                posted_at__isnull=True).update(next_post_at=now + LEASE) == 1


def alarm_post(*, alarm_id: int, url: str | None = None, now=None) -> bool:
    """Post one alarm, retrying with exponential backoff (ALARM_POST_ATTEMPTS tries,
    ALARM_POST_BACKOFF_SECONDS doubling). True when posted (now or before); False when not
    configured, taken by another worker, or every try failed (the row keeps the error and the time
    of the next try)."""
    url = url or settings.ALARM_WEBHOOK_URL
    if not url or not _claim(alarm_id, now or timezone.now()):
        return Alarm.objects.filter(pk=alarm_id, posted_at__isnull=False).exists()
    alarm = Alarm.objects.select_related("release").get(pk=alarm_id)
    body = json.dumps(alarm_payload(alarm), default=str).encode()
    attempts = max(1, int(settings.ALARM_POST_ATTEMPTS))
    delay = float(settings.ALARM_POST_BACKOFF_SECONDS)
    error = ""
    for attempt in range(attempts):
        try:
            _post(url, body)
        except WebhookError as e:
            error = str(e)
            Alarm.objects.filter(pk=alarm_id).update(post_attempts=alarm.post_attempts + attempt + 1,
                                                     post_error=error[:500])
            if attempt + 1 < attempts:
                time.sleep(delay * 2 ** attempt)
            continue
        Alarm.objects.filter(pk=alarm_id).update(posted_at=timezone.now(), post_error="", next_post_at=None,
                                                 post_attempts=alarm.post_attempts + attempt + 1)
        return True
    # Next round later, backing off with the total number of tries (capped at a day).
    total = alarm.post_attempts + attempts
    wait = min(timedelta(seconds=max(delay, 1.0) * 60 * 2 ** (total // attempts - 1)), timedelta(days=1))
    Alarm.objects.filter(pk=alarm_id).update(next_post_at=timezone.now() + wait)
    logger.warning("alarm %s not posted after %d tries: %s", alarm_id, total, error)
    return False


def alarms_post_pending(*, now=None) -> dict:
    """Post every alarm not yet posted whose next try is due (the beat task)."""
    if not settings.ALARM_WEBHOOK_URL:
        return {"posted": 0, "failed": 0, "skipped": "ALARM_WEBHOOK_URL is not set"}
    now = now or timezone.now()
    due = (Alarm.objects.filter(posted_at__isnull=True).filter(Q(next_post_at__isnull=True) |
                                                               Q(next_post_at__lte=now))
           .order_by("raised_at").values_list("pk", flat=True))
    posted = failed = 0
    for pk in list(due):
        if alarm_post(alarm_id=pk, now=now):
            posted += 1
        else:
            failed += 1
    return {"posted": posted, "failed": failed}
