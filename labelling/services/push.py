"""Push a batch to Label Studio: exactly one task per item, however often it runs or crashes.

Label Studio does not deduplicate imports. So each chunk is marked as attempted (committed)
before the import request, and its task links are saved right after. An item attempted but
unlinked — the push died between the two — is looked up in Label Studio by (source, evalgap_id)
before anything is imported again; duplicates found there are deleted.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.utils import timezone

from production.models import Turn

from core.pii import detect, pseudonym, redact, redact_obj

from ..models import BatchItem, LabellingBatch, TaskLink
from ..selectors import turns_before
from .projects import get_client, project_ensure

SIGNAL_LABELS = {
    "rephrased": "user re-asked the same thing", "followed_up": "user asked a follow-up",
    "abandoned": "user left after this answer", "copied": "user copied the answer",
    "thumbs_up": "thumbs up", "thumbs_down": "thumbs down", "escalated": "escalated to a human",
    "human_override": "a human agent replaced the answer",
}


def _signals_text(signals, clean) -> str:
    if signals is None:
        return "No signals detected."
    lines = []
    for name, label in SIGNAL_LABELS.items():
        if not getattr(signals, name):
            continue
        ev = signals.evidence.get(name)
        detail = ""
        if isinstance(ev, dict) and "next_query" in ev:
            detail = f' — next query "{clean(_whole_words(ev["next_query"], 300))}" ' \
                     f'{ev.get("gap_seconds") or 0:.0f} s later (similarity {ev["similarity"]:.2f})'
        elif isinstance(ev, list) and ev and ev[-1].get("reason"):
            detail = f" — {clean(str(ev[-1]['reason']))}"
        lines.append(f"• {label}{detail}")
    return "\n".join(lines) or "No signals detected."


def _whole_words(text: str, cut_at: int) -> str:
    """Evidence keeps the first `cut_at` characters of the next query: a word cut there (half an
    e-mail address no pattern would recognise) is dropped rather than shown."""
    if len(text) < cut_at:
        return text
    head, _, _ = text.rpartition(" ")
    return (head or "") + " …"


def _pseudonym_key() -> bytes:
    return settings.PII_PSEUDONYM_KEY.encode()


def task_evalgap_id(turn: Turn) -> str:
    """The turn id as Label Studio sees it: the source's own id, unless it carries personal data
    ("jane@example.com-1"), which then goes as a keyed pseudonym. Reconciliation after a crash and
    the annotation fallback compute the same value, so they still find the task."""
    if turn.source.redact_pii and detect(turn.external_id):
        return pseudonym(f"{turn.source.name}\x1f{turn.external_id}", key=_pseudonym_key(), kind="turn")
    return turn.external_id


def task_payload(item: BatchItem, history: list[Turn]) -> dict:
    turn = item.turn
    clean = redact if turn.source.redact_pii else (lambda text: text)
    clean_obj = redact_obj if turn.source.redact_pii else (lambda obj: obj)
    key = _pseudonym_key()
    signals = getattr(turn, "signals", None)
    conversation = []
    for prev in history:
        conversation += [{"role": "user", "content": clean(prev.query)},
                         {"role": "assistant", "content": clean(prev.response) or "(empty answer)"}]
    if not conversation:
        conversation = [{"role": "note", "content": "(first turn of the conversation)"}]
    contexts = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in clean_obj(turn.contexts or [])]
    return {"data": {
        # evalgap_id and source are what reconciliation keys on: kept as they are (see task_evalgap_id).
        "evalgap_id": task_evalgap_id(turn),
        "source": turn.source.name,
        # Session and user ids are always pseudonyms: stable, so turns of one session still group.
        "session_id": pseudonym(f"{turn.source.name}\x1f{turn.session.external_id}", key=key, kind="session"),
        "user_id": pseudonym(f"{turn.source.name}\x1f{turn.user_id}", key=key, kind="user") if turn.user_id else "",
        "timestamp": turn.timestamp.isoformat() if turn.timestamp else "",
        "model": clean(turn.model),
        "conversation": conversation,
        "query": clean(turn.query),
        "response": clean(turn.response) or "(empty answer)",
        "contexts_text": "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))
        or "(no retrieved contexts)",
        "signals_text": _signals_text(signals, clean),
        # Label Studio requires every $key of the config in every task, so this is always sent.
        "reference_answer_prefill": clean(_prefill(turn, signals)),
        "stratum": item.stratum,
        "inclusion_probability": item.inclusion_probability,
    }}


def _prefill(turn: Turn, signals) -> str:
    """What the reference answer box starts with: a human agent's answer, else a generated case's."""
    if signals is not None and signals.corrected_response:
        return signals.corrected_response
    return (turn.metadata or {}).get("generation", {}).get("reference_answer") or ""


def _reconcile(client, project, items: list[BatchItem]) -> int:
    """Link attempted items that did reach Label Studio; delete any second copy. Returns links made."""
    found = client.task_ids_by_key(project.ls_project_id, ("source", "evalgap_id"))
    links = []
    for item in items:
        ids = sorted(found.get((item.turn.source.name, task_evalgap_id(item.turn)), []))
        if not ids:
            continue
        for extra in ids[1:]:
            client.delete_task(extra)
        links.append(TaskLink(item=item, project=project, ls_task_id=ids[0]))
    TaskLink.objects.bulk_create(links)
    return len(links)


def _load_items(ids: list[int]) -> list[BatchItem]:
    return list(BatchItem.objects.filter(pk__in=ids)
                .select_related("turn__source", "turn__session", "turn__signals").order_by("id"))


def batch_push(*, batch_id: int, on_chunk_imported=None) -> dict:
    """`on_chunk_imported` is a test seam: called after an import, before its links are saved."""
    batch = LabellingBatch.objects.get(pk=batch_id)
    client = get_client()
    project = project_ensure(client=client, title=batch.project_title or None)
    LabellingBatch.objects.filter(pk=batch_id).update(status=LabellingBatch.Status.RUNNING, error="")
    try:
        already = TaskLink.objects.filter(item__batch=batch).count()
        pending = list(BatchItem.objects.filter(batch=batch, task__isnull=True).order_by("id")
                       .values_list("id", "push_attempted_at"))
        attempted = [pk for pk, at in pending if at or project.needs_reconcile]
        if attempted:
            already += _reconcile(client, project, _load_items(attempted))
            linked = set(TaskLink.objects.filter(item__in=attempted).values_list("item_id", flat=True))
            pending = [(pk, at) for pk, at in pending if pk not in linked]
        ids = [pk for pk, _ in pending]
        chunk_size = settings.LABELLING_PUSH_CHUNK
        pushed = 0
        # One import request in flight on a second thread while this one loads and renders the
        # next chunk: Label Studio's server time then hides most of ours.
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = None  # (start, chunk items, future of task ids)
            # A small first chunk gets Label Studio working sooner; the rest overlap with it.
            first = min(chunk_size, 500)
            for start in [0, *range(first, len(ids), chunk_size)] if ids else []:
                chunk = _load_items(ids[start:start + (first if start == 0 else chunk_size)])
                histories = turns_before(chunk)
                payload = [task_payload(i, histories[i.pk]) for i in chunk]
                BatchItem.objects.filter(pk__in=[i.pk for i in chunk]).update(push_attempted_at=timezone.now())
                if in_flight:
                    pushed += _link(project, *in_flight, on_chunk_imported)
                in_flight = (start, chunk, pool.submit(client.import_tasks, project.ls_project_id, payload))
            if in_flight:
                pushed += _link(project, *in_flight, on_chunk_imported)
    except BaseException as e:
        LabellingBatch.objects.filter(pk=batch_id).update(status=LabellingBatch.Status.FAILED, error=str(e)[:2000])
        raise
    if project.needs_reconcile:
        type(project).objects.filter(pk=project.pk).update(needs_reconcile=False)
    LabellingBatch.objects.filter(pk=batch_id).update(status=LabellingBatch.Status.DONE, pushed_at=timezone.now())
    return {"project_id": project.ls_project_id, "pushed": pushed, "already_present": already}


def _link(project, start: int, chunk: list[BatchItem], future, on_chunk_imported) -> int:
    task_ids = future.result()
    if on_chunk_imported:
        on_chunk_imported(start)
    TaskLink.objects.bulk_create([TaskLink(item=i, project=project, ls_task_id=t) for i, t in zip(chunk, task_ids)])
    return len(chunk)


def batches_unpushed() -> list[int]:
    return list(LabellingBatch.objects.exclude(status=LabellingBatch.Status.DONE).values_list("id", flat=True))
