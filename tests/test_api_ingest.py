import json
import time

import pytest
from django.test import override_settings

from production.models import IngestJob, RejectedLine, Session, Turn, TurnSignals

REC = {"id": "t-1", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"}


def jsonl(*recs) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


@pytest.mark.django_db
def test_ingest_without_a_token_is_refused_and_writes_nothing(client):
    resp = client.post("/api/ingest/?source=api", data=jsonl(REC), content_type="application/x-ndjson")
    assert resp.status_code == 401
    assert Turn.objects.count() == 0


@pytest.mark.django_db
def test_ingest_json_lines_with_a_token(api):
    body = jsonl(REC, {**REC, "id": "t-2"}) + b"broken\n"
    resp = api.post("/api/ingest/?source=api", data=body, content_type="application/x-ndjson")
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"read": 3, "created": 2, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    assert set(Turn.objects.values_list("external_id", flat=True)) == {"t-1", "t-2"}
    rejects = api.get("/api/rejects/?source=api").json()["results"]
    assert [(r["line_no"], r["origin"]) for r in rejects] == [(3, "api")]


@pytest.mark.django_db
def test_ingest_a_json_array_reports_element_numbers(api):
    body = json.dumps([REC, {"id": "x"}]).encode()
    resp = api.post("/api/ingest/", data=body, content_type="application/json", HTTP_X_EVALGAP_SOURCE="api")
    assert resp.json() == {"read": 2, "created": 1, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    assert RejectedLine.objects.get().line_no == 2


@pytest.mark.django_db
def test_ingest_needs_a_source(api):
    resp = api.post("/api/ingest/", data=jsonl(REC), content_type="application/x-ndjson")
    assert resp.status_code == 400
    assert "source" in resp.json()
    assert Turn.objects.count() == 0


@pytest.mark.django_db
def test_browse_turns_sessions_and_events_through_the_api(api):
    api.post("/api/ingest/?source=api", content_type="application/x-ndjson", data=jsonl(
        REC, {**REC, "id": "t-2", "model": "m2", "timestamp": "2026-10-02T09:00:00Z",
              "events": [{"type": "copy"}]}))
    turns = api.get("/api/turns/?model=m2").json()["results"]
    assert [(t["turn_id"], t["source"], t["session_id"]) for t in turns] == [("t-2", "api", "s-1")]
    assert api.get("/api/turns/?date=2026-10-01").json()["count"] == 1
    assert api.get("/api/sessions/?source=api").json()["results"][0]["turn_count"] == 2
    events = api.get("/api/events/?type=copy").json()["results"]
    assert [(e["turn_external_id"], e["attached"]) for e in events] == [("t-2", True)]
    assert api.get("/api/schema/").status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_large_body_is_ingested_by_the_real_worker(api):
    # given: a body over the synchronous limit
    recs = [{**REC, "id": f"t-{i}", "session_id": f"s-{i // 5}"} for i in range(300)]
    body = jsonl(*recs) + b"[not an object]\n"
    with override_settings(INGEST_SYNC_MAX_BYTES=1000):
        resp = api.post("/api/ingest/?source=bulk", data=body, content_type="application/x-ndjson")
    assert resp.status_code == 202, resp.content
    job_id = resp.json()["id"]

    # when: the worker (a separate process) picks it up
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = IngestJob.objects.get(pk=job_id)
        if job.status in (IngestJob.Status.DONE, IngestJob.Status.FAILED):
            break
        time.sleep(0.2)

    # then
    assert job.status == IngestJob.Status.DONE, job.error
    assert job.summary() == {"read": 301, "created": 300, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0}
    assert Turn.objects.filter(source__name="bulk").count() == 300
    assert api.get(f"/api/ingest/jobs/{job_id}/").json()["status"] == "done"
    # and the worker ran signal detection after the ingest (waited for, so it ends before teardown)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (TurnSignals.objects.count() < 300 or Session.objects.filter(dirty=True)):
        time.sleep(0.2)
    assert TurnSignals.objects.filter(turn__source__name="bulk").count() == 300
    assert not Session.objects.filter(dirty=True).exists()
