"""Pairwise comparisons in Label Studio, for any app that needs people to pick between two answers
(the shadow judge's monthly audit). The caller gives each comparison a stable key; labelling sends
it once, and the picks come back by the same webhook + pull path as every other annotation.

Labelling knows nothing of what the two answers are or which one is whose: keeping that (and the
side each answer was shown on) is the caller's business.
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.pii import redact

from ..label_config import PAIRWISE_PICKS, build_pairwise_config, parse_pairwise_result
from ..models import LabelStudioProject, PairwiseAnnotation, PairwiseTask
from .projects import get_client, webhook_url

KEY_FIELD = "evalgap_key"


class PairwiseError(Exception):
    """The request cannot be done as asked (a project of the wrong kind, a bad task)."""


def pairwise_project_ensure(*, client, title: str) -> LabelStudioProject:
    """The pairwise project of that title, created in Label Studio (with its webhook) when missing."""
    project = LabelStudioProject.objects.filter(title=title).first()
    if project is not None and project.kind != LabelStudioProject.Kind.PAIRWISE:
        raise PairwiseError(f"project {title!r} exists and is not a pairwise project")
    if project is None:
        config = build_pairwise_config()
        ls_id = client.find_project(title)
        adopted = ls_id is not None  # left by a run whose database was lost: adopt, never duplicate
        if not adopted:
            ls_id = client.create_project(title, config, description="Two answers to one query: pick the better one.")
        project = LabelStudioProject.objects.create(
            title=title, ls_project_id=ls_id, kind=LabelStudioProject.Kind.PAIRWISE, needs_reconcile=adopted,
            config_sha256=hashlib.sha256(config.encode()).hexdigest(), config_synced_at=timezone.now())
    if settings.LABEL_STUDIO_WEBHOOK_SECRET and settings.EVALGAP_PUBLIC_URL and project.webhook_id is None:
        project.webhook_id = client.ensure_webhook(project.ls_project_id, webhook_url(),
                                                   settings.LABEL_STUDIO_WEBHOOK_SECRET,
                                                   header_name=settings.LABEL_STUDIO_WEBHOOK_HEADER)
        project.save(update_fields=["webhook_id"])
    return project


def _task_data(task: dict, clean) -> dict:
    for field in ("key", "query", "answer_a", "answer_b"):
        if not isinstance(task.get(field), str):
            raise PairwiseError(f"pairwise task: {field!r} must be a string")
    conversation = [{"role": str(m.get("role", "")), "content": clean(str(m.get("content", "")))}
                    for m in task.get("conversation") or []]
    contexts = [clean(str(c)) for c in task.get("contexts") or []]
    return {
        KEY_FIELD: task["key"],
        # Label Studio needs every $key of the config in every task, so the empty cases say so.
        "conversation": conversation or [{"role": "note", "content": "(first turn of the conversation)"}],
        "query": clean(task["query"]),
        "contexts_text": "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts)) or "(no retrieved contexts)",
        "answer_a": clean(task["answer_a"]) or "(empty answer)",
        "answer_b": clean(task["answer_b"]) or "(empty answer)",
    }


def pairwise_tasks_push(*, title: str, tasks: list[dict]) -> dict:
    """Send comparisons to the pairwise project `title`, each exactly once however often this runs.

    `tasks`: [{key, query, answer_a, answer_b, conversation: [{role, content}], contexts: [str],
    redact: bool (default True)}]. A key already known to the project is not sent again (its first
    content stays). Returns {"project_id", "pushed", "already_present", "task_ids": {key: ls id}}.
    """
    client = get_client()
    project = pairwise_project_ensure(client=client, title=title)
    known = set(PairwiseTask.objects.filter(project=project, key__in=[t.get("key") for t in tasks])
                .values_list("key", flat=True))
    new = []
    for t in tasks:
        if t.get("key") in known:
            continue
        clean = redact if t.get("redact", True) else (lambda text: text)
        new.append(PairwiseTask(project=project, key=t["key"], data=_task_data(t, clean)))
        known.add(t["key"])
    PairwiseTask.objects.bulk_create(new)
    keys = [t["key"] for t in tasks]
    pending = list(PairwiseTask.objects.filter(project=project, key__in=keys, ls_task_id__isnull=True).order_by("id"))
    attempted = [t for t in pending if t.push_attempted_at or project.needs_reconcile]
    already = PairwiseTask.objects.filter(project=project, key__in=keys, ls_task_id__isnull=False).count()
    if attempted:
        # The last push may have died between Label Studio's import and our links: look first.
        found = client.task_ids_by_key(project.ls_project_id, (KEY_FIELD,))
        for task in attempted:
            ids = sorted(found.get((task.key,), []))
            if ids:
                for extra in ids[1:]:
                    client.delete_task(extra)
                task.ls_task_id = ids[0]
                task.save(update_fields=["ls_task_id"])
                already += 1
        pending = [t for t in pending if t.ls_task_id is None]
    pushed = 0
    if pending:
        PairwiseTask.objects.filter(pk__in=[t.pk for t in pending]).update(push_attempted_at=timezone.now())
        ids = client.import_tasks(project.ls_project_id, [{"data": t.data} for t in pending])
        for task, ls_id in zip(pending, ids):
            task.ls_task_id = ls_id
        PairwiseTask.objects.bulk_update(pending, ["ls_task_id"])
        pushed = len(pending)
    if project.needs_reconcile:
        LabelStudioProject.objects.filter(pk=project.pk).update(needs_reconcile=False)
    task_ids = dict(PairwiseTask.objects.filter(project=project, key__in=keys).values_list("key", "ls_task_id"))
    return {"project_id": project.ls_project_id, "pushed": pushed, "already_present": already, "task_ids": task_ids}


def _task_for(project: LabelStudioProject, task: dict) -> PairwiseTask | None:
    found = PairwiseTask.objects.filter(project=project, ls_task_id=task.get("id")).first()
    if found is None:
        key = (task.get("data") or {}).get(KEY_FIELD)
        found = PairwiseTask.objects.filter(project=project, key=key).first() if key else None
    return found


def pairwise_annotation_upsert(*, project: LabelStudioProject, task: dict, ann: dict) -> str:
    """Store one pick as Label Studio has it now: 'created', 'updated', 'unchanged' or 'unknown'
    (a task evalgap did not send)."""
    ptask = _task_for(project, task)
    if ptask is None:
        return "unknown"
    parsed = parse_pairwise_result(ann.get("result") or [])
    pick = parsed["pick"]
    # Label Studio does not check values against the config; an unknown pick is kept, not applied.
    invalid = "" if pick in PAIRWISE_PICKS else f"pick: {pick!r} is not one of {', '.join(PAIRWISE_PICKS)}"
    completed_by = ann.get("completed_by")
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    fields = {
        "task": ptask, "annotator": str(completed_by or ""), "pick": pick if not invalid else "",
        "notes": parsed["notes"], "result": ann.get("result") or [], "invalid_reason": invalid,
        "was_cancelled": bool(ann.get("was_cancelled")), "lead_time": ann.get("lead_time"),
        "ls_updated_at": parse_datetime(ann["updated_at"]) if ann.get("updated_at") else None,
        "deleted": False, "deleted_at": None,
    }
    existing = PairwiseAnnotation.objects.filter(ls_annotation_id=ann["id"]).first()
    if existing is None:
        PairwiseAnnotation.objects.create(ls_annotation_id=ann["id"], **fields)
        return "created"
    if all(getattr(existing, k) == v for k, v in fields.items()):
        return "unchanged"
    for k, v in fields.items():
        setattr(existing, k, v)
    existing.save()
    return "updated"


def pairwise_annotations_mark_deleted(*, ids: list[int]) -> int:
    return PairwiseAnnotation.objects.filter(ls_annotation_id__in=ids, deleted=False).update(
        deleted=True, deleted_at=timezone.now())


def pairwise_project_pull(*, client, project: LabelStudioProject) -> dict:
    """Reconcile one pairwise project from Label Studio's export (a missed webhook loses nothing)."""
    out = {"annotations": 0, "created": 0, "updated": 0, "deleted": 0}
    tasks = client.export_annotated(project.ls_project_id)
    seen: set[int] = set()
    with transaction.atomic():
        for task in tasks:
            for ann in task.get("annotations") or []:
                outcome = pairwise_annotation_upsert(project=project, task=task, ann=ann)
                if outcome == "unknown":
                    continue
                seen.add(ann["id"])
                out["annotations"] += 1
                out["created"] += outcome == "created"
                out["updated"] += outcome == "updated"
        gone = (PairwiseAnnotation.objects.filter(task__project=project, deleted=False)
                .exclude(ls_annotation_id__in=seen).values_list("ls_annotation_id", flat=True))
        out["deleted"] += pairwise_annotations_mark_deleted(ids=list(gone))
    return out
