"""Traces in: spans (from the OTLP receiver or a trace export) -> stored spans -> one turn per trace.

    trace_spans_ingest(source=, spans=, origin=)    spans of one source; stores them and ingests the turns
                                                    of every trace they touch
    traces_import_path(source_name=, path=, fmt=)   a Langfuse, LangSmith or Phoenix export (`import_traces`)

A trace's spans may arrive in several requests, children before or after their root. Every span is
kept (`TraceSpan`, first copy wins) and each trace a request touches is assembled again from all its
spans: no root yet, it waits; a root, and the turn goes through the one ingest back half
(`turns_ingest_items`: the contract, rejected lines, idempotency on (source, turn id)). When the turn
already exists and this assembly saw more spans than the one that made it (children after the root),
the turn is refreshed in place; the same spans again change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import Q

from core.jobs import job_claim, job_fail, job_finish

from ..contract import ContractError, Limits, ParsedTurn, _check_json, parse_record
from ..models import IngestJob, Session, Source, TraceSpan, Turn
from ..readers import RAW_CAP, Reject
from ..traces.importers import IMPORTERS, TraceFileError
from ..traces.mapping import turn_record
from ..traces.otlp import SpanIn
from .ingest import IngestError, IngestResult, limits, source_get_or_create, turns_ingest_items
from .ingest.writers import refused

TRACE_BATCH = 500  # traces assembled per query of their spans


@dataclass
class TraceIngestResult(IngestResult):
    """An ingest's counts (`read` = spans), plus traces still waiting for their root span and turns
    refreshed by spans that came after their root."""

    pending: int = 0
    updated: int = 0


def trace_spans_ingest(*, source: Source, spans: list[SpanIn], origin: str,
                       job: IngestJob | None = None) -> TraceIngestResult:
    items: list[tuple[int, object]] = []
    for s in spans:
        if s.span is not None:
            s.error = _unstorable(s.span)
        if s.error:
            raw = s.raw or orjson.dumps(s.span or {}, default=str).decode()[:RAW_CAP]  # NUL comes out escaped
            items.append((s.line_no, Reject(s.line_no, s.error, raw)))
            s.span = None
    good = [s for s in spans if s.span is not None]
    items += [(r.line_no, r) for r in _spans_store(source, good)]
    good = [s for s in good if s.span is not None]
    line_of: dict[str, int] = {}
    for s in good:  # a trace's line: its root span's, else its first span's in this input
        if s.span["parent_span_id"]:
            line_of.setdefault(s.span["trace_id"], s.line_no)
        else:
            line_of[s.span["trace_id"]] = s.line_no
    pending = 0
    turns: list[ParsedTurn] = []
    trace_ids = list(line_of)
    for i in range(0, len(trace_ids), TRACE_BATCH):
        batch = trace_ids[i:i + TRACE_BATCH]
        by_trace: dict[str, list[dict]] = {}
        for tid, payload in (TraceSpan.objects.filter(source=source, trace_id__in=batch)
                             .values_list("trace_id", "payload")):
            by_trace.setdefault(tid, []).append(payload)
        for tid in batch:
            item = _assemble(by_trace.get(tid, []), line_of[tid])
            if item is None:
                pending += 1
                continue
            items.append((line_of[tid], item))
            if isinstance(item, ParsedTurn):
                turns.append(item)
    items.sort(key=lambda it: it[0])
    result = turns_ingest_items(source=source, items=items, origin=origin, job=job)
    total = TraceIngestResult(**result.as_dict(), pending=pending)
    total.read = len(spans)
    total.updated = _turns_refresh(source, turns)
    return total


def _unstorable(span: dict) -> str:
    """Why the database could not keep this span (a NUL character, nesting past 64 levels, a span larger
    than a line may be), or ""."""
    try:
        _check_json(span, "span", Limits(max_field_chars=1 << 62))
    except ContractError as e:
        return str(e)
    size = len(orjson.dumps(span, default=str))
    if size > settings.INGEST_MAX_LINE_BYTES:
        return f"span: longer than INGEST_MAX_LINE_BYTES ({size} bytes, the limit is {settings.INGEST_MAX_LINE_BYTES})"
    return ""


def _spans_store(source: Source, spans: list[SpanIn]) -> list[Reject]:
    """Keep the spans (the first copy of each wins). A span the database still refuses is rejected and
    dropped from `spans` (its `span` set to None); the others are kept one by one."""
    rows = [TraceSpan(source=source, trace_id=s.span["trace_id"], span_id=s.span["span_id"],
                      parent_span_id=s.span["parent_span_id"], payload=s.span) for s in spans]
    try:
        with transaction.atomic():
            TraceSpan.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        return []
    except (DataError, IntegrityError):
        pass
    rejects = []
    for row, s in zip(rows, spans):
        try:
            with transaction.atomic():
                TraceSpan.objects.bulk_create([row], ignore_conflicts=True)
        except (DataError, IntegrityError) as e:
            rejects.append(refused(s.line_no, "span", e))
            s.span = None
    return rejects


def _assemble(spans: list[dict], line_no: int) -> ParsedTurn | Reject | None:
    """A trace's spans -> its turn, a Reject naming why it cannot be one, or None (no root yet)."""
    try:
        record = turn_record(spans)
        if record is None:
            return None
        return parse_record(record, limits())
    except ContractError as e:
        root = next((s for s in spans if not s["parent_span_id"]), spans[0])
        raw = orjson.dumps(root, default=str).decode()[:RAW_CAP]
        return Reject(line_no, str(e), raw)


def _turns_refresh(source: Source, turns: list[ParsedTurn]) -> int:
    """Rewrite the turns an earlier, smaller assembly of the same trace made. The UPDATE is conditional
    on the stored span count, so of two requests racing on one trace the fuller assembly wins."""
    updated, sessions = 0, set()
    for t in turns:
        n = t.metadata["trace"]["spans"]
        with transaction.atomic():
            changed = (Turn.objects.filter(source=source, external_id=t.external_id)
                       .filter(Q(metadata__trace__spans__lt=n))
                       .update(query=t.query, response=t.response, contexts=t.contexts, model=t.model,
                               user_id=t.user_id, timestamp=t.timestamp, response_timestamp=t.response_timestamp,
                               latency_ms=t.latency_ms, metadata=t.metadata))
        if changed:
            updated += changed
            sessions.add(t.session_external_id)
    if sessions:  # its signals are computed again
        Session.objects.filter(source=source, external_id__in=sessions).update(dirty=True)
    return updated


def traces_import_path(*, source_name: str, path: str | Path, fmt: str) -> TraceIngestResult:
    """Import one trace export file; an IngestJob row records it as the `ingest` command's runs are."""
    if fmt not in IMPORTERS:
        raise IngestError(f"format: unknown trace format {fmt!r} (expected one of {', '.join(IMPORTERS)})")
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: cannot read (no such file)")
    source = source_get_or_create(name=source_name)
    job = IngestJob.objects.create(source=source, origin=str(path), format=fmt)
    job_claim(IngestJob, job.pk)
    try:
        spans = IMPORTERS[fmt](path)
        result = trace_spans_ingest(source=source, spans=spans, origin=str(path), job=job)
    except (TraceFileError, OSError) as e:
        job_fail(IngestJob, job.pk, e)
        raise IngestError(str(e)) from None
    except BaseException as e:
        job_fail(IngestJob, job.pk, e)
        raise
    job_finish(IngestJob, job.pk, **IngestResult(**{k: getattr(result, k) for k in IngestResult.__dataclass_fields__})
               .as_dict())
    return result
