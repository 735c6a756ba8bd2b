"""Exactly once under concurrency and crashes: jobs held by one live worker at a time (a dead holder's
job is taken over at once, a live one's never), Celery's delivery settings, webhooks applied only if
newer, a pull that never deletes what arrived after its snapshot, promote racing freeze.

The Label Studio tests need the real Label Studio; those with `worker` start Celery workers of their
own (on a queue of their own) to kill them."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.jobs import job_held, jobs_sweep
from evalgap.celery import app as celery_app
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, TaskLink, WebhookDelivery
from labelling.services import annotations as annotation_service
from labelling.services.push import batch_push
from production.models import IngestJob, Session, Source, Turn
from testsets.models import TestItem, TestSetVersion
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze, version_sha256

REPO = Path(__file__).resolve().parent.parent
postgres_only = pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"],
                                   reason="advisory locks and row locks: PostgreSQL (make test)")


def in_thread(fn, *args, **kwargs):
    """Run `fn` on a thread of its own (its own database connection); returns (thread, result box)."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e
        finally:
            connections.close_all()

    t = threading.Thread(target=run)
    t.start()
    return t, box


# --- Celery settings ---------------------------------------------------------------------------

def test_celery_acknowledges_late_and_redelivers_what_a_lost_worker_held():
    conf = celery_app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_a_visibility_timeout_below_the_time_limit_refuses_to_start():
    env = {**os.environ, "CELERY_TASK_TIME_LIMIT": "600", "CELERY_VISIBILITY_TIMEOUT": "300",
           "DJANGO_SETTINGS_MODULE": "evalgap.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "CELERY_VISIBILITY_TIMEOUT must exceed" in out.stderr


# --- job_held and the sweeper -------------------------------------------------------------------

@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_held_job_has_one_live_holder_and_a_dead_holders_job_is_taken_over_at_once():
    source = Source.objects.create(name=f"held-{uuid.uuid4().hex[:6]}")
    job = IngestJob.objects.create(source=source, origin="api")
    inside, release = threading.Event(), threading.Event()

    def hold():
        with job_held(IngestJob, job.pk) as mine:
            inside.set()
            release.wait(30)
            return mine

    t, box = in_thread(hold)
    assert inside.wait(30)
    with job_held(IngestJob, job.pk) as mine:
        assert mine is False  # the other holder is alive
    sent = []
    jobs_sweep(stale_seconds=0, enqueue=lambda name, pk: sent.append(pk))
    assert job.pk not in sent and IngestJob.objects.get(pk=job.pk).status == "running"  # slow is not dead
    release.set()
    t.join()
    assert box["value"] is True

    # A holder that dies (its process killed) leaves the job "running" with a fresh heartbeat; the
    # lock went with its connection, so the next claim takes it over without waiting for staleness.
    code = (f"import django; django.setup()\n"
            f"from core.jobs import job_held\nfrom production.models import IngestJob\nimport os, signal\n"
            f"IngestJob.objects.filter(pk={job.pk}).update(status='pending')\n"
            f"with job_held(IngestJob, {job.pk}) as mine:\n    assert mine\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ}, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    job.refresh_from_db()
    assert job.status == "running" and job.heartbeat_at > timezone.now() - timedelta(minutes=1)
    with job_held(IngestJob, job.pk) as mine:
        assert mine is True
    job.refresh_from_db()
    assert job.attempts == 3


@pytest.mark.django_db
def test_the_sweeper_resends_a_spooled_job_whose_message_was_lost(settings):
    settings.JOB_STALE_SECONDS = 60
    source = Source.objects.create(name="lost")
    lost = IngestJob.objects.create(source=source, origin="api", spool_path="/nowhere")
    IngestJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    fresh = IngestJob.objects.create(source=source, origin="api", spool_path="/nowhere")
    sent = []
    result = jobs_sweep(enqueue=lambda name, pk: sent.append((name, pk)))
    assert sent == [("production.tasks.ingest_job_run", lost.pk)] and fresh.pk not in [pk for _, pk in sent]
    assert result["production.IngestJob"]["resent"] == 1
    assert jobs_sweep(enqueue=lambda name, pk: sent.append((name, pk)))["production.IngestJob"]["resent"] == 0


# --- a real worker, killed ------------------------------------------------------------------------

def _start_worker(queue: str, tmp_path: Path, **env) -> subprocess.Popen:
    log = open(tmp_path / f"worker-{queue}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalgap", "worker", "-Q", queue, "--concurrency", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h", "--loglevel", "INFO"],
        cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _wait(check, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _lines(n: int, tag: str) -> bytes:
    return b"".join(json.dumps({"id": f"{tag}-{i}", "session_id": f"{tag}-s{i // 5}", "query": f"q {i}",
                                "timestamp": "2026-10-01T09:00:00Z", "response": f"r {i}"}).encode() + b"\n"
                    for i in range(n))


@pytest.mark.worker
@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_child_and_parent_leave_no_job_running_and_no_turn_twice(tmp_path):
    """kill -9 of the child: its message comes back at once and the job resumes. kill -9 of the
    parent (and child): the job stays "running" until the sweeper re-queues it (the test's sweep)."""
    from production.services.ingest import ingest_job_spool

    queue = f"kill-{uuid.uuid4().hex[:8]}"
    # Small chunks, so the job is still running when it is killed; detection off (its own task).
    env = {"INGEST_BATCH_SIZE": "100", "SIGNALS_DETECT_AFTER_INGEST": "false"}
    tag = uuid.uuid4().hex[:6]
    source = Source.objects.create(name=f"kill-{tag}")
    n = 50_000
    jobs = [ingest_job_spool(source=source, body=_lines(n, f"{tag}-{k}")) for k in range(2)]
    worker = _start_worker(queue, tmp_path, **env)
    try:
        # 1. the child, mid-job
        celery_app.send_task("production.tasks.ingest_job_run", args=[jobs[0].pk], queue=queue)
        _wait(lambda: IngestJob.objects.filter(pk=jobs[0].pk, status="running", created__gt=0).exists(), what="run")
        child = _wait(lambda: _children(worker.pid), what="a child")[0]
        os.kill(child, signal.SIGKILL)
        _wait(lambda: IngestJob.objects.filter(pk=jobs[0].pk, status="done").exists(), what="the resumed job")
        # 2. the whole worker, mid-job: nothing comes back by itself before Redis's visibility timeout
        celery_app.send_task("production.tasks.ingest_job_run", args=[jobs[1].pk], queue=queue)
        _wait(lambda: IngestJob.objects.filter(pk=jobs[1].pk, status="running", created__gt=0).exists(), what="run")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        assert IngestJob.objects.get(pk=jobs[1].pk).status == "running"
        worker = _start_worker(queue, tmp_path, **env)
        sent = []

        def enqueue(name, pk):
            sent.append(pk)
            if pk == jobs[1].pk:
                celery_app.send_task(name, args=[pk], queue=queue)

        # The dead worker's database sessions end a moment after the kill (and its lock with them).
        _wait(lambda: jobs_sweep(stale_seconds=0, enqueue=enqueue) and jobs[1].pk in sent, what="the sweep")
        _wait(lambda: IngestJob.objects.filter(pk=jobs[1].pk, status="done").exists(), what="the re-queued job")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert Turn.objects.filter(source=source).count() == 2 * n
    assert not IngestJob.objects.filter(status="running").exists()
    assert IngestJob.objects.get(pk=jobs[0].pk).attempts == 2


# --- two pushes of one batch at once, against the real Label Studio ------------------------------

@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_pushes_of_one_batch_create_one_task_per_item(settings):
    from labelling.services.projects import get_client

    if not settings.LABEL_STUDIO_URL:
        pytest.fail("needs the real Label Studio (make test)")
    settings.LABEL_STUDIO_PROJECT_TITLE = f"test-race-{uuid.uuid4().hex[:8]}"
    settings.LABELLING_PUSH_CHUNK = 40
    source = Source.objects.create(name=f"race-{uuid.uuid4().hex[:6]}")
    session = Session.objects.create(source=source, external_id="s")
    batch = LabellingBatch.objects.create(month="2026-10")
    for i in range(120):
        turn = Turn.objects.create(source=source, session=session, external_id=f"t-{i}", query=f"q {i}",
                                   response="r", timestamp=timezone.now())
        BatchItem.objects.create(batch=batch, turn=turn, stratum="none", inclusion_probability=0.5, query_key=f"q{i}")
    start = threading.Barrier(2)

    def push():
        start.wait()
        return batch_push(batch_id=batch.pk)

    runs = [in_thread(push) for _ in range(2)]
    for t, _ in runs:
        t.join()
    results = [box.get("value") or box.get("error") for _, box in runs]
    assert all(isinstance(r, dict) for r in results), results
    winners = [r for r in results if "skipped" not in r]
    assert len(winners) >= 1 and sum(r["pushed"] for r in results) == 120
    project = LabelStudioProject.objects.get(title=settings.LABEL_STUDIO_PROJECT_TITLE)
    in_ls = get_client().task_ids_by_key(project.ls_project_id, ("source", "evalgap_id"))
    assert len(in_ls) == 120 and all(len(ids) == 1 for ids in in_ls.values())
    assert TaskLink.objects.filter(item__batch=batch).count() == 120
    assert LabellingBatch.objects.get(pk=batch.pk).status == "done"


# --- webhooks: newer only, in a transaction, every delivery ends processed or with its error -----

@pytest.fixture
def labelled(db):
    source = Source.objects.create(name="hooks")
    session = Session.objects.create(source=source, external_id="s")
    turn = Turn.objects.create(source=source, session=session, external_id="t-1", query="q", response="r")
    item = BatchItem.objects.create(batch=LabellingBatch.objects.create(), turn=turn, stratum="none",
                                    inclusion_probability=1.0, query_key="q")
    project = LabelStudioProject.objects.create(title=f"hooks-{uuid.uuid4().hex[:6]}", ls_project_id=4242)
    TaskLink.objects.create(item=item, project=project, ls_task_id=77)
    return project


def delivery(verdict: str, updated: str, action="ANNOTATION_UPDATED", ann_id=9001) -> int:
    ann = {"id": ann_id, "result": [{"from_name": "verdict", "to_name": "response", "type": "choices",
                                     "value": {"choices": [verdict]}}],
           "completed_by": 1, "created_at": "2026-11-01T10:00:00Z", "updated_at": updated}
    payload = {"action": action, "annotation": ann, "task": {"id": 77, "data": {}}, "project": {"id": 4242}}
    return annotation_service.webhook_delivery_record(payload=payload).pk


def test_replayed_reordered_and_duplicated_webhooks_keep_the_newest_judgement(labelled):
    first = delivery("correct", "2026-11-01T10:00:00Z", action="ANNOTATION_CREATED")
    second = delivery("incorrect", "2026-11-01T10:05:00Z")
    third = delivery("partially_correct", "2026-11-01T10:09:00Z")
    for pk in (third, first, second, second, third, first):  # out of order, each twice
        annotation_service.webhook_delivery_process(delivery_id=pk)
    assert Annotation.objects.get(ls_annotation_id=9001).verdict == "partially_correct"
    assert not WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
    # a replay of an old body, delivered anew, is stale and changes nothing
    assert annotation_service.webhook_delivery_process(delivery_id=delivery("correct", "2026-11-01T10:00:00Z")) == "stale"
    assert Annotation.objects.get(ls_annotation_id=9001).verdict == "partially_correct"


def test_a_deleted_annotation_is_not_brought_back_by_an_old_delivery(labelled):
    annotation_service.webhook_delivery_process(delivery_id=delivery("correct", "2026-11-01T10:00:00Z"))
    gone = annotation_service.webhook_delivery_record(payload={
        "action": "ANNOTATIONS_DELETED", "annotations": [{"id": 9001}], "project": {"id": 4242}}).pk
    annotation_service.webhook_delivery_process(delivery_id=gone)
    annotation_service.webhook_delivery_process(delivery_id=delivery("incorrect", "2026-11-01T10:05:00Z"))
    assert Annotation.objects.get(ls_annotation_id=9001).deleted is True


def test_a_delivery_that_cannot_be_applied_ends_with_its_error_and_leaves_no_rows(labelled):
    bad = annotation_service.webhook_delivery_record(payload={
        "action": "ANNOTATION_CREATED", "annotation": {"id": 5}, "task": {"id": 999, "data": {}},
        "project": {"id": 4242}}).pk
    assert annotation_service.webhook_delivery_process(delivery_id=bad) == "error"
    row = WebhookDelivery.objects.get(pk=bad)
    assert row.processed_at is not None and "not an evalgap item" in row.error
    assert not Annotation.objects.filter(ls_annotation_id=5).exists()
    assert annotation_service.webhook_delivery_process(delivery_id=bad) == "skipped"  # processed once


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_annotation_end_with_the_newest(labelled):
    ids = [delivery(v, f"2026-11-01T10:{m:02d}:00Z", action="ANNOTATION_CREATED" if m == 0 else "ANNOTATION_UPDATED")
           for m, v in enumerate(["correct", "incorrect", "partially_correct", "cannot_judge"] * 3)]
    newest = max(range(len(ids)), key=lambda k: k)  # minute k: the last one is the newest
    barrier = threading.Barrier(len(ids))

    def apply(pk):
        barrier.wait()
        return annotation_service.webhook_delivery_process(delivery_id=pk)

    runs = [in_thread(apply, pk) for pk in reversed(ids)]
    for t, _ in runs:
        t.join()
    assert all("error" not in box for _, box in runs), [box.get("error") for _, box in runs]
    ann = Annotation.objects.get(ls_annotation_id=9001)
    assert ann.verdict == ["correct", "incorrect", "partially_correct", "cannot_judge"][newest % 4]
    assert ann.ls_updated_at.minute == newest
    assert WebhookDelivery.objects.filter(pk__in=ids, processed_at__isnull=False, error="").count() == len(ids)


# --- a pull and what arrives while it runs ---------------------------------------------------------

@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_a_pull_never_marks_deleted_an_annotation_that_arrived_after_its_snapshot(settings, monkeypatch):
    from labelling.services.projects import get_client, project_ensure

    if not settings.LABEL_STUDIO_URL:
        pytest.fail("needs the real Label Studio (make test)")
    settings.LABEL_STUDIO_PROJECT_TITLE = f"test-snap-{uuid.uuid4().hex[:8]}"
    settings.LABELLING_PULL_GRACE_SECONDS = 0
    source = Source.objects.create(name=f"snap-{uuid.uuid4().hex[:6]}")
    session = Session.objects.create(source=source, external_id="s")
    batch = LabellingBatch.objects.create()
    for i in range(2):
        turn = Turn.objects.create(source=source, session=session, external_id=f"t-{i}", query="q", response="r")
        BatchItem.objects.create(batch=batch, turn=turn, stratum="none", inclusion_probability=1.0, query_key=f"q{i}")
    batch_push(batch_id=batch.pk)
    client = get_client()
    project = project_ensure(client=client)
    task_a, task_b = TaskLink.objects.filter(item__batch=batch).order_by("id").values_list("ls_task_id", flat=True)
    verdict = [{"from_name": "verdict", "to_name": "response", "type": "choices", "value": {"choices": ["correct"]}}]
    client.create_annotation(task_a, verdict)
    real_export = type(client).export_annotated

    def export_then_a_webhook_arrives(self, project_id):
        tasks = real_export(self, project_id)  # the snapshot: the annotation on A only
        client.create_annotation(task_b, verdict)  # then B is annotated, and its webhook applied
        b = next(t for t in real_export(self, project_id) if t["id"] == task_b)
        annotation_service.webhook_delivery_process(delivery_id=annotation_service.webhook_delivery_record(payload={
            "action": "ANNOTATION_CREATED", "task": b, "annotation": b["annotations"][0],
            "project": {"id": project.ls_project_id}}).pk)
        return tasks

    monkeypatch.setattr(type(client), "export_annotated", export_then_a_webhook_arrives)
    result = annotation_service.annotations_pull()
    monkeypatch.undo()
    assert result["deleted"] == 0
    assert Annotation.objects.filter(project=project, deleted=False).count() == 2
    # the next pull sees both in Label Studio too, and changes nothing
    assert annotation_service.annotations_pull() == {"annotations": 2, "created": 0, "updated": 0, "deleted": 0}


# --- promote against freeze ------------------------------------------------------------------------

@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_promotion_racing_a_freeze_never_changes_what_the_frozen_version_hashes(monkeypatch):
    from labelling.models import Annotation as Ann
    from testsets.services import versions

    source = Source.objects.create(name=f"race-{uuid.uuid4().hex[:6]}")
    session = Session.objects.create(source=source, external_id="s")
    batch = LabellingBatch.objects.create()
    project = LabelStudioProject.objects.create(title=f"race-{uuid.uuid4().hex[:6]}", ls_project_id=909090)

    def judged(i):
        turn = Turn.objects.create(source=source, session=session, external_id=f"t-{i}", query=f"q{i}", response="r")
        item = BatchItem.objects.create(batch=batch, turn=turn, stratum="none", inclusion_probability=1.0,
                                        query_key=f"q{i}")
        Ann.objects.create(ls_annotation_id=880000 + i, project=project, item=item, ls_task_id=880000 + i,
                           verdict="correct", taxonomy_version=1)

    name = f"race{uuid.uuid4().hex[:6]}"
    judged(0)
    testset_promote(name=name)
    hashing, go_on = threading.Event(), threading.Event()
    real = versions._hash_and_cache

    def slow_hash(version):
        hashing.set()
        go_on.wait(30)  # the promotion below starts while the freeze holds the draft
        return real(version)

    monkeypatch.setattr(versions, "_hash_and_cache", slow_hash)
    freezer, frozen = in_thread(testset_freeze, name=name)
    assert hashing.wait(30)
    judged(1)
    promoter, promoted = in_thread(testset_promote, name=name)
    time.sleep(0.5)  # let the promotion reach the lock (the outcome does not depend on it)
    go_on.set()
    freezer.join()
    promoter.join()
    assert "error" not in frozen and "error" not in promoted, (frozen, promoted)
    v1 = TestSetVersion.objects.get(testset__name=name, number=1)
    assert v1.status == "frozen" and version_sha256(v1) == v1.sha256 and v1.item_count == 1
    assert TestItem.objects.filter(version=v1).count() == 1
    v2 = TestSetVersion.objects.get(testset__name=name, number=2)
    assert v2.status == "draft" and v2.items.count() == 2
