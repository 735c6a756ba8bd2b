"""Poison input never stops the rest: each bad line is rejected as its line, with a reason naming the
field, and the lines around it are stored. Run on SQLite (ORM writer) and PostgreSQL (COPY writer)."""
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

from production.models import Event, IngestJob, RejectedLine, Turn

GOOD = {"id": "t", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"}


def line(**overrides) -> bytes:
    return json.dumps({**GOOD, **overrides}).encode() + b"\n"


def nested(depth: int):
    value = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def ingest(path, source="poison"):
    out = io.StringIO()
    call_command("ingest", str(path), "--source", source, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


POISON = [
    # JSON's \u0000 escape decodes to a NUL character, which PostgreSQL text and jsonb cannot hold
    (line(id="nul-query", query="a\u0000b"), "query: contains a NUL character (\\u0000), which cannot be stored"),
    (line(id="nul-resp", response="\u0000"), "response: contains a NUL character (\\u0000), which cannot be stored"),
    (line(id="nul\u0000id"), "id: contains a NUL character (\\u0000), which cannot be stored"),
    (line(id="nul-model", model="m\u0000"), "model: contains a NUL character (\\u0000), which cannot be stored"),
    (line(id="nul-ctx", contexts=["ok", "x\u0000"]), "contexts[1]: contains a NUL character (\\u0000)"),
    (line(id="nul-meta", metadata={"a": {"b": ["ok", "\u0000"]}}), "metadata.a.b[1]: contains a NUL character"),
    (line(id="nul-key", metadata={"k\u0000": 1}), "metadata (a key): contains a NUL character"),
    (line(id="nul-extra", extra_field="\u0000"), "extra_field: contains a NUL character"),
    (line(id="nul-event", events=[{"type": "copy", "actor": "\u0000"}]), "events[0].actor: contains a NUL character"),
    (line(id="nul-payload", events=[{"type": "copy", "extra": ["\u0000"]}]), "events[0].extra[0]: contains a NUL"),
    (json.dumps({"type": "event", "turn_id": "x\u0000", "event": {"type": "copy"}}).encode() + b"\n",
     "turn_id: contains a NUL character"),
    # a raw NUL byte is not JSON at all
    (b'{"id": "raw-nul", "query": "a\x00b"}\n', "line: invalid JSON"),
    # over the column sizes
    (line(id="x" * 256), "id: longer than 255 characters (256)"),
    (line(id="long-session", session_id="s" * 300), "session_id: longer than 255 characters (300)"),
    (line(id="long-user", user_id="u" * 256), "user_id: longer than 255 characters (256)"),
    (line(id="long-model", model="m" * 256), "model: longer than 255 characters (256)"),
    (line(id="long-type", events=[{"type": "t" * 101}]), "events[0].type: longer than 100 characters (101)"),
    (line(id="long-actor", events=[{"type": "copy", "actor": "a" * 256}]),
     "events[0].actor: longer than 255 characters (256)"),
    (json.dumps({"type": "event", "turn_id": "x" * 256, "event": {"type": "copy"}}).encode() + b"\n",
     "turn_id: longer than 255 characters (256)"),
    (json.dumps({"type": "event", "turn_id": "t-ok", "event": {"type": "e" * 101}}).encode() + b"\n",
     "event.type: longer than 100 characters (101)"),
    # nesting: deeper than stored JSON may be (64), and deeper than orjson reads at all (1024)
    (line(id="deep-meta", metadata=nested(65)), "metadata: nested deeper than 64 levels"),
    (line(id="deeper-meta", metadata=nested(300)), "metadata: nested deeper than 64 levels"),
    (line(id="deep-payload", events=[{"type": "copy", "p": nested(300)}]), "events[0]: nested deeper than 64 levels"),
    (b'{"id": "deep-line", "metadata": ' + b"[" * 1100 + b"]" * 1100 + b"}\n", "line: invalid JSON (depth limit"),
    # a timestamp that cannot be converted to UTC, which both databases store
    (line(id="ts-range", timestamp="0001-01-01T00:30:00+01:00"), "timestamp: out of range in UTC"),
]


@pytest.mark.django_db
def test_each_poison_line_is_rejected_with_its_reason_and_its_neighbours_are_stored(tmp_path):
    # given: a good line before and after every poison line
    body, expected = line(id="good-0"), {}
    for i, (poison, reason) in enumerate(POISON):
        body += poison
        expected[2 + 2 * i] = reason
        body += line(id=f"good-{i + 1}")
    path = tmp_path / "poison.jsonl"
    path.write_bytes(body)

    # when
    summary = ingest(path)

    # then: every good line stored, every poison line rejected with its reason, the job done
    assert summary == {"read": 1 + 2 * len(POISON), "created": 1 + len(POISON), "duplicates": 0,
                       "rejected": len(POISON), "events": 0, "shadow": 0}
    assert set(Turn.objects.values_list("external_id", flat=True)) == {f"good-{i}" for i in range(len(POISON) + 1)}
    reasons = dict(RejectedLine.objects.values_list("line_no", "reason"))
    assert sorted(reasons) == sorted(expected)
    for line_no, reason in expected.items():
        assert reasons[line_no].startswith(reason), (line_no, reasons[line_no])
    job = IngestJob.objects.get()
    assert (job.status, job.error) == ("done", "")
    # a raw NUL byte is kept for inspection as the text \x00, which the database can hold
    raw = RejectedLine.objects.get(line_no=expected_line(b"raw-nul")).raw
    assert "\\x00" in raw and "\x00" not in raw


def expected_line(marker: bytes) -> int:
    return next(2 + 2 * i for i, (poison, _) in enumerate(POISON) if marker in poison)


@pytest.mark.django_db
def test_a_50_mb_field_is_rejected_as_its_line_without_holding_it(tmp_path):
    path = tmp_path / "big.jsonl"
    head = b'{"id": "big", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "'
    with open(path, "wb") as f:
        f.write(line(id="before"))
        f.write(head)
        f.write(b"x" * (50 * 1024 * 1024))
        f.write(b'"}\n')
        f.write(line(id="after"))
    big_line = len(head) + 50 * 1024 * 1024 + 3

    summary = ingest(path)

    assert summary == {"read": 3, "created": 2, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    reject = RejectedLine.objects.get()
    assert reject.line_no == 2
    assert reject.reason == f"line: longer than INGEST_MAX_LINE_BYTES ({big_line} bytes, the limit is 16777216)"
    assert len(reject.raw) == 2000
    assert set(Turn.objects.values_list("external_id", flat=True)) == {"before", "after"}


@pytest.mark.django_db
def test_a_field_over_the_field_limit_is_rejected_naming_the_field(tmp_path, settings):
    settings.INGEST_MAX_FIELD_CHARS = 1000
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="a") + line(id="long", response="y" * 1001) + line(id="ctx", contexts=["z" * 1001])
                     + line(id="meta", metadata={"k": "v" * 1000}) + line(id="b"))

    summary = ingest(path)

    assert (summary["created"], summary["rejected"]) == (2, 3)
    assert dict(RejectedLine.objects.values_list("line_no", "reason")) == {
        2: "response: longer than INGEST_MAX_FIELD_CHARS (1001 characters, the limit is 1000)",
        3: "contexts[0]: longer than INGEST_MAX_FIELD_CHARS (1001 characters, the limit is 1000)",
        4: "metadata: longer than INGEST_MAX_FIELD_CHARS (1008 characters of JSON, the limit is 1000)",
    }


@pytest.mark.django_db
def test_poison_in_an_api_json_array_and_in_csv_is_rejected_too(api, tmp_path):
    body = json.dumps([GOOD, {**GOOD, "id": "n", "query": "\u0000"}, {**GOOD, "id": "x" * 300},
                       nested(300), {**GOOD, "id": "last"}]).encode()
    resp = api.post("/api/ingest/?source=api-poison", data=body, content_type="application/json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["created"] == 2 and resp.json()["rejected"] == 3
    reasons = dict(RejectedLine.objects.values_list("line_no", "reason"))
    assert reasons[2].startswith("query: contains a NUL character")
    assert reasons[3] == "id: longer than 255 characters (300)"
    assert reasons[4] == "id: missing required field"  # and its raw text is not written out: too deep

    csv_path = tmp_path / "log.csv"
    csv_path.write_bytes(b"id,session_id,timestamp,query,response\n"
                         b"c1,s,2026-10-01T09:00:00Z,q,r\nc2,s,2026-10-01T09:00:00Z,a\x00b,r\n"
                         b"c3,s,2026-10-01T09:00:00Z,q,r\n")
    assert ingest(csv_path, source="csv-poison")["created"] == 2
    assert RejectedLine.objects.get(source__name="csv-poison").reason.startswith("query: contains a NUL character")


@pytest.mark.django_db
def test_a_source_name_the_database_cannot_hold_is_refused(api):
    resp = api.post("/api/ingest/?source=" + "s" * 201, data=line(), content_type="application/x-ndjson")
    assert resp.status_code == 400 and "source" in resp.json()
    assert Turn.objects.count() == 0


@pytest.mark.django_db
def test_a_timestamp_offset_postgres_does_not_take_is_stored_as_its_instant(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="far-east", timestamp="2026-10-01T09:00:00+20:00"))
    assert ingest(path)["created"] == 1
    assert Turn.objects.get().timestamp.isoformat() == "2026-09-30T13:00:00+00:00"


@pytest.fixture
def refusing_database(db):
    """A trigger that refuses turns and events whose text says so: a row the contract accepts and the
    database does not, as a constraint added later or a limit of another database would."""
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            c.execute("""CREATE FUNCTION evalgap_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'check_violation'; END $$""")
            c.execute("CREATE TRIGGER refuse_turn BEFORE INSERT ON production_turn FOR EACH ROW "
                      "WHEN (NEW.query = 'refuse me') EXECUTE FUNCTION evalgap_test_refuse()")
            c.execute("CREATE TRIGGER refuse_event BEFORE INSERT ON production_event FOR EACH ROW "
                      "WHEN (NEW.reason = 'refuse me') EXECUTE FUNCTION evalgap_test_refuse()")
            c.execute("CREATE TRIGGER refuse_shadow BEFORE INSERT ON production_mirroredanswer FOR EACH ROW "
                      "WHEN (NEW.response = 'refuse me') EXECUTE FUNCTION evalgap_test_refuse()")
        else:
            c.execute("CREATE TRIGGER refuse_turn BEFORE INSERT ON production_turn WHEN NEW.query = 'refuse me' "
                      "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
            c.execute("CREATE TRIGGER refuse_event BEFORE INSERT ON production_event WHEN NEW.reason = 'refuse me' "
                      "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
            c.execute("CREATE TRIGGER refuse_shadow BEFORE INSERT ON production_mirroredanswer "
                      "WHEN NEW.response = 'refuse me' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
    yield
    with connection.cursor() as c:
        c.execute("DROP TRIGGER IF EXISTS refuse_turn" + (" ON production_turn" if connection.vendor == "postgresql"
                                                           else ""))
        c.execute("DROP TRIGGER IF EXISTS refuse_event" + (" ON production_event" if connection.vendor == "postgresql"
                                                             else ""))
        c.execute("DROP TRIGGER IF EXISTS refuse_shadow" + (" ON production_mirroredanswer"
                                                              if connection.vendor == "postgresql" else ""))
        if connection.vendor == "postgresql":
            c.execute("DROP FUNCTION IF EXISTS evalgap_test_refuse()")


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1000, 3])
def test_rows_the_database_refuses_are_found_and_rejected_and_the_rest_stored(refusing_database, tmp_path,
                                                                              settings, batch_size):
    # given: a log in which the database (not the contract) refuses two turns, one event, one shadow line
    settings.INGEST_BATCH_SIZE = batch_size
    recs = [line(id=f"t-{i}", session_id=f"s-{i // 3}", timestamp=f"2026-10-01T09:{i:02d}:00Z") for i in range(10)]
    recs[4] = line(id="t-4", session_id="s-1", query="refuse me")
    recs[7] = line(id="t-7", session_id="s-2", query="refuse me", events=[{"type": "copy"}])
    recs[8] = line(id="t-8", session_id="s-2", events=[{"type": "thumbs_down", "reason": "refuse me"}])
    recs.append(json.dumps({"type": "shadow", "turn_id": "t-1", "release": "c", "response": "refuse me"}).encode() + b"\n")
    recs.append(json.dumps({"type": "shadow", "turn_id": "t-2", "release": "c", "response": "fine"}).encode() + b"\n")
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(recs))

    # when
    summary = ingest(path)

    # then: the job finished, every other turn is stored, the refused lines are rejected with the reason
    assert summary == {"read": 12, "created": 8, "duplicates": 0, "rejected": 4, "events": 1, "shadow": 1}
    assert IngestJob.objects.get().status == "done"
    assert sorted(Turn.objects.values_list("external_id", flat=True)) == sorted(
        f"t-{i}" for i in range(10) if i not in (4, 7))
    reasons = dict(RejectedLine.objects.values_list("line_no", "reason"))
    assert sorted(reasons) == [5, 8, 9, 11]
    assert reasons[5].startswith("record: the database refused it (") and "refused by a test trigger" in reasons[5]
    assert reasons[9].startswith("event: the database refused it (")
    assert reasons[11].startswith("shadow: the database refused it (")
    # the refused turn's event is kept, unattached, as an event whose turn has not arrived
    assert Event.objects.get(type="copy").turn is None
