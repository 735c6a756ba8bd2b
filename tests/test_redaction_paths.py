"""The redactor on every path a viewer reads: planted PII of every typed shape (Unicode spaces,
dashes, fullwidth forms, zero-width characters, " @ ", numbers and dict keys in metadata) never
reaches a viewer; filters take what the caller sees (pseudonyms), never raw identities; one
response redacts a bounded number of characters; the redaction memo is bounded by bytes."""
import json

import pytest
from rest_framework.test import APIClient

from conftest import user_with_role
from core import pii
from production.models import Event, Session, Source, Turn

NBSP, NNBSP, THIN, EN, ZWSP = "\u00a0", "\u202f", "\u2009", "\u2013", "\u200b"
CARD = "4111111111111111"
PLANTED = {  # the shape -> the raw text planted; none of it may reach a viewer
    "card, no-break spaces": f"4111{NBSP}1111{NBSP}1111{NBSP}1111",
    "card, narrow no-break": f"4111{NNBSP}1111{NNBSP}1111{NNBSP}1111",
    "card, thin spaces": f"4111{THIN}1111{THIN}1111{THIN}1111",
    "card, en dashes": f"4111{EN}1111{EN}1111{EN}1111",
    "card, fullwidth digits": "４１１１ １１１１ １１１１ １１１１",
    "card, zero-width": f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111",
    "phone, no-break": f"+44{NBSP}20{NBSP}7946{NBSP}0958",
    "phone, en dashes": f"415{EN}555{EN}2671",
    "e-mail, fullwidth at": "jane.doe＠example.com",
    "e-mail, zero-width": f"jane.doe{ZWSP}@example.com",
    "e-mail, spaced at": "jane.doe @ example.com",
}
# What must not survive of each, whatever the separators: the digits and the local part.
TELL = ("1111", "7946", "0958", "555", "jane")


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def people(db):
    return {role: _client(user_with_role(f"p-{role}", role)) for role in ("viewer", "admin", "taxonomy_admin")}


@pytest.fixture
def turn(db):
    source = Source.objects.create(name="bot")
    session = Session.objects.create(source=source, external_id="jane.doe@example.com")
    text = " / ".join(f"{k}: {v}" for k, v in PLANTED.items())
    turn = Turn.objects.create(
        source=source, session=session, external_id="t-1", query=f"help {text}", response=f"ok {text}",
        user_id="jane@example.com", contexts=[text],
        metadata={"jane.doe@example.com": "a key that is an address", "card": int(CARD), "phone": 4155552671,
                  "nested": {f"4111{NBSP}1111{NBSP}1111{NBSP}1111": [int(CARD), "jane.doe＠example.com"]},
                  "count": 3})
    Event.objects.create(source=source, turn_external_id="jane.doe@example.com-2", type="human_override",
                         corrected_response=text, fingerprint="f1")
    Event.objects.create(source=source, turn_external_id="t-1", turn=turn, type="human_override",
                         corrected_response="fine", fingerprint="f2")
    return turn


@pytest.mark.parametrize("url", ["/api/turns/", "/api/failures/", "/api/sessions/", "/api/events/"])
def test_a_viewer_sees_no_planted_shape_on_any_list(people, turn, url):
    from production.models import TurnSignals

    TurnSignals.objects.create(turn=turn, thumbs_down=True, failure_candidate=True)
    body = json.dumps(people["viewer"].get(url).json(), ensure_ascii=False)
    raw = json.dumps(people["admin"].get(url).json(), ensure_ascii=False)
    assert "jane" in raw  # the admin's view is raw: the planted text is really there
    leaked = [t for t in TELL if t in body]
    assert not leaked, (url, leaked, body[:2000])


def test_a_viewer_sees_metadata_keys_and_numbers_redacted(people, turn):
    seen = people["viewer"].get(f"/api/turns/{turn.pk}/").json()
    assert seen["metadata"] == {"[EMAIL]": "a key that is an address", "card": "[CARD]", "phone": "[PHONE]",
                                "nested": {"[CARD]": ["[CARD]", "[EMAIL]"]}, "count": 3}
    assert people["admin"].get(f"/api/turns/{turn.pk}/").json()["metadata"]["card"] == int(CARD)


def test_a_viewer_filters_sessions_by_pseudonym_and_never_by_raw_id(people, turn):
    viewer, admin = people["viewer"], people["admin"]
    assert viewer.get("/api/turns/", {"session": "jane.doe@example.com"}).json()["count"] == 0
    shown = viewer.get("/api/turns/").json()["results"][0]["session_id"]
    assert shown.startswith("session-") and "jane" not in shown
    assert [r["id"] for r in viewer.get("/api/turns/", {"session": shown}).json()["results"]] == [turn.pk]
    assert viewer.get("/api/failures/", {"session": "jane.doe@example.com"}).json()["count"] == 0
    assert viewer.get("/api/sessions/").json()["results"][0]["session_id"] == shown  # one pseudonym everywhere
    # The raw role filters by what it sees: the raw id.
    assert admin.get("/api/turns/", {"session": "jane.doe@example.com"}).json()["count"] == 1
    assert admin.get("/api/turns/", {"session": shown}).json()["count"] == 0


def test_a_viewer_cannot_test_a_raw_turn_id_holding_pii(people, turn):
    viewer, admin = people["viewer"], people["admin"]
    assert viewer.get("/api/events/", {"turn_id": "jane.doe@example.com-2"}).json()["count"] == 0
    assert viewer.get("/api/events/", {"turn_id": "t-1"}).json()["count"] == 1  # an id the viewer sees as is
    assert admin.get("/api/events/", {"turn_id": "jane.doe@example.com-2"}).json()["count"] == 1


def test_one_response_redacts_a_bounded_number_of_characters(people, db, settings):
    settings.API_REDACT_MAX_CHARS = 41_000
    settings.API_REDACT_FIELD_FLOOR = 500
    source = Source.objects.create(name="big")
    session = Session.objects.create(source=source, external_id="s")
    filler = "word " * 4_000  # 20 000 characters
    for i in range(5):
        Turn.objects.create(source=source, session=session, external_id=f"t{i}", query=filler + "jane.doe@example.com",
                            response=filler)
    rows = people["viewer"].get("/api/turns/").json()["results"]
    shown = [len(r["query"]) + len(r["response"]) for r in rows]
    # The first row is redacted in full (40 020 characters); then the budget is spent and every
    # later field shows its first 980 (what was left), then 500 characters and says how many it left out.
    assert rows[0]["query"].endswith("[EMAIL]") and len(rows[0]["response"]) == 20_000
    assert all(s < 2_200 for s in shown[1:]) and "more characters not shown]" in rows[4]["query"]
    assert not any("jane" in r["query"] for r in rows)
    # The raw role is not redacted, so nothing is cut.
    assert all(r["query"].endswith("example.com") for r in people["admin"].get("/api/turns/").json()["results"])


def test_the_redaction_memo_is_bounded_by_bytes():
    cache = pii._ByteBoundedCache(200_000)
    for i in range(2_000):
        text = f"{i} " + "x" * 1_000
        cache.put(text, text)
    assert cache.bytes <= 200_000 and 0 < len(cache) < 2_000
    assert cache.get("1999 " + "x" * 1_000) is not None and cache.get("0 " + "x" * 1_000) is None
    # The process-wide memo holds no more than its bound either.
    for i in range(500):
        pii.redact(f"mail jane{i}@example.com " + "y" * 3_000)
    assert pii._cache.bytes <= pii.CACHE_MAX_BYTES and pii.redact("mail jane1@example.com") == "mail [EMAIL]"


def test_a_viewer_reads_no_release_system_prompt_base_url_or_key_name(people, db):
    from releases.models import Release

    Release.objects.create(name="r1", model="m", base_url="https://internal.example/v1", api_key_env="R1_KEY",
                           system_prompt="You are Acme's agent. Escalate to ops@acme.example.")
    for role in ("viewer", "taxonomy_admin"):
        for body in (people[role].get("/api/releases/").json()["results"][0], people[role].get("/api/releases/r1/").json()):
            assert body["name"] == "r1" and body["model"] == "m"
            assert not {"system_prompt", "base_url", "api_key_env"} & set(body), (role, body)
    full = people["admin"].get("/api/releases/r1/").json()
    assert full["system_prompt"].startswith("You are Acme") and full["base_url"] == "https://internal.example/v1"


def test_raw_taxonomy_proposals_are_shown_only_to_those_who_govern_the_taxonomy(people, db):
    from django.test import Client

    from taxonomy.services import proposal_submit

    proposal_submit(text=f"answers leak jane.doe＠example.com and 4111{NBSP}1111{NBSP}1111{NBSP}1111",
                    ref="annotation:1")
    annotator = _client(user_with_role("p-annotator", "annotator"))
    for who in (people["viewer"], annotator):
        (p,) = who.get("/api/taxonomy/").json()["pending_proposals"]
        assert "jane" not in json.dumps(p, ensure_ascii=False) and "1111" not in json.dumps(p, ensure_ascii=False)
        assert p["text"] == "answers leak [EMAIL] and [CARD]" and "refs" not in p
    (raw,) = people["taxonomy_admin"].get("/api/taxonomy/").json()["pending_proposals"]
    assert "jane.doe＠example.com" in raw["text"] and raw["refs"] == ["annotation:1"]
    page = Client()
    page.force_login(user_with_role("p-viewer-page", "viewer"))
    html = page.get("/taxonomy/").content.decode()
    assert "jane" not in html and "answers leak [EMAIL] and [CARD]" in html
