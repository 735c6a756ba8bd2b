"""Browser events (issue #20 item 3) at the HTTP boundary: a publishable key adds copy, thumbs and
navigate_away events to turns of its own source, only from its origins, at a bounded rate; it reads
nothing. The real-browser test is tests/test_browser_events_chromium.py."""
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command

from production.models import Event, PublishableKey
from production.services import ingest
from production.services.browser_events import publishable_key_create

pytestmark = pytest.mark.django_db
APP = "https://app.example.com"


@pytest.fixture
def key():
    cache.clear()
    source = ingest.source_get_or_create(name="web-app")
    ingest.turns_ingest_body(source=source, body=json.dumps(
        {"id": "t-1", "session_id": "s-1", "timestamp": "2026-12-01T09:00:00Z", "query": "q", "response": "a"}).encode())
    return publishable_key_create(source_name="web-app", origins=[APP + "/"], rate_per_minute=3)


def post(client, body, origin=APP):
    return client.post("/api/browser-events/", data=json.dumps(body), content_type="text/plain",
                       HTTP_ORIGIN=origin)


def test_an_allowed_origin_adds_a_copy_event_to_the_turn(client, key):
    r = post(client, {"key": key.key, "turn_id": "t-1", "type": "copy"})
    assert r.status_code == 202 and r.json() == {"stored": 1, "duplicate": False}
    assert r["Access-Control-Allow-Origin"] == APP
    event = Event.objects.select_related("turn", "source").get()
    assert (event.type, event.turn.external_id, event.source.name) == ("copy", "t-1", "web-app")


def test_a_wrong_origin_a_revoked_or_unknown_key_adds_nothing(client, key):
    r = post(client, {"key": key.key, "turn_id": "t-1", "type": "copy"}, origin="https://evil.example")
    assert r.status_code == 403 and "origin" in r.json()["error"]
    assert "Access-Control-Allow-Origin" not in r
    assert post(client, {"key": "pk_nope", "turn_id": "t-1", "type": "copy"}).status_code == 403
    PublishableKey.objects.filter(pk=key.pk).update(revoked_at="2026-12-01T00:00:00Z")
    assert post(client, {"key": key.key, "turn_id": "t-1", "type": "copy"}).status_code == 403
    assert Event.objects.count() == 0


def test_only_browser_event_types_with_a_turn_id(client, key):
    r = post(client, {"key": key.key, "turn_id": "t-1", "type": "human_override", "corrected_response": "x"})
    assert r.status_code == 400 and r.json()["error"].startswith("type: one of copy, thumbs_up")
    assert post(client, {"key": key.key, "type": "copy"}).json()["error"].startswith("turn_id:")
    assert Event.objects.count() == 0


def test_the_rate_is_limited_per_key(client, key):
    codes = [post(client, {"key": key.key, "turn_id": "t-1", "type": "thumbs_up"}).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    assert Event.objects.filter(type="thumbs_up").count() == 3


def test_the_key_cannot_read(client, key):
    assert client.get("/api/browser-events/").status_code == 405
    for path in ("/api/events/", "/api/turns/", "/api/sessions/"):
        assert client.get(path, HTTP_AUTHORIZATION=f"Token {key.key}").status_code in (401, 403)
        assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {key.key}").status_code in (401, 403)


def test_the_script_is_served_to_any_page(client):
    r = client.get("/evalgap-events.js")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/javascript")
    assert b"/api/browser-events/" in r.content and r["Access-Control-Allow-Origin"] == "*"


def test_key_create_command_normalizes_origins_and_refuses_bad_ones(capsys):
    call_command("publishable_key_create", "--source", "web-app", "--origin", "https://App.example.com:443/",
                 "--origin", "http://localhost:3000", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["origins"] == ["http://localhost:3000", "https://app.example.com"] and out["key"].startswith("pk_")
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="not an origin"):
        call_command("publishable_key_create", "--source", "web-app", "--origin", "app.example.com/path")
