"""Alarms reach ALARM_WEBHOOK_URL even when it fails for a while: retried with backoff, never lost."""
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone

from evaluation.models import Alarm
from evaluation.services.alarms import alarm_post, alarms_post_pending, alarms_record
from tests.evaluation_helpers import release

pytestmark = pytest.mark.django_db


class Webhook:
    """A local receiver answering the next status of `statuses` (the last one repeats)."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.bodies = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                status = hook.statuses[min(len(hook.bodies), len(hook.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FOUND = {"kind": "discordant_release", "release": "v3", "fingerprint": "discordant_release:v3:after:v2:v1",
         "detail": "v3: offline better than v2, production worse", "evidence": {"release": {"name": "v3"}}}


@pytest.fixture
def hook_settings():
    with override_settings(ALARM_POST_ATTEMPTS=3, ALARM_POST_BACKOFF_SECONDS=0.01, ALARM_POST_TIMEOUT_SECONDS=5):
        yield


def test_a_failing_webhook_is_retried_with_backoff_until_it_takes_the_alarm(hook_settings):
    release("v3")
    hook = Webhook([500, 503, 200])
    try:
        with override_settings(ALARM_WEBHOOK_URL=""):  # stored first; posted below
            [alarm] = alarms_record(found=[FOUND])
        assert alarm_post(alarm_id=alarm.pk, url=hook.url) is True
    finally:
        hook.close()
    alarm.refresh_from_db()
    assert len(hook.bodies) == 3 and alarm.posted_at is not None and alarm.post_attempts == 3
    assert alarm.post_error == ""
    body = hook.bodies[-1]
    assert body["kind"] == "discordant_release" and body["release"] == "v3" and body["id"] == alarm.pk
    assert body["text"].startswith("evalgap alarm (discordant_release)")
    assert alarm_post(alarm_id=alarm.pk, url=hook.url) is True and len(hook.bodies) == 3  # posted once


def test_a_webhook_down_for_longer_never_loses_the_alarm(hook_settings, django_capture_on_commit_callbacks):
    hook = Webhook([500])
    try:
        with override_settings(ALARM_WEBHOOK_URL=hook.url):
            with django_capture_on_commit_callbacks() as posts:
                [alarm] = alarms_record(found=[FOUND])
            assert len(posts) == 1  # the post is queued after the alarm is committed
            alarm_post(alarm_id=alarm.pk)  # what that task does
            alarm.refresh_from_db()
            assert alarm.posted_at is None and alarm.post_attempts == 3 and alarm.post_error == "HTTP 500"
            assert alarm.next_post_at > timezone.now()
            # not due yet: the beat task leaves it alone
            assert alarms_post_pending() == {"posted": 0, "failed": 0}
            hook.statuses = [200]
            later = alarm.next_post_at + timedelta(seconds=1)
            assert alarms_post_pending(now=later) == {"posted": 1, "failed": 0}
    finally:
        hook.close()
    alarm.refresh_from_db()
    assert alarm.posted_at is not None and alarm.post_attempts == 4 and Alarm.objects.count() == 1
    # the same finding again is not a new alarm
    assert alarms_record(found=[FOUND]) == []


def test_without_a_webhook_alarms_are_stored_and_shown_only():
    with override_settings(ALARM_WEBHOOK_URL=""):
        [alarm] = alarms_record(found=[{**FOUND, "release": None}])
        assert alarm_post(alarm_id=alarm.pk) is False
        assert alarms_post_pending()["posted"] == 0
    alarm.refresh_from_db()
    assert alarm.posted_at is None and alarm.post_attempts == 0
