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
    t0 = time.perf_counter()
    resp = httpx.post(f"{settings.LABEL_STUDIO_URL}/api/projects/{raw_project}/import",
                      params={"return_task_ids": "true"}, content=body, timeout=600,
                      headers={"Content-Type": "application/json",
                               "Authorization": f"Token {settings.LABEL_STUDIO_API_KEY}"})
    raw_s = time.perf_counter() - t0
    assert resp.status_code == 201 and len(resp.json()["task_ids"]) == len(payload), resp.text[:300]

    with override_settings(LABEL_STUDIO_PROJECT_TITLE=f"bench-evalgap-{uuid.uuid4().hex[:8]}"):
        # Both sides start from an existing project: the baseline's was created before its timer too.
        project_ensure(client=client)
        t0 = time.perf_counter()
        first = push.batch_push(batch_id=batch.pk)
        push_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = push.batch_push(batch_id=batch.pk)
        repush_s = time.perf_counter() - t0
    print(json.dumps({"tasks": len(payload), "payload_mb": round(len(json.dumps(payload)) / 1e6, 1),
                      "ls_bulk_import_s": round(raw_s, 2), "evalgap_push_s": round(push_s, 2),
                      "ratio": round(push_s / raw_s, 2), "repush_s": round(repush_s, 3),
                      "push": first, "repush": again}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10_000)
