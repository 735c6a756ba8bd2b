"""evalgap-events.js in a real browser (Playwright driving Debian's Chromium, as tests/test_browser.py):
a page the test serves on its own origin includes the script from evalgap's live server; copying an
answer's text, a thumbs click and leaving the page reach that answer's turn; the same page served from
an origin the key does not list is refused; the key cannot read."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import OperationalError
from playwright.sync_api import sync_playwright
from test_browser import CHROMIUM_ARGS, chromium_path

from production.models import Event
from production.services import ingest
from production.services.browser_events import publishable_key_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PAGE = """<!doctype html><html><head><title>support chat</title></head><body>
<div data-evalgap-turn="t-1"><p id="answer-1">Open Settings, then Security.</p></div>
<div data-evalgap-turn="t-2"><p id="answer-2">The link arrives within a minute.</p>
  <button id="up-2" data-evalgap-thumbs="up">thumbs up</button></div>
<script src="{evalgap}/evalgap-events.js" data-key="{key}"></script>
</body></html>"""


class Page:
    """Serves one HTML page on 127.0.0.1:<port>: an origin other than the live server's (localhost)."""

    def __init__(self):
        self.html = ""  # set once the key naming this origin exists
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                payload = served.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def events(**kw):
    return sorted(Event.objects.filter(**kw).values_list("turn__external_id", "type"))


def wait_for_event(deadline_s: float, **kw):
    # The beacon sent on leaving a page has no response the page can wait for: poll the database.
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if Event.objects.filter(**kw).exists():
                return
        except OperationalError:  # SQLite's shared in-memory test database: the server thread is writing
            pass
        time.sleep(0.1)


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API keeps a loop on this thread
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_copy_thumbs_and_leaving_reach_the_turn_and_a_wrong_origin_is_refused(live_server, browser):
    # given two turns of "web-app", and the app's page on an origin its key lists
    source = ingest.source_get_or_create(name="web-app")
    ingest.turns_ingest_body(source=source, body=b"".join(json.dumps(
        {"id": f"t-{i}", "session_id": "s-1", "timestamp": f"2026-12-01T09:0{i}:00Z", "query": f"q{i}",
         "response": f"a{i}"}).encode() + b"\n" for i in (1, 2)))
    allowed, other = Page(), Page()
    key = publishable_key_create(source_name="web-app", origins=[allowed.url])
    allowed.html = other.html = PAGE.format(evalgap=live_server.url, key=key.key)
    try:
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.set_default_timeout(60_000)  # a shared, loaded machine: generous, never a timed assertion
        page.goto(allowed.url + "/", wait_until="domcontentloaded")
        page.wait_for_function("window.evalgap !== undefined")

        # when the user selects answer 1 and copies it
        with page.expect_response(lambda r: "/api/browser-events/" in r.url) as copied:
            page.locator("#answer-1").click(click_count=3)
            page.keyboard.press("Control+C")
        # then a copy event reaches turn t-1
        assert copied.value.status == 202
        assert events() == [("t-1", "copy")]

        # when the user gives answer 2 a thumbs up
        with page.expect_response(lambda r: "/api/browser-events/" in r.url) as voted:
            page.click("#up-2")
        assert voted.value.status == 202
        assert events(type="thumbs_up") == [("t-2", "thumbs_up")]

        # the key cannot read: evalgap's API refuses it even from the allowed origin
        status = page.evaluate("""async ([base, key]) => {
            try { const r = await fetch(base + "/api/events/", {headers: {Authorization: "Token " + key}});
                  return r.status; } catch (e) { return "blocked"; } }""", [live_server.url, key.key])
        assert status in (401, 403, "blocked")

        # when the user leaves the page, the last answer shown gets navigate_away
        page.goto("about:blank")
        wait_for_event(60, type="navigate_away")
        assert events(type="navigate_away") == [("t-2", "navigate_away")]

        # when the same page is served from an origin the key does not list
        stranger = context.new_page()
        stranger.set_default_timeout(60_000)
        stranger.goto(other.url + "/", wait_until="domcontentloaded")
        stranger.wait_for_function("window.evalgap !== undefined")
        with stranger.expect_request(lambda r: "/api/browser-events/" in r.url) as sent:
            outcome = stranger.evaluate("""() => window.evalgap.copy("t-1")
                .then(r => r.status).catch(() => "blocked by CORS")""")
        # then evalgap refuses it (403 without CORS headers: the page cannot even read the refusal)
        assert sent.value.method == "POST" and outcome == "blocked by CORS"
        assert events(type="copy") == [("t-1", "copy")]
        context.close()
    finally:
        allowed.close()
        other.close()
