"""Push a batch to Label Studio: exactly one task per item, however often it runs or crashes.

Label Studio does not deduplicate imports. So each chunk is marked as attempted (committed)
before the import request, and its task links are saved right after. An item attempted but
unlinked — the push died between the two — is looked up in Label Studio by (source, evalgap_id)
before anything is imported again; duplicates found there are deleted.

Speed: the tasks are made from plain rows (one query per chunk for the items and one for the
conversations shown with them; building model instances cost as much as Label Studio's import of
the same tasks), and the import of one chunk runs on a second thread while the next is made. The
chunks grow from a small first one, so Label Studio starts at once and our work on each chunk hides
behind its work on the one before.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import orjson

from django.conf import settings
from django.db import connection
from django.utils import timezone

from production.models import Turn
from production.signal_definitions import SIGNAL_DESCRIPTIONS

from core.jobs import TRANSIENT_ERRORS, job_fail, job_finish, job_held, job_progress, job_release
from core.pii import detect, pseudonym, redact, redact_obj

from ..client import LabelStudioUnavailable
from ..models import BatchItem, LabellingBatch, TaskLink
from .projects import get_client, project_ensure


def _signals_text(signals: dict | None, clean) -> str:
    """`signals`: the turn's flags by name and their `evidence`, or None when it has no signals row."""
    if signals is None:
        return "No signals detected."
    lines = []
    for name, label in SIGNAL_DESCRIPTIONS.items():
        if not signals[name]:
            continue
        ev = (signals["evidence"] or {}).get(name)
        detail = ""
        if isinstance(ev, dict) and "next_query" in ev:
            # "probability" since signal definitions v2; v1 rows carry "similarity"
            p = ev.get("probability", ev.get("similarity"))
            detail = f' — next query "{clean(_whole_words(ev["next_query"], 300))}" ' \
                     f'{ev.get("gap_seconds") or 0:.0f} s later' \
                     + (f" (P(re-ask) {p:.2f})" if name == "rephrased" and p is not None else "")
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
    return _evalgap_id(turn.source.name, turn.external_id, turn.source.redact_pii)


def evalgap_id(*, source: str, external_id: str, redact_pii: bool) -> str:
    """task_evalgap_id from plain values: what test items keep as the turn id (testsets.services.privacy)."""
    return _evalgap_id(source, external_id, redact_pii)


def _evalgap_id(source: str, external_id: str, redact_pii: bool) -> str:
    if redact_pii and detect(external_id):
        return pseudonym(f"{source}\x1f{external_id}", key=_pseudonym_key(), kind="turn")
    return external_id


# What a task is made of, read per item in one query (ROW_FIELDS) - the same values task_payload
# reads from an item's model instances.
ROW_FIELDS = ("id", "stratum", "inclusion_probability", "turn_id", "turn__session_id", "turn__external_id",
              "turn__source__name", "turn__source__redact_pii", "turn__session__external_id", "turn__user_id",
              "turn__timestamp", "turn__model", "turn__query", "turn__response", "turn__contexts", "turn__metadata",
              "turn__signals__turn", "turn__signals__evidence", "turn__signals__corrected_response",
              *(f"turn__signals__{name}" for name in SIGNAL_DESCRIPTIONS))


def _row_of(item: BatchItem) -> dict:
    turn = item.turn
    signals = getattr(turn, "signals", None)
    row = {"id": item.pk, "stratum": item.stratum, "inclusion_probability": item.inclusion_probability,
           "turn_id": turn.pk, "turn__session_id": turn.session_id, "turn__external_id": turn.external_id,
           "turn__source__name": turn.source.name, "turn__source__redact_pii": turn.source.redact_pii,
           "turn__session__external_id": turn.session.external_id, "turn__user_id": turn.user_id,
           "turn__timestamp": turn.timestamp, "turn__model": turn.model, "turn__query": turn.query,
           "turn__response": turn.response, "turn__contexts": turn.contexts, "turn__metadata": turn.metadata,
           "turn__signals__turn": signals.pk if signals is not None else None,
           "turn__signals__evidence": signals.evidence if signals is not None else None,
           "turn__signals__corrected_response": signals.corrected_response if signals is not None else None}
    for name in SIGNAL_DESCRIPTIONS:
        row[f"turn__signals__{name}"] = getattr(signals, name) if signals is not None else None
    return row


def task_payload(item: BatchItem, history: list[Turn]) -> dict:
    """The Label Studio task of an item, shown with the turns before it (labelling.selectors.turns_before)."""
    return task_data(_row_of(item), [(t.query, t.response) for t in history])


def task_data(row: dict, history: list[tuple[str, str]]) -> dict:
    """The task from an item's ROW_FIELDS and the (query, response) of the turns shown before it."""
    clean = redact if row["turn__source__redact_pii"] else (lambda text: text)
    clean_obj = redact_obj if row["turn__source__redact_pii"] else (lambda obj: obj)
    key = _pseudonym_key()
    source = row["turn__source__name"]
    signals = None
    if row["turn__signals__turn"] is not None:
        signals = {name: row[f"turn__signals__{name}"] for name in SIGNAL_DESCRIPTIONS}
        signals["evidence"] = row["turn__signals__evidence"]
    conversation = []
    for query, response in history:
        conversation += [{"role": "user", "content": clean(query)},
                         {"role": "assistant", "content": clean(response) or "(empty answer)"}]
    if not conversation:
        conversation = [{"role": "note", "content": "(first turn of the conversation)"}]
    contexts = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)
                for c in clean_obj(row["turn__contexts"] or [])]
    timestamp, user_id = row["turn__timestamp"], row["turn__user_id"]
    return {"data": {
        # evalgap_id and source are what reconciliation keys on: kept as they are (see task_evalgap_id).
        "evalgap_id": _evalgap_id(source, row["turn__external_id"], row["turn__source__redact_pii"]),
        "source": source,
        # Session and user ids are always pseudonyms: stable, so turns of one session still group.
        "session_id": pseudonym(f"{source}\x1f{row['turn__session__external_id']}", key=key, kind="session"),
        "user_id": pseudonym(f"{source}\x1f{user_id}", key=key, kind="user") if user_id else "",
        "timestamp": timestamp.isoformat() if timestamp else "",
        "model": clean(row["turn__model"]),
        "conversation": conversation,
        "query": clean(row["turn__query"]),
        "response": clean(row["turn__response"]) or "(empty answer)",
        "contexts_text": "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))
        or "(no retrieved contexts)",
        "signals_text": _signals_text(signals, clean),
        # Label Studio requires every $key of the config in every task, so this is always sent.
        "reference_answer_prefill": clean(_prefill(row)),
        "stratum": row["stratum"],
        "inclusion_probability": row["inclusion_probability"],
    }}


def _prefill(row: dict) -> str:
    """What the reference answer box starts with: a human agent's answer, else a generated case's."""
    if row["turn__signals__corrected_response"]:
        return row["turn__signals__corrected_response"]
    return (row["turn__metadata"] or {}).get("generation", {}).get("reference_answer") or ""


_JSON_FIELDS = ("turn__contexts", "turn__metadata", "turn__signals__evidence")


def _load_rows(ids: list[int]) -> list[dict]:
    """The ROW_FIELDS of these items, by id. On PostgreSQL the ORM's query is run on a plain cursor
    with the ids as one array, and the JSON columns parsed with orjson: Django's per-value
    converters and a parameter per id cost more than the query."""
    query = BatchItem.objects.filter(pk__in=ids).order_by("id").values_list(*ROW_FIELDS)
    if connection.vendor != "postgresql":
        return [dict(zip(ROW_FIELDS, row)) for row in query]
    sql, params = BatchItem.objects.filter(pk=-1).order_by("id").values_list(*ROW_FIELDS).query.sql_with_params()
    table = connection.ops.quote_name(BatchItem._meta.db_table)
    sql = sql.replace(f"{table}.{connection.ops.quote_name('id')} = %s", f"{table}.{connection.ops.quote_name('id')} = ANY(%s)")
    json_at = [ROW_FIELDS.index(f) for f in _JSON_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(ids) if p == -1 else p for p in params])
        rows = cursor.fetchall()
    out = []
    for row in rows:
        row = list(row)
        for i in json_at:
            if isinstance(row[i], str):
                row[i] = orjson.loads(row[i])
        out.append(dict(zip(ROW_FIELDS, row)))
    return out


def _histories(rows: list[dict]) -> dict[int, list[tuple[str, str]]]:
    """{item id: (query, response) of the turns before its turn in the session}, at most
    LABELLING_CONVERSATION_TURNS: what labelling.selectors.turns_before gives, read as plain values."""
    keep = settings.LABELLING_CONVERSATION_TURNS
    by_session: dict[int, list[tuple]] = {}
    for turn_id, session_id, query, response in (
            Turn.objects.filter(session_id__in={r["turn__session_id"] for r in rows})
            .order_by("session_id", "timestamp", "position", "id").values_list("id", "session_id", "query", "response")):
        by_session.setdefault(session_id, []).append((turn_id, query, response))
    place = {turn_id: k for turns in by_session.values() for k, (turn_id, _, _) in enumerate(turns)}
    out = {}
    for r in rows:
        idx = place[r["turn_id"]]
        out[r["id"]] = [(q, a) for _, q, a in by_session[r["turn__session_id"]][max(0, idx - keep):idx]]
    return out


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
    """Push the batch's items not yet in Label Studio. Only one push of a batch runs at a time (the
    batch is a job held for the whole push): a second one, or a redelivered task while the first is
    alive, returns at once with `skipped`. A finished batch may be pushed again (it then only checks).

    `on_chunk_imported` is a test seam: called after an import, before its links are saved."""
    with job_held(LabellingBatch, batch_id, statuses=_PUSHABLE) as mine:
        if not mine:
            return {"project_id": None, "pushed": 0, "already_present": 0,
                    "skipped": f"batch {batch_id} is being pushed by another worker"}
        try:
            return _push(batch_id, on_chunk_imported)
        except (LabelStudioUnavailable, *TRANSIENT_ERRORS) as e:
            job_release(LabellingBatch, batch_id, e)  # pending again: the task retries it with backoff
            raise
        except BaseException as e:
            job_fail(LabellingBatch, batch_id, e)
            raise


_PUSHABLE = (LabellingBatch.Status.PENDING, LabellingBatch.Status.FAILED, LabellingBatch.Status.DONE)


def _push(batch_id: int, on_chunk_imported) -> dict:
    batch = LabellingBatch.objects.get(pk=batch_id)
    client = get_client()
    project = project_ensure(client=client, title=batch.project_title or None)
    # One read of the batch: its items, when each was attempted, and which are linked already.
    items = list(BatchItem.objects.filter(batch=batch).order_by("id").values_list("id", "push_attempted_at", "task"))
    already = sum(1 for _, _, task in items if task is not None)
    pending = [(pk, at) for pk, at, task in items if task is None]
    attempted = [pk for pk, at in pending if at or project.needs_reconcile]
    if attempted:
        already += _reconcile(client, project, _load_items(attempted))
        linked = set(TaskLink.objects.filter(item__in=attempted).values_list("item_id", flat=True))
        pending = [(pk, at) for pk, at in pending if pk not in linked]
    ids = [pk for pk, _ in pending]
    pushed = 0
    # Imports run one at a time on a second thread while this one renders slices of tasks. Whenever
    # Label Studio is free it gets everything rendered so far (up to LABELLING_PUSH_CHUNK), so it
    # never waits for a chunk of a size fixed in advance; its links are written after the next import
    # has been sent.
    step = max(1, min(settings.LABELLING_PUSH_FIRST_CHUNK, settings.LABELLING_PUSH_CHUNK))
    ready: list[tuple[dict, dict]] = []  # (row, task) rendered and marked attempted, not yet sent
    sent = 0  # how many of ids have been handed to an import
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = None  # (start, chunk rows, future of task ids)

        def send():
            nonlocal ready, sent
            chunk, ready = ready[:settings.LABELLING_PUSH_CHUNK], ready[settings.LABELLING_PUSH_CHUNK:]
            queued = (sent, [r for r, _ in chunk],
                      pool.submit(client.import_tasks, project.ls_project_id, [t for _, t in chunk]))
            sent += len(chunk)
            return queued

        for start in range(0, len(ids), step):
            rows = _load_rows(ids[start:start + step])
            histories = _histories(rows)
            ready += [(r, task_data(r, histories[r["id"]])) for r in rows]
            _mark_attempted(ids[start:start + step])
            job_progress(LabellingBatch, batch_id)
            if ready and (in_flight is None or in_flight[2].done()):
                done, in_flight = in_flight, send()
                if done:
                    pushed += _link(project, *done, on_chunk_imported)
        while in_flight:  # everything is rendered: queue the rest behind the import in flight
            done, in_flight = in_flight, (send() if ready else None)
            pushed += _link(project, *done, on_chunk_imported)
    if project.needs_reconcile:
        type(project).objects.filter(pk=project.pk).update(needs_reconcile=False)
    job_finish(LabellingBatch, batch_id, pushed_at=timezone.now())
    return {"project_id": project.ls_project_id, "pushed": pushed, "already_present": already}


def _mark_attempted(ids: list[int]) -> None:
    """Committed before the import is sent: an item attempted but not linked is looked up in Label
    Studio before it is sent again (one array parameter, not one per id)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {BatchItem._meta.db_table} SET push_attempted_at = %s WHERE id = ANY(%s)",
                           [timezone.now(), list(ids)])
    else:
        BatchItem.objects.filter(pk__in=ids).update(push_attempted_at=timezone.now())


def _link(project, start: int, chunk: list[dict], future, on_chunk_imported) -> int:
    task_ids = future.result()
    if on_chunk_imported:
        on_chunk_imported(start)
    item_ids = [r["id"] for r in chunk]
    if connection.vendor == "postgresql":
        # One statement with two arrays: no model instance per link (the last chunk's links are
        # written after Label Studio's last import, so their time shows).
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TaskLink._meta.db_table} (item_id, project_id, ls_task_id, pushed_at) "
                           "SELECT i, %s, t, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(i, t)",
                           [project.pk, timezone.now(), item_ids, list(task_ids)])
    else:
        TaskLink.objects.bulk_create([TaskLink(item_id=i, project=project, ls_task_id=t)
                                      for i, t in zip(item_ids, task_ids)])
    return len(chunk)


def batches_unpushed() -> list[int]:
    return list(LabellingBatch.objects.exclude(status=LabellingBatch.Status.DONE).values_list("id", flat=True))
