"""What ingest makes of a fixed set of inputs, as one JSON document: run it before and after a change
to ingest and compare (`diff`), on SQLite and on PostgreSQL.

    DATABASE_URL=sqlite:////tmp/fp.sqlite3 python benchmarks/ingest_fingerprint.py > before-sqlite.json
    DATABASE_URL=postgres://...            python benchmarks/ingest_fingerprint.py > before-pg.json

The inputs: the three example logs (the CANARD one twice: every turn a duplicate the second time)
and the contract cases in `benchmarks/contract/` (every kind of bad line, events before and after
their turn, duplicates, CSV and OpenAI messages), plus two API bodies. The document holds each
ingest's summary, every rejected line (line number, reason, sha1 of the raw text) and a sha256 of
every stored turn, session and event (all their columns but ids and insertion times). It empties
the production tables first: never point it at a database you want to keep.
"""
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import django

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.chdir(REPO)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
os.environ.pop("CELERY_BROKER_URL", None)  # no signal detection chained: only what ingest writes
django.setup()

from django.core.management import call_command  # noqa: E402

from production.models import Event, IngestJob, RejectedLine, Session, Source, Turn  # noqa: E402

RUNS = [
    ("examples/canard_log.jsonl", "canard", "auto"),
    ("examples/cast_log.jsonl", "cast", "auto"),
    ("examples/hint3_log.jsonl", "hint3", "auto"),
    ("examples/canard_log.jsonl", "canard", "auto"),
    ("benchmarks/contract/cases.jsonl", "cases", "auto"),
    ("benchmarks/contract/cases.csv", "cases-csv", "auto"),
    ("benchmarks/contract/cases.messages.jsonl", "cases-msg", "auto"),
    ("benchmarks/contract/cases.jsonl", "cases", "jsonl"),
]
API_ARRAY = [
    {"id": "a-1", "session_id": "as-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"},
    {"id": "a-2"},
    {"type": "event", "turn_id": "a-1", "event": {"type": "copy"}},
    "not an object",
]
API_LINES = (b'{"id": "a-3", "session_id": "as-1", "timestamp": "2026-10-01T09:01:00Z", "query": "q2", "response": ""}\n'
             b"broken\n"
             b'{"id": "a-1", "session_id": "as-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"}\n')


def ts(value):
    return value.astimezone(__import__("datetime").timezone.utc).isoformat() if value else None


def digest(rows) -> dict:
    h = hashlib.sha256()
    n = 0
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
        n += 1
    return {"count": n, "sha256": h.hexdigest()}


def main() -> None:
    call_command("migrate", verbosity=0)
    for model in (Event, RejectedLine, Turn, Session, IngestJob, Source):
        model.objects.all().delete()
    summaries = []
    for path, source, fmt in RUNS:
        out = io.StringIO()
        call_command("ingest", path, "--source", source, "--format", fmt, "--json", stdout=out)
        summaries.append({"path": path, "source": source, **json.loads(out.getvalue().strip().splitlines()[-1])})
    from production.services.ingest import source_get_or_create, turns_ingest_body

    api = source_get_or_create(name="cases-api")
    summaries.append({"path": "api:array", **turns_ingest_body(source=api, body=json.dumps(API_ARRAY).encode()).as_dict()})
    summaries.append({"path": "api:lines", **turns_ingest_body(source=api, body=API_LINES).as_dict()})

    turns = (
        [t.source.name, t.external_id, t.session.external_id, ts(t.timestamp), t.position, t.query, t.response,
         t.user_id, t.contexts, t.model, ts(t.response_timestamp), t.latency_ms, t.metadata]
        for t in Turn.objects.select_related("source", "session").order_by("source__name", "external_id")
    )
    sessions = (
        [s.source.name, s.external_id, ts(s.first_seen), ts(s.last_seen), s.dirty]
        for s in Session.objects.select_related("source").order_by("source__name", "external_id")
    )
    events = (
        [e.source.name, e.turn_external_id, e.turn.external_id if e.turn else None, e.type, ts(e.timestamp),
         e.corrected_response, e.actor, e.reason, e.payload, e.fingerprint]
        for e in Event.objects.select_related("source", "turn").order_by("source__name", "turn_external_id",
                                                                          "fingerprint")
    )
    rejects = [
        [r.source.name, r.origin, r.line_no, r.reason, r.raw_sha1]
        for r in RejectedLine.objects.select_related("source").order_by("source__name", "origin", "line_no", "id")
    ]
    jobs = [[j.origin, j.status, j.summary()] for j in IngestJob.objects.order_by("id")]
    print(json.dumps({
        "database": django.db.connection.vendor,
        "summaries": summaries,
        "turns": digest(turns),
        "sessions": digest(sessions),
        "events": digest(events),
        "rejects": rejects,
        "jobs": jobs,
    }, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
