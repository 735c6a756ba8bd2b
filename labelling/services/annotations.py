"""Judgements back from Label Studio: by webhook (fast) and by pull (complete). Both upsert on
Label Studio's annotation id, so any order and any repetition give the same rows."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from taxonomy import services as taxonomy_services
from taxonomy.selectors import current_version, known_codes, resolve_code

from ..label_config import parse_annotation_result, validate_annotation
from ..models import Annotation, BatchItem, LabelStudioProject, TaskLink, WebhookDelivery
from .projects import get_client


@dataclass
class PullResult:
    annotations: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict:
        return {"annotations": self.annotations, "created": self.created, "updated": self.updated,
                "deleted": self.deleted}


class UnknownTask(Exception):
    """An annotation on a task evalgap did not create (or no longer knows)."""


def _item_for(project: LabelStudioProject, task: dict) -> BatchItem:
    link = TaskLink.objects.filter(project=project, ls_task_id=task["id"]).select_related("item").first()
    if link:
        return link.item
    data = task.get("data") or {}
    item = BatchItem.objects.filter(turn__source__name=data.get("source"),
                                    turn__external_id=data.get("evalgap_id")).first()
    if item is None and str(data.get("evalgap_id", "")).startswith("turn-"):
        # A turn id that carried personal data went as a pseudonym (push.task_evalgap_id). Only an
        # item whose push died before linking lands here, so the unlinked items are few.
        from .push import task_evalgap_id
        item = next((i for i in BatchItem.objects.filter(turn__source__name=data.get("source"), task__isnull=True)
                     .select_related("turn__source") if task_evalgap_id(i.turn) == data["evalgap_id"]), None)
    if item is None:
        raise UnknownTask(f"task {task['id']} (evalgap_id {data.get('evalgap_id')!r}) is not an evalgap item")
    return item


def annotation_upsert(*, project: LabelStudioProject, task: dict, ann: dict, codes: set[str]) -> str:
    """Store one annotation as Label Studio has it now. Returns 'created', 'updated' or 'unchanged'."""
    item = _item_for(project, task)
    parsed = parse_annotation_result(ann.get("result") or [])
    try:
        validate_annotation(parsed, codes)
        invalid = ""
    except ValueError as e:
        invalid = str(e)  # kept for a person to look at, not silently dropped
    completed_by = ann.get("completed_by")
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    fields = {
        "project": project, "item": item, "ls_task_id": task["id"], "annotator": str(completed_by or ""),
        "verdict": parsed["verdict"] or "",
        # Codes merged away since the config was built count as their survivor.
        "failure_modes": list(dict.fromkeys(resolve_code(c) for c in parsed["failure_modes"])),
        "reference_answer": parsed["reference_answer"], "proposed_failure_mode": parsed["proposed_failure_mode"],
        "notes": parsed["notes"], "lead_time": ann.get("lead_time"), "was_cancelled": bool(ann.get("was_cancelled")),
        "ls_created_at": parse_datetime(ann["created_at"]) if ann.get("created_at") else None,
        "ls_updated_at": parse_datetime(ann["updated_at"]) if ann.get("updated_at") else None,
        "result": ann.get("result") or [], "invalid_reason": invalid, "deleted": False, "deleted_at": None,
    }
    if parsed["proposed_failure_mode"]:
        taxonomy_services.proposal_submit(text=parsed["proposed_failure_mode"], ref=f"annotation:{ann['id']}")
    existing = Annotation.objects.filter(ls_annotation_id=ann["id"]).first()
    if existing is None:
        Annotation.objects.create(ls_annotation_id=ann["id"], taxonomy_version=current_version(), **fields)
        return "created"
    if all(getattr(existing, k) == v for k, v in fields.items() if k not in ("project", "item")):
        return "unchanged"
    for k, v in fields.items():
        setattr(existing, k, v)
    existing.taxonomy_version = current_version()
    existing.save()
    return "updated"


def annotations_mark_deleted(*, ids: list[int]) -> int:
    return Annotation.objects.filter(ls_annotation_id__in=ids, deleted=False).update(deleted=True,
                                                                                     deleted_at=timezone.now())


def annotations_pull() -> dict:
    """Reconcile every project from Label Studio's export: a missed webhook never loses a judgement."""
    client = get_client()
    codes = known_codes()
    result = PullResult()
    for project in LabelStudioProject.objects.all():
        if project.kind == LabelStudioProject.Kind.PAIRWISE:
            from .pairwise import pairwise_project_pull

            for key, n in pairwise_project_pull(client=client, project=project).items():
                setattr(result, key, getattr(result, key) + n)
            continue
        tasks = client.export_annotated(project.ls_project_id)
        seen: set[int] = set()
        with transaction.atomic():
            for task in tasks:
                for ann in task.get("annotations") or []:
                    try:
                        outcome = annotation_upsert(project=project, task=task, ann=ann, codes=codes)
                    except UnknownTask:
                        continue
                    seen.add(ann["id"])
                    result.annotations += 1
                    result.created += outcome == "created"
                    result.updated += outcome == "updated"
            gone = (Annotation.objects.filter(project=project, deleted=False).exclude(ls_annotation_id__in=seen)
                    .values_list("ls_annotation_id", flat=True))
            result.deleted += annotations_mark_deleted(ids=list(gone))
    return result.as_dict()


def webhook_delivery_record(*, payload: dict) -> WebhookDelivery:
    return WebhookDelivery.objects.create(action=str(payload.get("action", ""))[:50], payload=payload)


def webhook_delivery_process(*, delivery_id: int) -> None:
    # Claim it: a redelivered task does nothing twice.
    if not WebhookDelivery.objects.filter(pk=delivery_id, processed_at__isnull=True).update(processed_at=timezone.now()):
        return
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    payload = delivery.payload
    try:
        project_id = (payload.get("project") or {}).get("id")
        project = LabelStudioProject.objects.filter(ls_project_id=project_id).first()
        if project is None:
            raise UnknownTask(f"project {project_id} is not an evalgap project")
        pairwise = project.kind == LabelStudioProject.Kind.PAIRWISE
        if delivery.action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            if pairwise:
                from .pairwise import pairwise_annotation_upsert

                if pairwise_annotation_upsert(project=project, task=payload["task"],
                                              ann=payload["annotation"]) == "unknown":
                    raise UnknownTask(f"task {payload['task'].get('id')} is not an evalgap pairwise task")
            else:
                annotation_upsert(project=project, task=payload["task"], ann=payload["annotation"],
                                  codes=known_codes())
        elif delivery.action == "ANNOTATIONS_DELETED":
            ids = [a["id"] for a in payload.get("annotations") or []]
            if pairwise:
                from .pairwise import pairwise_annotations_mark_deleted

                pairwise_annotations_mark_deleted(ids=ids)
            else:
                annotations_mark_deleted(ids=ids)
    except (UnknownTask, KeyError, TypeError) as e:
        WebhookDelivery.objects.filter(pk=delivery_id).update(error=str(e)[:2000])


def annotations_remap_code(*, old: str, new: str) -> int:
    """After a merge: labels with `old` now say `new` (Label Studio's copy keeps `old`; it is
    re-mapped again on every read by resolve_code)."""
    changed = []
    for ann in Annotation.objects.exclude(failure_modes=[]).only("id", "failure_modes").iterator():
        if old in ann.failure_modes:
            ann.failure_modes = list(dict.fromkeys(new if c == old else c for c in ann.failure_modes))
            changed.append(ann)
    Annotation.objects.bulk_update(changed, ["failure_modes"], batch_size=500)
    return len(changed)
