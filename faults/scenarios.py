"""The scenarios and the invariants they are checked against (see faults/__init__.py).

A scenario is a function `(ctx, rng, tag) -> list[str]` of violations; the fault moment comes from
`rng` (seeded per scenario and run), the data is named by `tag` so runs never share rows.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from django.db import InterfaceError, OperationalError, close_old_connections, connections

from . import services as svc

NONCE = os.urandom(3).hex()

# Small limits, so that each kind of poison is cheap to build and the suite stays fast (the worker
# processes get the same settings from scripts/faults.sh).
MAX_FIELD_CHARS = 50_000
MAX_LINE_BYTES = 200_000


@dataclass
class Context:
    workers: list = field(default_factory=list)
    worker_env: dict = field(default_factory=dict)
    redis_port: int = 0
    web: object = None
    started: int = 0
    # Set by each run: did the fault land on work still under way (not before it began or after it ended)?
    landed: bool = False

    def worker(self) -> svc.Worker:
        return self.workers[-1]

    def new_worker(self) -> svc.Worker:
        self.started += 1
        self.workers.append(svc.Worker(f"faults{self.started}", self.worker_env).start())
        return self.workers[-1]

    def replace_worker(self) -> svc.Worker:
        for w in self.workers:
            w.kill_all()
        self.workers.clear()
        return self.new_worker()


def db(fn, *args, timeout: float = 120, **kwargs):
    """Run a database call, reconnecting while PostgreSQL recovers from a crash."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            for conn in connections.all():
                conn.close()
            time.sleep(0.5)


# --- input: a log with poison lines at seeded places ---------------------------------------------

def poison_lines(rng: random.Random, tag: str) -> list[bytes]:
    """One line of each kind the ingest contract rejects as its line (docs/production-log.md)."""
    base = {"session_id": f"{tag}-poison", "timestamp": "2026-10-01T09:00:00Z", "response": "r"}

    def line(obj) -> bytes:
        return json.dumps(obj).encode()

    nested: dict = {}
    for _ in range(100):
        nested = {"x": nested}
    return [
        line({**base, "id": f"{tag}-nul", "query": "before\u0000after"}),                      # NUL character
        line({**base, "id": "x" * 300, "query": "over-long id"}),                             # id over its column
        line({"type": "event", "turn_id": f"{tag}-0", "event": {"type": "e" * 150}}),         # event type too long
        line({**base, "id": f"{tag}-deep", "query": "q", "metadata": nested}),                # nested too deep
        line({**base, "id": f"{tag}-big", "query": "w" * (MAX_FIELD_CHARS + 1000)}),          # field too long
        line({**base, "id": f"{tag}-long", "query": "q", "contexts": ["c" * 45_000] * 5}),    # line too long
        b'{"id": "' + tag.encode() + b'-broken", "query": ',                                   # not JSON
        line({**base, "id": f"{tag}-tz", "timestamp": "2026-10-01T09:00:00", "query": "q"}),  # no zone
    ]


def clean_lines(rng: random.Random, tag: str, n: int) -> list[bytes]:
    start = datetime(2026, 10, 1, 8, tzinfo=timezone.utc)
    clean = []
    for i in range(n):
        ts = start + timedelta(seconds=37 * i)
        clean.append(json.dumps({
            "id": f"{tag}-{i}", "session_id": f"{tag}-s{i // 5}", "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "query": f"question {i} about order {rng.randint(1000, 9999)}", "response": f"answer {i}",
            "model": "m-1", "contexts": [f"ctx {i}"], "events": [{"type": "copy"}] if i % 7 == 0 else []}).encode())
    return clean


def poisoned_body(rng: random.Random, tag: str, n: int) -> tuple[bytes, set[int]]:
    clean = clean_lines(rng, tag, n)
    poison = poison_lines(rng, tag)
    lines = list(clean)
    for p in poison:
        lines.insert(rng.randint(0, len(lines)), p)
    numbers = {k + 1 for k, ln in enumerate(lines) if ln in poison}
    return b"\n".join(lines) + b"\n", numbers


def turns_digest(source_name: str) -> tuple[int, str]:
    from production.models import Event, Turn

    h = hashlib.sha256()
    rows = (Turn.objects.filter(source__name=source_name).order_by("external_id")
            .values_list("external_id", "session__external_id", "timestamp", "position", "query", "response",
                         "user_id", "contexts", "model", "response_timestamp", "latency_ms", "metadata"))
    n = 0
    for row in rows.iterator():
        n += 1
        h.update(json.dumps(row, default=str, sort_keys=True).encode() + b"\n")
    for fp in (Event.objects.filter(source__name=source_name).order_by("turn_external_id", "fingerprint")
               .values_list("turn_external_id", "type", "fingerprint")):
        h.update(json.dumps(fp).encode() + b"\n")
    return n, h.hexdigest()


def rejected(job_pk: int | None, source_name: str) -> set[tuple[int, str]]:
    from production.models import RejectedLine

    qs = RejectedLine.objects.filter(source__name=source_name)
    if job_pk is not None:
        qs = qs.filter(origin=f"api:job-{job_pk}")
    return {(r.line_no, r.reason) for r in qs}


@dataclass
class Ingest:
    source: str
    body: bytes
    poison: set[int]
    job: int = 0
    reference: tuple[int, str] = (0, "")
    reference_rejects: set = field(default_factory=set)


def prepare_ingest(rng: random.Random, tag: str, n: int = 8000) -> Ingest:
    """The input, and its clean reference run (in this process, no fault) under another source name."""
    from production.services import ingest

    body, poison = poisoned_body(rng, tag, n)
    ref = ingest.source_get_or_create(name=f"ref-{tag}")
    ingest.turns_ingest_body(source=ref, body=body)
    spec = Ingest(source=f"src-{tag}", body=body, poison=poison, reference=turns_digest(ref.name),
                  reference_rejects=rejected(None, ref.name))
    return spec


def spool(spec: Ingest) -> int:
    from production.services import ingest
    from production.tasks import ingest_job_run

    job = ingest.ingest_job_spool(source=ingest.source_get_or_create(name=spec.source), body=spec.body)
    spec.job = job.pk
    ingest_job_run.delay(job.pk)
    return job.pk


def check_ingest(spec: Ingest) -> list[str]:
    from production.models import IngestJob

    out = []
    job = IngestJob.objects.get(pk=spec.job)
    if job.status != "done":
        out.append(f"ingest job {job.pk} ended {job.status}: {job.error}")
    got = turns_digest(spec.source)
    if got != spec.reference:
        out.append(f"turns differ from the clean run: {got[0]} vs {spec.reference[0]} (hash "
                   f"{got[1][:10]} vs {spec.reference[1][:10]})")
    lines = {n for n, _ in rejected(spec.job, spec.source)}
    if lines != spec.poison:
        out.append(f"rejected lines {sorted(lines)} are not the poison lines {sorted(spec.poison)}")
    ref_lines = {n for n, _ in spec.reference_rejects}
    if ref_lines != spec.poison:
        out.append(f"the clean run rejected {sorted(ref_lines)}, not the poison lines {sorted(spec.poison)}")
    if {r for _, r in rejected(spec.job, spec.source)} != {r for _, r in spec.reference_rejects}:
        out.append("rejection reasons differ from the clean run's")
    return out


# --- waiting and recovering ----------------------------------------------------------------------

def job_status(model, pk) -> str:
    return db(lambda: model.objects.filter(pk=pk).values_list("status", flat=True).first())


def wait_finished(model, pk, timeout: float = 240) -> str:
    svc.wait_for(lambda: job_status(model, pk) in ("done", "failed"), timeout, f"{model.__name__} {pk} to finish",
                 interval=0.2)
    return job_status(model, pk)


def sweep() -> dict:
    """One sweep, as the beat row runs it, with every heartbeat counted as stale: safe, because a job
    whose holder is alive keeps its advisory lock and is left alone."""
    from core.jobs import jobs_sweep

    return db(jobs_sweep, stale_seconds=0)


def recover(model, pk, timeout: float = 240) -> str:
    """Give the system what production gives it: a live worker, one sweep; then wait for the job."""
    try:
        return wait_finished(model, pk, timeout=6)
    except TimeoutError:
        sweep()
        return wait_finished(model, pk, timeout=timeout)


def wait_progress(check, timeout: float = 120) -> None:
    svc.wait_for(lambda: db(check), timeout, "the work to reach the fault moment", interval=0.02)


def no_job_running(since) -> list[str]:
    from core.jobs import job_models

    out = []
    for model in job_models():
        n = db(lambda: model.objects.filter(status="running", created_at__gte=since).count())
        if n:
            out.append(f"{n} {model._meta.label} job(s) left running")
    return out


def frozen_versions_hash() -> list[str]:
    from testsets.models import TestSetVersion
    from testsets.services.versions import version_sha256

    out = []
    for v in db(lambda: list(TestSetVersion.objects.filter(status="frozen").select_related("testset"))):
        if version_sha256(v) != v.sha256 or v.items.count() != v.item_count:
            out.append(f"{v.testset.name} v{v.number} does not hash to its sha256")
    return out


# --- Label Studio ----------------------------------------------------------------------------------

def make_batch(tag: str, n: int = 120) -> int:
    """A batch of `n` turns of a clean ingest, for its own Label Studio project."""
    from labelling.models import BatchItem, LabellingBatch
    from production.models import Turn
    from production.services import ingest

    source = ingest.source_get_or_create(name=f"lab-{tag}")
    ingest.turns_ingest_body(source=source, body=b"\n".join(clean_lines(random.Random(tag), tag, n)) + b"\n")
    batch = LabellingBatch.objects.create(month="2026-10", project_title=f"faults-{tag}")
    BatchItem.objects.bulk_create([
        BatchItem(batch=batch, turn=t, stratum="none", inclusion_probability=0.5, query_key=t.external_id)
        for t in Turn.objects.filter(source=source).order_by("id")[:n]])
    return batch.pk


def push(batch_pk: int) -> None:
    from labelling.tasks import batch_push

    batch_push.delay(batch_pk)


def links(batch_pk: int) -> int:
    from labelling.models import TaskLink

    return TaskLink.objects.filter(item__batch_id=batch_pk).count()


def check_tasks(batch_pk: int) -> list[str]:
    from labelling.models import BatchItem, LabellingBatch, LabelStudioProject, TaskLink
    from labelling.services.projects import get_client

    batch = LabellingBatch.objects.get(pk=batch_pk)
    out = [] if batch.status == "done" else [f"batch {batch_pk} ended {batch.status}: {batch.error}"]
    project = LabelStudioProject.objects.filter(title=batch.project_title).first()
    if project is None:
        return out + ["no Label Studio project"]
    in_ls = get_client().task_ids_by_key(project.ls_project_id, ("source", "evalgap_id"))
    items = BatchItem.objects.filter(batch=batch).count()
    dupes = sum(len(ids) - 1 for ids in in_ls.values())
    if dupes:
        out.append(f"{dupes} duplicate task(s) in Label Studio")
    if len(in_ls) != items:
        out.append(f"{len(in_ls)} items in Label Studio for {items} in the batch")
    linked = set(TaskLink.objects.filter(item__batch=batch).values_list("ls_task_id", flat=True))
    if linked != {i for ids in in_ls.values() for i in ids}:
        out.append("task links do not match Label Studio's tasks")
    return out


VERDICT = {"from_name": "verdict", "to_name": "response", "type": "choices"}


def result(verdict: str) -> list[dict]:
    return [{**VERDICT, "value": {"choices": [verdict]}}]


def ls_annotations(project) -> dict[int, str]:
    """{annotation id: verdict} of Label Studio's export, what evalgap must hold."""
    from labelling.label_config import parse_annotation_result
    from labelling.services.projects import get_client

    out = {}
    for task in get_client().export_annotated(project.ls_project_id):
        for ann in task.get("annotations") or []:
            out[ann["id"]] = parse_annotation_result(ann.get("result") or [])["verdict"] or ""
    return out


def check_annotations(project) -> list[str]:
    from labelling.models import Annotation

    local = dict(Annotation.objects.filter(project=project, deleted=False).values_list("ls_annotation_id", "verdict"))
    remote = ls_annotations(project)
    if local == remote:
        return []
    missing, extra = remote.keys() - local.keys(), local.keys() - remote.keys()
    differ = [k for k in remote.keys() & local.keys() if remote[k] != local[k]]
    return [f"annotations differ from Label Studio's export: {len(missing)} missing, {len(extra)} extra, "
            f"{len(differ)} with another verdict"]


def with_ls_retry(fn, *args, timeout: float = 120):
    from labelling.client import LabelStudioUnavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*args)
        except LabelStudioUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def deliveries_settled(timeout: float = 180) -> None:
    from labelling.models import WebhookDelivery

    svc.wait_for(lambda: not db(lambda: WebhookDelivery.objects.filter(processed_at__isnull=True).exists()), timeout,
                 "webhook deliveries to be processed", interval=0.2)


# --- the scenarios ---------------------------------------------------------------------------------

def kill(ctx: Context, parent: bool) -> None:
    worker = ctx.worker()
    if parent:
        worker.kill_parent()
        ctx.new_worker()  # what a supervisor does; the orphaned child may still be finishing its task
    else:
        worker.kill_child()


def reap(ctx: Context) -> None:
    """Once the work is done: the orphans of killed workers go (they hold nothing any more)."""
    for w in ctx.workers[:-1]:
        w.kill_all()
    del ctx.workers[:-1]


def ingest_kill(ctx: Context, rng: random.Random, tag: str, *, parent: bool) -> list[str]:
    from production.models import IngestJob

    spec = prepare_ingest(rng, tag)
    lines = spec.body.count(b"\n")
    spool(spec)
    moment = rng.uniform(0.05, 0.9)
    wait_progress(lambda: IngestJob.objects.filter(pk=spec.job, read__gte=int(moment * lines)).exists()
                  or IngestJob.objects.filter(pk=spec.job, status="done").exists())
    kill(ctx, parent)
    ctx.landed = job_status(IngestJob, spec.job) == "running"
    recover(IngestJob, spec.job)
    reap(ctx)
    return check_ingest(spec)


def push_kill(ctx: Context, rng: random.Random, tag: str, *, parent: bool) -> list[str]:
    from labelling.models import LabellingBatch

    batch = make_batch(tag)
    push(batch)
    moment = rng.randint(0, 110)
    wait_progress(lambda: links(batch) >= moment or LabellingBatch.objects.filter(pk=batch, status="done").exists())
    kill(ctx, parent)
    ctx.landed = job_status(LabellingBatch, batch) == "running"
    recover(LabellingBatch, batch)
    reap(ctx)
    return check_tasks(batch)


def postgres_crash(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    from production.models import IngestJob

    spec = prepare_ingest(rng, tag)
    lines = spec.body.count(b"\n")
    spool(spec)
    moment = rng.uniform(0.05, 0.9)
    wait_progress(lambda: IngestJob.objects.filter(pk=spec.job, read__gte=int(moment * lines)).exists()
                  or IngestJob.objects.filter(pk=spec.job, status="done").exists())
    ctx.landed = job_status(IngestJob, spec.job) == "running"
    svc.postgres_crash_and_restart(pause=rng.uniform(0, 2))
    for conn in connections.all():
        conn.close()
    recover(IngestJob, spec.job)
    return check_ingest(spec)


def redis_restart(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    """Tasks queued (no worker running) when Redis dies and comes back; one more accepted while it is
    down (the API answers 202; its message is lost and the sweeper sends it again)."""
    from labelling.models import LabellingBatch
    from production.models import IngestJob

    ctx.worker().stop()
    specs = [prepare_ingest(rng, f"{tag}-{k}", n=3000) for k in range(3)]
    batch = make_batch(tag, n=60)
    for spec in specs[:2]:
        spool(spec)
    push(batch)
    ctx.landed = _queued() >= 3
    svc.redis_crash_and_restart(ctx.redis_port, pause=rng.uniform(0, 1))
    # while Redis is down, through the real API view: the job is kept, its message lost
    svc.redis_stop(ctx.redis_port)
    _api_spool(specs[2])
    svc.redis_start(ctx.redis_port)
    ctx.replace_worker()
    sweep()
    for spec in specs:
        wait_finished(IngestJob, spec.job)
    wait_finished(LabellingBatch, batch)
    return [v for spec in specs for v in check_ingest(spec)] + check_tasks(batch)


def _queued() -> int:
    from evalgap.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen("celery")


def _api_spool(spec: Ingest) -> None:
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    from core.roles import user_role_set

    user, _ = User.objects.get_or_create(username="faults-ingest")
    user_role_set(user=user, role="ingest")
    client = Client()
    client.force_login(user)
    # The view's enqueue fails after the publish retries (a few seconds): the job is still accepted.
    quiet = logging.getLogger("django.db.backends.base")  # it logs the failed on_commit callback: expected
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        with override_settings(INGEST_SYNC_MAX_BYTES=1000):
            response = client.post(f"/api/ingest/?source={spec.source}", data=spec.body,
                                   content_type="application/x-ndjson")
    finally:
        quiet.level = level
    assert response.status_code == 202, response.content[:300]
    spec.job = response.json()["id"]


def labelstudio_restart_push(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    from labelling.models import LabellingBatch

    batch = make_batch(tag)
    push(batch)
    moment = rng.randint(0, 110)
    wait_progress(lambda: links(batch) >= moment or LabellingBatch.objects.filter(pk=batch, status="done").exists())
    ctx.landed = job_status(LabellingBatch, batch) == "running"
    svc.labelstudio_restart()
    recover(LabellingBatch, batch, timeout=400)
    return check_tasks(batch)


def _annotate_all(project, task_ids: list[int], rng: random.Random, stop_at: int | None, restart) -> None:
    """An annotator: create, then update or delete some, through Label Studio's API; Label Studio is
    restarted at operation `stop_at`. A failed call is retried (a create that reached Label Studio
    before it went down is then a second annotation: Label Studio's export has both, so must we)."""
    from labelling.services.projects import get_client

    client = get_client()
    made = []
    ops = 0
    for tid in task_ids:
        if ops == stop_at:
            restart()
        made.append(with_ls_retry(client.create_annotation, tid, result(rng.choice(["correct", "incorrect"]))))
        ops += 1
    for ann in rng.sample(made, k=len(made) // 3):
        if ops == stop_at:
            restart()
        with_ls_retry(client.update_annotation, ann, result("partially_correct"))
        ops += 1
    for ann in rng.sample(made, k=len(made) // 6):
        if ops == stop_at:
            restart()
        with_ls_retry(client.delete_annotation, ann)
        ops += 1


def labelstudio_restart_annotation(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    from labelling.models import LabellingBatch, LabelStudioProject, TaskLink
    from labelling.services.annotations import annotations_pull

    batch = make_batch(tag, n=30)
    push(batch)
    wait_finished(LabellingBatch, batch)
    project = LabelStudioProject.objects.get(title=f"faults-{tag}")
    task_ids = list(TaskLink.objects.filter(item__batch_id=batch).order_by("id").values_list("ls_task_id", flat=True))
    total_ops = len(task_ids) + len(task_ids) // 3 + len(task_ids) // 6
    ctx.landed = True  # the restart comes between two of the annotator's calls, by construction
    _annotate_all(project, task_ids, rng, rng.randint(0, total_ops - 1), svc.labelstudio_restart)
    deliveries_settled()
    with_ls_retry(annotations_pull)
    return check_annotations(project)


def webhooks_replayed(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    """Every state each annotation went through, delivered to the real webhook endpoint again: shuffled,
    duplicated, old versions after new ones, deletions before the updates they followed."""
    import urllib.request

    from django.conf import settings

    from labelling.models import LabellingBatch, LabelStudioProject, TaskLink
    from labelling.services.annotations import annotations_pull
    from labelling.services.projects import get_client

    batch = make_batch(tag, n=20)
    push(batch)
    wait_finished(LabellingBatch, batch)
    project = LabelStudioProject.objects.get(title=f"faults-{tag}")
    client = get_client()
    task_ids = list(TaskLink.objects.filter(item__batch_id=batch).values_list("ls_task_id", flat=True))
    payloads = []

    def snapshot(action: str, ann_id: int) -> None:
        task = next(t for t in client.export_annotated(project.ls_project_id)
                    if any(a["id"] == ann_id for a in t.get("annotations") or []))
        ann = next(a for a in task["annotations"] if a["id"] == ann_id)
        payloads.append({"action": action, "annotation": ann, "task": {k: v for k, v in task.items()
                                                                       if k != "annotations"},
                         "project": {"id": project.ls_project_id}})

    made = []
    for tid in task_ids:
        ann = client.create_annotation(tid, result(rng.choice(["correct", "incorrect"])))
        made.append(ann)
        snapshot("ANNOTATION_CREATED", ann)
    for ann in rng.sample(made, k=len(made) // 2):
        for verdict in rng.sample(["correct", "incorrect", "partially_correct"], k=2):
            client.update_annotation(ann, result(verdict))
            snapshot("ANNOTATION_UPDATED", ann)
    for ann in rng.sample(made, k=len(made) // 4):
        client.delete_annotation(ann)
        payloads.append({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": ann}],
                         "project": {"id": project.ls_project_id}})
    deliveries = [p for p in payloads for _ in range(rng.randint(1, 3))]
    ctx.landed = True
    rng.shuffle(deliveries)
    url = f"http://127.0.0.1:{ctx.web.port}/api/labelling/webhook/"
    for body in deliveries:
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", settings.LABEL_STUDIO_WEBHOOK_HEADER: settings.LABEL_STUDIO_WEBHOOK_SECRET})
        urllib.request.urlopen(req, timeout=10).read()
    deliveries_settled()
    out = [f"before the pull: {v}" for v in check_annotations(project)]
    annotations_pull()
    return out + check_annotations(project)


def promote_freeze_race(ctx: Context, rng: random.Random, tag: str) -> list[str]:
    from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject
    from production.models import Session, Source, Turn
    from testsets.services.promotion import testset_promote
    from testsets.services.versions import testset_freeze

    name = f"race-{tag}"
    source = Source.objects.create(name=f"race-{tag}")
    session = Session.objects.create(source=source, external_id="s")
    batch = LabellingBatch.objects.create()
    project = LabelStudioProject.objects.create(title=f"race-{tag}", ls_project_id=10_000_000 + rng.randint(0, 10**8))
    counter = iter(range(10**6))

    def judged(k: int) -> None:
        for _ in range(k):
            i = next(counter)
            turn = Turn.objects.create(source=source, session=session, external_id=f"t-{i}", query=f"q {i}",
                                       response="r")
            item = BatchItem.objects.create(batch=batch, turn=turn, stratum="none", inclusion_probability=1.0,
                                            query_key=f"{tag}-{i}")
            Annotation.objects.create(ls_annotation_id=project.ls_project_id * 10 + i, project=project, item=item,
                                      ls_task_id=i, verdict="correct", taxonomy_version=1)

    judged(5)
    testset_promote(name=name)
    errors = []

    def run(fn, delay, **kw):
        time.sleep(delay)
        try:
            fn(**kw)
        except Exception as e:  # noqa: BLE001 - a freeze with no draft left is a fine outcome
            if "no draft" not in str(e):
                errors.append(f"{fn.__name__}: {str(e).splitlines()[0]}")
        finally:
            close_old_connections()
            connections.close_all()

    ctx.landed = True
    for _ in range(4):
        judged(rng.randint(1, 4))
        threads = [threading.Thread(target=run, args=(testset_promote, rng.uniform(0, 0.05)), kwargs={"name": name}),
                   threading.Thread(target=run, args=(testset_freeze, rng.uniform(0, 0.05)), kwargs={"name": name})]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # The stand-in project exists in no Label Studio: gone, with its annotations, before any pull sees it
    # (the test set keeps what was promoted).
    project.delete()
    return errors


SCENARIOS = {
    "kill -9 worker child mid-ingest (poison lines)": lambda c, r, t: ingest_kill(c, r, t, parent=False),
    "kill -9 worker parent mid-ingest (poison lines)": lambda c, r, t: ingest_kill(c, r, t, parent=True),
    "kill -9 worker child mid-push": lambda c, r, t: push_kill(c, r, t, parent=False),
    "kill -9 worker parent mid-push": lambda c, r, t: push_kill(c, r, t, parent=True),
    "PostgreSQL crash (-m immediate) mid-ingest": postgres_crash,
    "Redis restart with tasks queued": redis_restart,
    "Label Studio restart mid-push": labelstudio_restart_push,
    "Label Studio restart mid-annotation": labelstudio_restart_annotation,
    "webhooks replayed, reordered, duplicated": webhooks_replayed,
    "promote racing freeze": promote_freeze_race,
}


def _llm_scenarios() -> None:
    from . import llm_scenarios

    SCENARIOS.update(llm_scenarios.SCENARIOS)


_llm_scenarios()


def run_one(ctx: Context, name: str, seed: int, run: int) -> list[str]:
    """One run of one scenario, then the invariants every run must leave true."""
    from django.utils import timezone as dj_timezone

    rng = random.Random(f"{seed}:{name}:{run}")
    # The moments come from the seed; the names are new on every invocation, since Label Studio keeps
    # its projects from one suite to the next (one with the same title would be adopted).
    tag = f"{seed}-{list(SCENARIOS).index(name)}-{run}-{NONCE}"
    since = dj_timezone.now()
    ctx.landed = False
    try:
        violations = SCENARIOS[name](ctx, rng, tag)
    except Exception as e:  # noqa: BLE001 - a scenario that cannot finish is a violation, with its reason
        violations = [f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]]
        if not ctx.workers or ctx.worker().proc.poll() is not None:
            ctx.replace_worker()
    return violations + no_job_running(since) + frozen_versions_hash()
