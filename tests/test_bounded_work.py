"""Bounded memory and work: a JSON-array body is read as a stream, a job that kills its worker is
not redelivered forever, and a spooled body (raw personal data) does not outlive its use.
Memory itself is measured by benchmarks/bench_ingest_array.py, never asserted against a clock here."""
import io
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from core.jobs import job_claim, job_held
from production.models import IngestJob, RejectedLine, Source, Turn
from production.readers import Reject, read_json_array
from production.services.ingest import ingest_job_run, ingest_job_spool, ingest_spool_purge, source_get_or_create

REC = {"id": "t-1", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"}


class CountingStream(io.BytesIO):
    """A body that says how much of it was read so far."""

    def read(self, n=-1):
        data = super().read(n)
        self.read_so_far = self.tell()
        return data


def test_a_json_array_is_parsed_as_a_stream_one_element_at_a_time():
    body = json.dumps([{**REC, "id": f"t-{i}", "query": "x" * 1000} for i in range(5000)]).encode()
    stream = CountingStream(body)
    items = read_json_array(stream)
    first = next(items)
    assert first[0] == 1 and first[1].external_id == "t-0"
    # The first element came out after reading a block or two, not the 5 MB body.
    assert stream.read_so_far < 200_000 < len(body)
    assert sum(1 for _ in items) == 4999


def test_invalid_json_part_way_keeps_the_elements_before_it_and_names_where_it_broke():
    body = json.dumps([REC, {**REC, "id": "t-2"}]).encode()[:-1] + b', {"id": "t-3", "query": '
    items = list(read_json_array(body))
    assert [n for n, _ in items] == [1, 2, 3]
    assert isinstance(items[2][1], Reject)
    assert items[2][1].reason.startswith("body after element 2: invalid JSON")
    assert "the rest of the body was not read" in items[2][1].reason
    assert list(read_json_array(b"[nonsense"))[0][1].reason.startswith("body: invalid JSON")


@pytest.mark.django_db
def test_the_api_keeps_the_good_elements_of_a_truncated_array(api):
    body = json.dumps([REC, {**REC, "id": "t-2"}]).encode()[:-1] + b", {"
    resp = api.post("/api/ingest/?source=arr", data=body, content_type="application/json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["created"] == 2 and resp.json()["rejected"] == 1
    assert set(Turn.objects.values_list("external_id", flat=True)) == {"t-1", "t-2"}
    assert RejectedLine.objects.get().line_no == 3


@pytest.mark.django_db
def test_a_spooled_array_is_read_from_its_file(tmp_path, settings):
    settings.INGEST_SPOOL_DIR = tmp_path
    body = b"  \n" + json.dumps([{**REC, "id": f"t-{i}"} for i in range(30)]).encode()
    job = ingest_job_spool(source=source_get_or_create(name="spooled-array"), body=body)
    result = ingest_job_run(job_id=job.pk)
    assert result.created == 30 and not Path(job.spool_path).exists()


# --- the attempt cap --------------------------------------------------------------------------

@pytest.fixture
def dead_job(db, settings):
    """A job whose worker died mid-run (status running, heartbeat stale) after `attempts` claims."""
    settings.JOB_STALE_SECONDS = 60

    def make(attempts: int, spool_path: str = "") -> IngestJob:
        job = IngestJob.objects.create(source=Source.objects.get_or_create(name="cap")[0], origin="api",
                                       spool_path=spool_path)
        IngestJob.objects.filter(pk=job.pk).update(status="running", attempts=attempts,
                                                   heartbeat_at=timezone.now() - timedelta(seconds=120))
        return job

    return make


def test_a_dead_workers_job_is_taken_over_while_it_has_attempts_left(dead_job):
    job = dead_job(IngestJob.max_attempts - 1)
    assert job_claim(IngestJob, job.pk) is True
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", IngestJob.max_attempts)


def test_a_job_that_killed_its_worker_max_attempts_times_is_failed_and_named(dead_job, caplog):
    job = dead_job(IngestJob.max_attempts)
    assert job_claim(IngestJob, job.pk) is False
    job.refresh_from_db()
    assert job.status == "failed" and job.finished_at is not None
    assert f"production.IngestJob {job.pk} failed" in job.error and f"{IngestJob.max_attempts} attempts" in job.error
    assert f"production.IngestJob {job.pk}" in caplog.text
    # ... and nothing claims it again: a redelivered message finds a failed job.
    with job_held(IngestJob, job.pk) as mine:
        assert mine is False


def test_a_redelivered_ingest_over_the_cap_does_not_run(dead_job, tmp_path, settings):
    settings.INGEST_SPOOL_DIR = tmp_path
    spool = tmp_path / "ingest-cap.jsonl"
    spool.write_bytes(json.dumps(REC).encode() + b"\n")
    job = dead_job(IngestJob.max_attempts, str(spool))
    assert ingest_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "failed" and Turn.objects.count() == 0
    assert ingest_spool_purge()["finished"] == 1 and not spool.exists()


def test_a_pending_job_is_claimed_whatever_its_attempts(db):
    """A transient failure puts a job back to pending; the cap is on take-overs from dead workers."""
    job = IngestJob.objects.create(source=Source.objects.create(name="transient"), origin="api",
                                   attempts=IngestJob.max_attempts + 2)
    assert job_claim(IngestJob, job.pk) is True


# --- spool files ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_spool_files_are_deleted_when_finished_or_too_old(tmp_path, settings):
    settings.INGEST_SPOOL_DIR = tmp_path
    settings.INGEST_SPOOL_MAX_DAYS = 3
    source = source_get_or_create(name="purge")
    body = json.dumps({**REC, "query": "my card 4111 1111 1111 1111"}).encode() + b"\n"
    done, failed, waiting, stale = (ingest_job_spool(source=source, body=body) for _ in range(4))
    IngestJob.objects.filter(pk=done.pk).update(status="done")
    IngestJob.objects.filter(pk=failed.pk).update(status="failed")
    four_days_ago = time.time() - 4 * 86400
    os.utime(stale.spool_path, (four_days_ago, four_days_ago))
    orphan = tmp_path / "ingest-999999.jsonl"
    orphan.write_bytes(body)
    os.utime(orphan, (four_days_ago, four_days_ago))

    assert ingest_spool_purge() == {"finished": 2, "expired": 1, "orphans": 1}
    assert [Path(j.spool_path).exists() for j in (done, failed, waiting, stale)] == [False, False, True, False]
    assert not orphan.exists()
    stale.refresh_from_db()
    assert stale.status == "failed" and "INGEST_SPOOL_MAX_DAYS" in stale.error and stale.spool_path == ""
    assert IngestJob.objects.get(pk=waiting.pk).status == "pending"  # still to be read: kept
    assert ingest_spool_purge() == {"finished": 0, "expired": 0, "orphans": 0}  # idempotent
