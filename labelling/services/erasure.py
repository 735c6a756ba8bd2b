"""Erasure of a production subject, labelling's part (production.dispatch.subject_erased): their Label
Studio tasks are deleted there, and annotators' free text about their turns (which often quotes them)
is emptied here. Verdicts and failure modes stay: they are labels, not the subject's data.

Task links are kept, pointing at deleted tasks, so that a later push of the batch counts the item as
present and never sends the (now empty) turn again.
"""
from __future__ import annotations

from django.db import transaction

from ..models import Annotation, BatchItem, PairwiseTask, Resolution, TaskLink
from .projects import get_client


def _delete_tasks(task_ids: list[int]) -> int:
    if not task_ids:
        return 0  # no Label Studio needed when nothing was ever sent
    client = get_client()
    for task_id in task_ids:
        client.delete_task(task_id)  # a task already gone counts as deleted (404 is success)
    return len(task_ids)


@transaction.atomic
def turns_erase(*, turn_ids: list[int]) -> dict:
    items = BatchItem.objects.filter(turn_id__in=turn_ids)
    task_ids = list(TaskLink.objects.filter(item__in=items).values_list("ls_task_id", flat=True))
    deleted = _delete_tasks(task_ids)
    annotations = list(Annotation.objects.filter(item__in=items))
    for a in annotations:
        a.reference_answer = a.notes = a.proposed_failure_mode = ""
        # Label Studio's own result keeps the text areas' words: only the choices (labels) stay.
        a.result = [r for r in a.result or [] if isinstance(r, dict) and r.get("type") != "textarea"]
    Annotation.objects.bulk_update(annotations, ["reference_answer", "notes", "proposed_failure_mode", "result"],
                                   batch_size=500)
    Resolution.objects.filter(item__in=items).update(reference_answer="")
    return {"label_studio_tasks_deleted": deleted, "annotations_emptied": len(annotations)}


@transaction.atomic
def pairwise_tasks_erase(*, keys: list[str]) -> dict:
    """Pairwise tasks (the caller's keys) about an erased subject: deleted in Label Studio; the rows stay,
    without their data, so a re-push does not send them again."""
    tasks = PairwiseTask.objects.filter(key__in=keys).exclude(data={})
    deleted = _delete_tasks([t for t in tasks.values_list("ls_task_id", flat=True) if t is not None])
    emptied = tasks.update(data={})
    return {"label_studio_pairwise_tasks_deleted": deleted, "pairwise_tasks_emptied": emptied}
