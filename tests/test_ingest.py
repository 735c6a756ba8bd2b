import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from production.models import Event, IngestJob, RejectedLine, Session, Source, Turn

REPO = Path(__file__).resolve().parent.parent
GOOD = {"id": "t-1", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "how do i reset my pasword",
        "response": "Go to Settings > Security.", "model": "bot-1"}


def line(**overrides) -> bytes:
    rec = {**GOOD, **overrides}
    return json.dumps({k: v for k, v in rec.items() if v is not ...}).encode() + b"\n"


def ingest(path, *args, source="src"):
    out = io.StringIO()
    call_command("ingest", str(path), "--source", source, "--json", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


BAD_LINES = [
    (b"{not json\n", "invalid JSON"),
    (b"[1, 2]\n", "record: expected a JSON object, got list"),
    (line(id="bad-missing", query=...), "query: missing required field"),
    (line(id="bad-type", query=42), "query: expected a string, got int"),
    (line(id="bad-zone", timestamp="2026-10-01T09:00:00"), "timestamp: timestamp has no zone offset"),
    (line(id="bad-ts", timestamp="yesterday"), "timestamp: not an RFC 3339 timestamp"),
    (line(id="bad-latency", latency_ms="fast"), "latency_ms: expected a number, got str"),
    (line(id="bad-ctx", contexts="one passage"), "contexts: expected an array of strings"),
    (line(id="bad-event", events=[{"type": "human_override"}]), "events[0].corrected_response: missing required field"),
    (line(id="bad-resp", response=...), "response: missing required field"),
    (b'{"type": "event", "event": {"type": "copy"}}\n', "turn_id: missing required field"),
    (b'{"type": "chat", "id": "x"}\n', "type: expected 'turn', 'event' or 'shadow', got 'chat'"),
    (b'{"id": "bad-utf8", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "caf\xe9", '
     b'"response": ""}\n', "line: not valid UTF-8 (byte 0xe9"),
]


@pytest.mark.django_db
def test_each_bad_line_is_rejected_with_its_line_number_and_the_good_lines_around_it_are_kept(tmp_path):
    # given: good line, then each bad line followed by a good line
    body = line(id="good-0")
    expected = {}
    for i, (bad, reason) in enumerate(BAD_LINES):
        body += bad
        expected[2 + 2 * i] = reason
        body += line(id=f"good-{i + 1}", timestamp=f"2026-10-01T09:{i + 1:02d}:00Z")
    path = tmp_path / "log.jsonl"
    path.write_bytes(body)

    # when
    summary = ingest(path)

    # then
    assert summary == {"read": 1 + 2 * len(BAD_LINES), "created": 1 + len(BAD_LINES), "duplicates": 0,
                       "rejected": len(BAD_LINES), "events": 0, "shadow": 0}
    assert set(Turn.objects.values_list("external_id", flat=True)) == {f"good-{i}" for i in range(len(BAD_LINES) + 1)}
    rejects = {r.line_no: r for r in RejectedLine.objects.all()}
    assert sorted(rejects) == sorted(expected)
    for line_no, reason in expected.items():
        assert reason in rejects[line_no].reason, (line_no, rejects[line_no].reason)
        assert rejects[line_no].origin == str(path)
    assert "\\xe9" in rejects[expected_line_of("bad-utf8")].raw


def expected_line_of(turn_id: str) -> int:
    for i, (bad, _) in enumerate(BAD_LINES):
        if turn_id.encode() in bad:
            return 2 + 2 * i
    raise KeyError(turn_id)


@pytest.mark.django_db
def test_ingesting_the_same_file_twice_creates_nothing_new(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="a", events=[{"type": "copy"}]) + line(id="b") + line(id="a") + b"oops\n")

    first = ingest(path)
    second = ingest(path)

    assert first == {"read": 4, "created": 2, "duplicates": 1, "rejected": 1, "events": 1, "shadow": 0}
    assert second == {"read": 4, "created": 0, "duplicates": 3, "rejected": 1, "events": 0, "shadow": 0}
    assert Turn.objects.count() == 2
    assert Event.objects.count() == 1
    assert RejectedLine.objects.count() == 1
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_the_same_turn_id_in_two_sources_is_two_turns(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="a"))
    ingest(path, source="bot-a")
    ingest(path, source="bot-b")
    assert sorted(Turn.objects.values_list("source__name", "external_id")) == [("bot-a", "a"), ("bot-b", "a")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_turn_whose_session_is_another_sources_or_missing(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="a"))
    ingest(path, source="bot-a")
    ingest(path, source="bot-b")
    other = Session.objects.get(source__name="bot-b")
    source_a = Source.objects.get(name="bot-a")
    for session_id in (other.pk, other.pk + 1000):  # another source's session; no session at all
        with pytest.raises(IntegrityError, match="production_turn_session_of_source_fk"):
            with transaction.atomic():  # the key is checked at commit (deferred, as Django's keys are)
                Turn.objects.create(source=source_a, session_id=session_id, external_id="x", query="q")
    assert Turn.objects.filter(external_id="x").count() == 0
    # Deleting a source still takes its sessions and turns with it (Django's cascade).
    source_a.delete()
    assert sorted(Turn.objects.values_list("source__name", flat=True)) == ["bot-b"]


@pytest.mark.django_db
def test_event_lines_attach_to_their_turn_before_and_after_it(tmp_path):
    override = {"type": "event", "turn_id": "late",
                "event": {"type": "human_override", "corrected_response": "Use 'Forgot password'.", "actor": "a-7"}}
    early = {"type": "event", "turn_id": "early", "event": {"type": "thumbs_down"}}
    path = tmp_path / "log.jsonl"
    path.write_bytes(json.dumps(early).encode() + b"\n" + line(id="early") + line(id="late"))
    later = tmp_path / "later.jsonl"
    later.write_bytes(json.dumps(override).encode() + b"\n")
    orphan = tmp_path / "orphan.jsonl"
    orphan.write_bytes(json.dumps({**early, "turn_id": "not-yet"}).encode() + b"\n")

    assert ingest(path)["events"] == 1
    assert ingest(later)["events"] == 1
    assert ingest(orphan)["events"] == 1

    assert Event.objects.get(type="thumbs_down", turn_external_id="early").turn.external_id == "early"
    ev = Event.objects.get(type="human_override")
    assert ev.turn.external_id == "late"
    assert (ev.corrected_response, ev.actor) == ("Use 'Forgot password'.", "a-7")
    assert Event.objects.get(turn_external_id="not-yet").turn is None

    # the turn arrives after its event, in a later file
    late_turn = tmp_path / "late-turn.jsonl"
    late_turn.write_bytes(line(id="not-yet"))
    ingest(late_turn)
    assert Event.objects.get(turn_external_id="not-yet").turn.external_id == "not-yet"


@pytest.mark.django_db
def test_csv_with_nested_json_columns_and_a_bad_row(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "id,session_id,timestamp,query,response,contexts,events,latency_ms,metadata\n"
        '1,s,2026-10-01T09:00:00Z,"hello, bot","hi ""there""","[""p1"", ""p2""]","[{""type"": ""copy""}]",120,\n'
        '2,s,2026-10-01T09:01:00+02:00,"multi\nline query",,,,,"{""channel"": ""web""}"\n'
        "3,s,2026-10-01 09:02,no zone,x,,,,\n"
        '4,s,2026-10-01T09:03:00Z,fine,ok,,,abc,\n'
        '5,s,2026-10-01T09:04:00Z,fine again,ok,,,,\n',
        encoding="utf-8",
    )
    summary = ingest(path)
    assert summary == {"read": 5, "created": 3, "duplicates": 0, "rejected": 2, "events": 1, "shadow": 0}
    t1 = Turn.objects.get(external_id="1")
    assert (t1.query, t1.response, t1.contexts, t1.latency_ms) == ("hello, bot", 'hi "there"', ["p1", "p2"], 120.0)
    t2 = Turn.objects.get(external_id="2")
    assert (t2.query, t2.response, t2.metadata) == ("multi\nline query", "", {"channel": "web"})
    reasons = dict(RejectedLine.objects.values_list("line_no", "reason"))
    # the quoted newline in record 2 makes record 3 start on physical line 5
    assert "timestamp has no zone offset" in reasons[5]
    assert "latency_ms: expected a number" in reasons[6]


@pytest.mark.django_db
def test_openai_messages_conversations_become_turns(tmp_path):
    conv = {"session_id": "conv-1", "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "what is CANARD?"}, {"role": "assistant", "content": "A dataset."},
        {"role": "user", "content": "who made it?"}, {"role": "assistant", "content": "Elgohary et al."},
    ], "timestamps": ["2026-10-01T09:00:00Z", "2026-10-01T09:00:01Z", "2026-10-01T09:00:02Z",
                      "2026-10-01T09:00:30Z", "2026-10-01T09:00:31Z"]}
    untimed = {"session_id": "conv-2", "messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "hello"}]}
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join([json.dumps(conv), json.dumps(untimed), '{"session_id": "x", "messages": "no"}']))

    summary = ingest(path)  # auto-detected as messages

    assert summary == {"read": 3, "created": 3, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    turns = list(Turn.objects.filter(session__external_id="conv-1").order_by("position"))
    assert [(t.external_id, t.query, t.response) for t in turns] == [
        ("conv-1-1", "what is CANARD?", "A dataset."), ("conv-1-2", "who made it?", "Elgohary et al.")]
    assert turns[1].timestamp.isoformat() == "2026-10-01T09:00:30+00:00"
    assert Turn.objects.get(external_id="conv-2-1").timestamp is None
    assert "messages: expected an array" in RejectedLine.objects.get().reason


@pytest.mark.django_db
def test_an_unreadable_path_is_an_error_and_the_other_paths_are_still_read(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(line(id="a"))
    with pytest.raises(CommandError, match="missing.jsonl: cannot read"):
        call_command("ingest", str(tmp_path / "missing.jsonl"), str(good), "--source", "s", stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert Turn.objects.filter(external_id="a").exists()


def test_an_unreadable_path_exits_non_zero(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "manage.py", "ingest", str(tmp_path / "nope.jsonl"), "--source", "s"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "nope.jsonl: cannot read" in proc.stderr


@pytest.mark.django_db
def test_the_real_example_logs_ingest_without_rejects():
    summary = ingest(REPO / "examples" / "canard_log.jsonl", source="canard")
    lines = (REPO / "examples" / "canard_log.jsonl").read_bytes().count(b"\n")
    assert summary["rejected"] == 0 and summary["read"] == lines
    assert summary["created"] == Turn.objects.count() > 3000
    # every escalation in the file found its turn, including the ones written as separate lines
    assert summary["events"] == Event.objects.filter(turn__isnull=False).count() > 0
    assert Session.objects.count() == 490


@pytest.mark.django_db
def test_chunks_split_sessions_events_and_duplicates_and_store_the_same_as_one_chunk(tmp_path, settings):
    # given: sessions that span chunk boundaries, an event before its turn in an earlier chunk,
    # a turn repeated in a later chunk
    recs = [json.dumps({"type": "event", "turn_id": "c-9", "event": {"type": "thumbs_down"}}).encode() + b"\n"]
    for i in range(12):
        recs.append(line(id=f"c-{i}", session_id=f"s-{i // 5}", timestamp=f"2026-10-01T09:{i:02d}:00Z",
                         events=[{"type": "copy"}] if i == 3 else ...))
    recs.append(line(id="c-2", session_id="s-0", timestamp="2026-10-01T09:02:00Z"))
    recs.append(b"not json\n")
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(recs))

    # when: chunks of 4 records
    settings.INGEST_BATCH_SIZE = 4
    summary = ingest(path)

    # then
    assert summary == {"read": 15, "created": 12, "duplicates": 1, "rejected": 1, "events": 2, "shadow": 0}
    spans = {s.external_id: (s.first_seen.minute, s.last_seen.minute) for s in Session.objects.all()}
    assert spans == {"s-0": (0, 4), "s-1": (5, 9), "s-2": (10, 11)}
    assert Event.objects.get(type="thumbs_down").turn.external_id == "c-9"
    assert Event.objects.get(type="copy").turn.external_id == "c-3"
    assert Session.objects.filter(dirty=False).count() == 0
    # and the job row counted chunk by chunk, then finished
    job = IngestJob.objects.get()
    assert (job.status, job.summary(), job.attempts) == ("done", summary, 1)


@pytest.mark.django_db
def test_an_error_on_the_reading_thread_fails_the_job_without_the_row_text(tmp_path, monkeypatch):
    from production import readers

    def exploding_reader(stream, progress=None, limits=None):
        yield 1, readers.parse_jsonl_line(1, line(id="first"))
        raise RuntimeError("reader broke\nDETAIL: secret user text")

    monkeypatch.setitem(readers.READERS, "jsonl", exploding_reader)
    path = tmp_path / "log.jsonl"
    path.write_bytes(line(id="first"))
    with pytest.raises(RuntimeError):
        ingest(path)
    job = IngestJob.objects.get()
    assert (job.status, job.error) == ("failed", "RuntimeError: reader broke")


@pytest.mark.django_db
def test_a_spooled_body_is_ingested_once_and_its_job_finished(tmp_path, settings):
    from production.services.ingest import ingest_job_run, ingest_job_spool, source_get_or_create

    settings.INGEST_SPOOL_DIR = tmp_path
    job = ingest_job_spool(source=source_get_or_create(name="spool"), body=line(id="a") + line(id="b") + b"x\n")
    assert job.status == "pending" and Path(job.spool_path).exists()

    result = ingest_job_run(job_id=job.pk)

    assert result.as_dict() == {"read": 3, "created": 2, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    job.refresh_from_db()
    assert (job.status, job.summary(), job.error) == ("done", result.as_dict(), "")
    assert not Path(job.spool_path).exists()
    assert RejectedLine.objects.get().origin == f"api:job-{job.pk}"
    assert ingest_job_run(job_id=job.pk) is None  # a finished job is never run again
    assert Turn.objects.count() == 2


@pytest.mark.django_db
def test_a_job_of_the_command_cannot_be_resumed_by_the_worker():
    from production.services.ingest import ingest_job_run, source_get_or_create

    job = IngestJob.objects.create(source=source_get_or_create(name="cmd"), origin="/some/file.jsonl")
    assert ingest_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("nothing to resume")


def test_ingest_services_never_import_tasks():
    import subprocess
    import sys

    # given a fresh interpreter, importing the ingest services must not pull in production.tasks
    code = ("import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'evalgap.settings'); "
            "django.setup(); import production.services.ingest; print('production.tasks' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.django_db
def test_signal_detection_has_a_beat_schedule():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="production.tasks.signals_detect")
    assert (task.interval.every, task.interval.period, task.enabled) == (5, "minutes", True)


@pytest.mark.django_db
def test_a_spooled_job_whose_body_is_gone_fails_with_the_reason(tmp_path, settings):
    from production.services.ingest import ingest_job_run, ingest_job_spool, source_get_or_create

    settings.INGEST_SPOOL_DIR = tmp_path
    job = ingest_job_spool(source=source_get_or_create(name="spool"), body=line(id="a"))
    Path(job.spool_path).unlink()
    with pytest.raises(FileNotFoundError):
        ingest_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("FileNotFoundError: [Errno 2]")


def test_the_reading_thread_stops_when_the_writer_leaves_early():
    import threading

    from production.services.ingest.chunks import Chunk, read_ahead

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield Chunk()

    chunks = read_ahead(endless(), prepare=lambda chunk: None, depth=1)
    next(chunks)
    chunks.close()  # the writer stops (an error, or the caller is done)
    assert not any(t.name == "ingest-reader" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 4  # it stopped soon, never ran ahead of its small queue


@pytest.mark.detect_after_ingest
@pytest.mark.django_db(transaction=True)
def test_the_ingest_command_chains_one_detection_run_when_it_stored_something(tmp_path, settings):
    from evalgap.celery import app
    from production.models import TurnSignals

    # given: chaining on, and the chained task run in this process (so it ends before the test does)
    settings.SIGNALS_DETECT_AFTER_INGEST = True
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        path = tmp_path / "log.jsonl"
        path.write_bytes(line(id="t-1") + line(id="t-2", timestamp="2026-10-01T09:01:00Z"))

        # when
        ingest(path)
        # then: both turns were scored and the session is clean
        assert TurnSignals.objects.count() == 2
        assert not Session.objects.filter(dirty=True).exists()

        # when: the same file again (nothing stored), with the signals removed to show no run follows
        TurnSignals.objects.all().delete()
        ingest(path)
        # then
        assert not TurnSignals.objects.exists()
    finally:
        app.conf.task_always_eager = eager
