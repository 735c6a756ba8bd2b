"""core.jobs: one claim for every job kind, the base task that fails a job, the sweeper."""
from datetime import timedelta

import pytest
from django.utils import timezone

from core.jobs import JobStatus, job_claim, job_fail, job_finish, job_progress, jobs_sweep, safe_error
from generation.models import GenerationRun
from labelling.models import LabellingBatch
from production.models import IngestJob, Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest_job():
    return IngestJob.objects.create(source=Source.objects.create(name="jobs-src"), origin="api")


def test_a_job_is_claimed_once_and_counts_its_attempts(ingest_job):
    assert job_claim(IngestJob, ingest_job.pk) is True
    assert job_claim(IngestJob, ingest_job.pk) is False  # running, heartbeat fresh: the other worker has it
    ingest_job.refresh_from_db()
    assert (ingest_job.status, ingest_job.attempts) == ("running", 1)
    assert ingest_job.started_at is not None and ingest_job.heartbeat_at is not None


def test_a_running_job_whose_heartbeat_stopped_can_be_taken_over(ingest_job, settings):
    settings.JOB_STALE_SECONDS = 60
    job_claim(IngestJob, ingest_job.pk)
    IngestJob.objects.filter(pk=ingest_job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert job_claim(IngestJob, ingest_job.pk) is True
    ingest_job.refresh_from_db()
    assert ingest_job.attempts == 2


def test_finished_jobs_are_never_claimed_again(ingest_job):
    job_claim(IngestJob, ingest_job.pk)
    job_finish(IngestJob, ingest_job.pk, created=5)
    assert job_claim(IngestJob, ingest_job.pk) is False
    ingest_job.refresh_from_db()
    assert (ingest_job.status, ingest_job.created, ingest_job.finished_at is not None) == ("done", 5, True)


def test_a_failed_job_keeps_only_the_first_line_of_the_error():
    err = Exception('invalid byte sequence for encoding "UTF8": 0x00\nCONTEXT:  COPY production_turn, line 3: '
                    '"secret user text"')
    assert safe_error(err) == 'Exception: invalid byte sequence for encoding "UTF8": 0x00'
    assert "secret" not in safe_error(err)


def test_job_fail_and_progress_write_the_row(ingest_job):
    job_claim(IngestJob, ingest_job.pk)
    job_progress(IngestJob, ingest_job.pk, read=10)
    job_fail(IngestJob, ingest_job.pk, ValueError("boom\nDETAIL: row text"))
    ingest_job.refresh_from_db()
    assert (ingest_job.status, ingest_job.read, ingest_job.error) == ("failed", 10, "ValueError: boom")


def test_the_sweeper_requeues_stuck_jobs_with_a_task_and_fails_the_rest(settings):
    settings.JOB_STALE_SECONDS = 60
    old = timezone.now() - timedelta(minutes=5)
    source = Source.objects.create(name="sweep-src")
    queued = IngestJob.objects.create(source=source, origin="api", status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    worn = IngestJob.objects.create(source=source, origin="api", status=JobStatus.RUNNING, attempts=3, heartbeat_at=old)
    fresh = IngestJob.objects.create(source=source, origin="api", status=JobStatus.RUNNING, attempts=1,
                                     heartbeat_at=timezone.now())
    batch = LabellingBatch.objects.create(status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    run = GenerationRun.objects.create(failure_mode="X", n=1, prompt_version="v", status=JobStatus.DONE)
    sent = []

    result = jobs_sweep(enqueue=lambda name, pk: sent.append((name, pk)))

    assert sorted(sent) == sorted([("production.tasks.ingest_job_run", queued.pk),
                                   ("labelling.tasks.batch_push", batch.pk)])
    assert result["production.IngestJob"] == {"requeued": 1, "failed": 1, "resent": 0}
    statuses = {j.pk: (j.status, j.error) for j in IngestJob.objects.all()}
    assert statuses[queued.pk][0] == "pending"
    assert statuses[worn.pk] == ("failed", "stuck: no heartbeat after 3 attempts")
    assert statuses[fresh.pk][0] == "running"
    run.refresh_from_db()
    assert run.status == "done"
