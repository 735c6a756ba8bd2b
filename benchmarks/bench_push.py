"""Push 10,000 tasks through evalgap vs Label Studio's own bulk import of the same task JSON,
then a re-push of the unchanged batch. Run through `make bench` (Postgres and Label Studio up)."""
import json
import os
import sys
import time
import uuid
from pathlib import Path

import django
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.test import override_settings  # noqa: E402

from labelling.models import BatchItem, LabellingBatch  # noqa: E402
from labelling.selectors import turns_before  # noqa: E402
from labelling.services import push  # noqa: E402
from labelling.services.projects import current_config, get_client, project_ensure  # noqa: E402
from labelling.services.selection import query_key  # noqa: E402
from production.models import Turn  # noqa: E402
from production.services.ingest import turns_ingest_path  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from proc_cpu import cpu_of, postgres_cpu  # noqa: E402


def servers() -> dict:
    """Where the CPU of a push goes besides this process: Label Studio's process group (its pid file
    holds the group leader) and the PostgreSQL cluster on DATABASE's port (postmaster and backends)."""
    ls_port = settings.LABEL_STUDIO_URL.rsplit(":", 1)[-1].strip("/")
    ls_pgid = (REPO / ".run" / f"labelstudio-{ls_port}.pid").read_text().strip()
    return {"label_studio": cpu_of(lambda pid, f: f[2] == ls_pgid),
            "postgres": postgres_cpu(settings.DATABASES["default"]["PORT"])}


def cpu_delta(before: dict, after: dict) -> dict:
    return {k: round(after[k] - before[k], 2) for k in before}


def timed_imports(spans: list) -> None:
    """Record when each of the push's import requests starts and ends (the benchmark's own wrapper):
    the wall clock of a push minus Label Studio's busy time is what evalgap adds."""
    from labelling.client import LabelStudioClient

    real = LabelStudioClient.import_tasks

    def import_tasks(self, project_id, tasks, *args, **kwargs):
        t = time.perf_counter()
        try:
            return real(self, project_id, tasks, *args, **kwargs)
        finally:
            spans.append((t, time.perf_counter(), len(tasks)))

    LabelStudioClient.import_tasks = import_tasks


def ls_import(project_id: int, body: bytes) -> httpx.Response:
    """Label Studio's own bulk import: task JSON already serialised, one POST (as with curl)."""
    return httpx.post(f"{settings.LABEL_STUDIO_URL}/api/projects/{project_id}/import",
                      params={"return_task_ids": "true"}, content=body, timeout=600,
                      headers={"Content-Type": "application/json",
                               "Authorization": f"Token {settings.LABEL_STUDIO_API_KEY}"})


def main(log: str, n: int = 10_000) -> None:
    source = f"bench-push-{uuid.uuid4().hex[:8]}"  # a fresh source: run again, it pushes n new turns
    turns_ingest_path(source_name=source, path=log)
    batch = LabellingBatch.objects.create(month="bench")
    BatchItem.objects.bulk_create([
        BatchItem(batch=batch, turn_id=tid, stratum="none", inclusion_probability=1.0, query_key=query_key(q))
        for tid, q in Turn.objects.filter(source__name=source, labelling_item__isnull=True)
        .order_by("id").values_list("id", "query")[:n]
    ], batch_size=2000)
    items = list(BatchItem.objects.filter(batch=batch).select_related("turn__source", "turn__session",
                                                                       "turn__signals").order_by("id"))
    histories = turns_before(items)
    payload = [push.task_payload(i, histories[i.pk]) for i in items]
    client = get_client()

    raw_project = client.create_project(f"bench-raw-{uuid.uuid4().hex[:8]}", current_config())
    body = json.dumps(payload).encode()
    # Label Studio's own bulk import: the task JSON, already serialised, in one POST (as with curl).
    cpu0 = {**servers(), "this_process": time.process_time()}
    t0 = time.perf_counter()
    resp = ls_import(raw_project, body)
    raw_s = time.perf_counter() - t0
    raw_cpu = cpu_delta(cpu0, {**servers(), "this_process": time.process_time()})
    assert resp.status_code == 201 and len(resp.json()["task_ids"]) == len(payload), resp.text[:300]

    # The same tasks in four requests of the sizes a push sends (pre-serialised, one after another):
    # what Label Studio's cost per request adds, apart from anything evalgap does.
    split_project = client.create_project(f"bench-split-{uuid.uuid4().hex[:8]}", current_config())
    cuts = [0, *(round(len(payload) * f) for f in (0.04, 0.16, 0.44)), len(payload)]
    bodies = [json.dumps(payload[a:b]).encode() for a, b in zip(cuts, cuts[1:])]
    t0 = time.perf_counter()
    for part in bodies:
        resp = ls_import(split_project, part)
        assert resp.status_code == 201, resp.text[:300]
    split_s = time.perf_counter() - t0

    with override_settings(LABEL_STUDIO_PROJECT_TITLE=f"bench-evalgap-{uuid.uuid4().hex[:8]}"):
        # Both sides start from an existing project: the baseline's was created before its timer too.
        project_ensure(client=client)
        spans: list = []
        timed_imports(spans)
        cpu0 = {**servers(), "this_process": time.process_time()}
        p0 = time.perf_counter()
        first = push.batch_push(batch_id=batch.pk)
        p1 = time.perf_counter()
        push_s = p1 - p0
        push_cpu = cpu_delta(cpu0, {**servers(), "this_process": time.process_time()})
        t0 = time.perf_counter()
        again = push.batch_push(batch_id=batch.pk)
        repush_s = time.perf_counter() - t0
    print(json.dumps({"tasks": len(payload), "payload_mb": round(len(json.dumps(payload)) / 1e6, 1),
                      "ls_bulk_import_s": round(raw_s, 2), "evalgap_push_s": round(push_s, 2),
                      "ratio": round(push_s / raw_s, 2), "repush_s": round(repush_s, 3),
                      "ls_import_in_4_requests_s": round(split_s, 2),
                      # CPU seconds of each side during each timer: what 2 cores must fit
                      "cpu_ls_bulk_import": raw_cpu, "cpu_evalgap_push": push_cpu,
                      # each import of the push: [tasks, started, ended] in seconds from the push's start;
                      # before the first and after the last, and between imports, Label Studio waits for us
                      "imports": [[k, round(a - p0, 2), round(b - p0, 2)] for a, b, k in spans],
                      "push_before_first_import_s": round(spans[0][0] - p0, 2),
                      "push_after_last_import_s": round(p1 - spans[-1][1], 2),
                      "push_between_imports_s": round(sum(b[0] - a[1] for a, b in zip(spans, spans[1:])), 2),
                      "load_average_1m": round(os.getloadavg()[0], 2),
                      "push": first, "repush": again}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10_000)
