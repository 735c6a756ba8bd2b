"""Trace exports of other tools -> spans (the shape `production.traces` documents), one `SpanIn` each.

Each reader follows its tool's documented export; `docs/ingest-otlp.md` names the page of each:

- langfuse: the Langfuse public API's trace (`GET /api/public/traces/{id}`, the UI's "Download JSON":
  the trace with its `observations`), its observation objects (`GET /api/public/v2/observations`, the
  table export), and the blob-storage export's snake_case rows (`traces/`, `observations/`,
  `observations_v2/`); a JSON object, a JSON array, `{"data": [...]}`, or JSON lines.
- langsmith: runs in LangSmith's run (span) data format (`id`, `trace_id`, `parent_run_id` or
  `dotted_order`, `run_type`, `inputs`, `outputs`, `extra.metadata`, `start_time`, ...), as a JSON
  array, `{"runs": [...]}`, or JSON lines.
- phoenix: the span dataframe of `px.Client().get_spans_dataframe()` saved with `DataFrame.to_parquet`
  (`context.trace_id`, `context.span_id`, `parent_id`, `span_kind`, `attributes.*`).

A record that cannot be read is a `SpanIn` with its error and its record number (the JSON element or line
from 1; the dataframe's row from 1), so it becomes a rejected line like any other.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import orjson

from .mapping import _json
from .otlp import SpanIn, _raw

MAX_ID = 64  # TraceSpan's id columns


class TraceFileError(ValueError):
    """The file as a whole cannot be read as the format (not JSON, not parquet)."""


# --- shared -------------------------------------------------------------------------------------

def _records(path: Path, unwrap: tuple[str, ...]) -> Iterator[tuple[int, object]]:
    """(record number, value) from a JSON document (an object, an array, or `{key: [...]}`) or JSON lines."""
    data = path.read_bytes()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
        if not data.lstrip().startswith((b"{", b"[")):
            raise TraceFileError(f"{path}: neither JSON nor JSON lines") from None
    if doc is not None:
        if isinstance(doc, dict):
            key = next((k for k in unwrap if isinstance(doc.get(k), list)), None)
            doc = doc[key] if key else [doc]
        if not isinstance(doc, list):
            raise TraceFileError(f"{path}: expected a JSON object or array")
        yield from enumerate(doc, start=1)
        return
    for n, line in enumerate(data.splitlines(), start=1):  # JSON lines: a bad line is that record's error
        if not line.strip():
            continue
        try:
            yield n, orjson.loads(line)
        except orjson.JSONDecodeError as e:
            yield n, _Bad(f"line: invalid JSON ({e})", line.decode("utf-8", "backslashreplace")[:2000])


class _Bad:
    def __init__(self, error: str, raw: str):
        self.error, self.raw = error, raw


def _ns(value) -> int | None:
    """A time as these exports write it -> ns since the epoch: ISO 8601 (no zone = UTC, as Langfuse's blob
    export and LangSmith write them), a pandas Timestamp, or a number (s, ms, us or ns by its size)."""
    if value is None or value == "":
        return None
    if hasattr(value, "value") and hasattr(value, "tzinfo"):  # pandas Timestamp: .value is UTC ns
        return None if value != value else int(value.value)
    if isinstance(value, (int, float)):
        for scale, bound in ((1, 1e17), (1_000, 1e14), (1_000_000, 1e11)):
            if value > bound:
                return int(value * scale)
        return int(value * 1_000_000_000)
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _span(trace_id, span_id, parent, name, start, end, attributes: dict, error: str = "") -> dict:
    return {"trace_id": str(trace_id), "span_id": str(span_id), "parent_span_id": str(parent or ""),
            "name": str(name or ""), "start_ns": _ns(start), "end_ns": _ns(end),
            "attributes": {k: v for k, v in attributes.items() if v is not None}, "events": [],
            "status": {"code": 2 if error else 0, "message": error or ""}, "service": "", "scope": ""}


def _checked(n: int, record, build: Callable[[dict], dict]) -> SpanIn:
    if isinstance(record, _Bad):
        return SpanIn(n, None, "", record.error, record.raw)
    if not isinstance(record, dict):
        return SpanIn(n, None, "", f"record: expected an object, got {type(record).__name__}", _raw(record))
    try:
        span = build(record)
    except KeyError as e:
        return SpanIn(n, None, "", f"{e.args[0]}: missing", _raw(record))
    except (TypeError, ValueError, AttributeError) as e:
        return SpanIn(n, None, "", f"record: cannot be read ({type(e).__name__}: {e})", _raw(record))
    for field in ("trace_id", "span_id"):
        if not span[field] or span[field] == "None" or len(span[field]) > MAX_ID:
            return SpanIn(n, None, "", f"{field}: missing, or longer than {MAX_ID} characters", _raw(record))
    return SpanIn(n, span, "")


def _get(record: dict, *keys):
    for k in keys:
        if record.get(k) is not None:
            return record[k]
    return None


def _documents(value) -> list[str]:
    """Retrieved documents as tools write them: strings, {page_content} (LangChain), {content} or {text}."""
    if isinstance(value, dict):
        value = value.get("documents", value.get("output"))
    if not isinstance(value, list):
        return []
    out = []
    for d in value:
        if isinstance(d, str):
            out.append(d)
        elif isinstance(d, dict):
            text = _get(d, "page_content", "pageContent", "content", "text", "document.content")
            if text is not None:
                out.append(str(text))
    return out


def _doc_attrs(docs: list[str]) -> dict:
    return {f"retrieval.documents.{i}.document.content": d for i, d in enumerate(docs)}


# --- Langfuse -----------------------------------------------------------------------------------

def read_langfuse(path: Path) -> list[SpanIn]:
    records = list(_records(path, ("data",)))
    out: list[SpanIn] = []
    trace_rows = {str(r["id"]) for _, r in records if isinstance(r, dict) and "id" in r and not _is_observation(r)}
    for n, r in records:
        if isinstance(r, dict) and not _is_observation(r):
            out.append(_checked(n, r, _langfuse_trace))
            for o in r.get("observations") or []:
                if isinstance(o, dict):  # the trace's own observations, under the trace's record number
                    out.append(_checked(n, {**o, "traceId": r.get("id")}, lambda o: _langfuse_observation(o, True)))
        else:
            out.append(_checked(n, r, lambda o: _langfuse_observation(
                o, str(_get(o, "traceId", "trace_id")) in trace_rows)))
    return out


def _is_observation(r: dict) -> bool:
    return _get(r, "traceId", "trace_id") is not None and "observations" not in r


def _langfuse_trace(t: dict) -> dict:
    latency = t.get("latency")
    start = _ns(t["timestamp"])
    end = start + int(latency * 1e9) if start is not None and isinstance(latency, (int, float)) else None
    span = _span(t["id"], t["id"], "", t.get("name"), t["timestamp"], None, {
        "langfuse.observation.type": "span", "langfuse.observation.input": t.get("input"),
        "langfuse.observation.output": t.get("output"), "session.id": _get(t, "sessionId", "session_id"),
        "user.id": _get(t, "userId", "user_id")})
    span["end_ns"] = end
    return span


def _langfuse_observation(o: dict, under_trace_row: bool) -> dict:
    """An observation; one without a parent hangs under its trace's row when the file has it (the trace's
    input and output are the user's), else it is the root."""
    trace_id = _get(o, "traceId", "trace_id")
    parent = _get(o, "parentObservationId", "parent_observation_id") or (trace_id if under_trace_row else "")
    kind = str(o.get("type") or "span").lower()
    usage = _get(o, "usageDetails", "usage_details", "usage")
    attrs = {
        "langfuse.observation.type": kind, "langfuse.observation.input": o.get("input"),
        "langfuse.observation.output": o.get("output"),
        "langfuse.observation.model.name": _get(o, "providedModelName", "provided_model_name", "model"),
        "langfuse.observation.usage_details": usage if isinstance(usage, dict) else None,
        "session.id": _get(o, "sessionId", "session_id"), "user.id": _get(o, "userId", "user_id"),
    }
    if kind == "retriever":
        attrs.update(_doc_attrs(_documents(_json(o.get("output")))))
    error = o.get("statusMessage") or o.get("status_message") if o.get("level") == "ERROR" else ""
    return _span(trace_id, o["id"], parent, o.get("name"), _get(o, "startTime", "start_time"),
                 _get(o, "endTime", "end_time"), attrs, error or "")


# --- LangSmith -----------------------------------------------------------------------------------

_LC_ROLES = {"human": "user", "humanmessage": "user", "ai": "assistant", "aimessage": "assistant",
             "aimessagechunk": "assistant", "system": "system", "systemmessage": "system", "tool": "tool",
             "toolmessage": "tool", "function": "tool"}


def read_langsmith(path: Path) -> list[SpanIn]:
    return [_checked(n, r, _langsmith_run) for n, r in _records(path, ("runs", "data"))]


def _langsmith_run(run: dict) -> dict:
    run_id, trace_id = str(run["id"]), str(run.get("trace_id") or run["id"])
    parent = "" if run_id == trace_id else _langsmith_parent(run)
    kind = str(run.get("run_type") or "chain").upper()
    inputs, outputs = run.get("inputs") or {}, run.get("outputs") or {}
    extra = run.get("extra") or {}
    meta = extra.get("metadata") or {}
    params = extra.get("invocation_params") or {}
    attrs: dict = {
        "openinference.span.kind": kind, "input.value": _lc_io(inputs), "output.value": _lc_io(outputs),
        "session.id": _get(meta, "session_id", "thread_id", "conversation_id"), "user.id": meta.get("user_id"),
        "llm.model_name": _get(meta, "ls_model_name") or _get(params, "model", "model_name"),
        "llm.token_count.prompt": run.get("prompt_tokens"), "llm.token_count.completion": run.get("completion_tokens"),
        "llm.token_count.total": run.get("total_tokens"),
    }
    if kind == "LLM":
        for prefix, messages in (("llm.input_messages", _lc_input_messages(inputs)),
                                 ("llm.output_messages", _lc_output_messages(outputs))):
            for i, (role, content) in enumerate(messages):
                attrs[f"{prefix}.{i}.message.role"] = role
                attrs[f"{prefix}.{i}.message.content"] = content
    elif kind == "RETRIEVER":
        attrs.update(_doc_attrs(_documents(outputs)))
    elif kind == "TOOL":
        attrs["tool.name"] = run.get("name")
    return _span(trace_id, run_id, parent, run.get("name"), run.get("start_time"), run.get("end_time"), attrs,
                 run.get("error") or "")


def _langsmith_parent(run: dict) -> str:
    if run.get("parent_run_id"):
        return str(run["parent_run_id"])
    dotted = str(run.get("dotted_order") or "")
    if dotted.count(".") >= 1:  # <time>Z<run uuid>.<time>Z<child uuid>...: the next-to-last segment's run
        return dotted.split(".")[-2].split("Z", 1)[-1]
    parents = run.get("parent_run_ids") or []
    return str(parents[-1]) if parents else ""


def _lc_message(m) -> tuple[str, str] | None:
    """A chat message as LangChain/LangSmith write it: {role, content}, {type, content}, {type, data} or the
    serialized {lc, id: [..., "HumanMessage"], kwargs: {content}}."""
    if not isinstance(m, dict):
        return None
    if "kwargs" in m and isinstance(m["kwargs"], dict):
        role = (m.get("id") or [""])[-1] if isinstance(m.get("id"), list) else m["kwargs"].get("type", "")
        body = m["kwargs"]
    elif isinstance(m.get("data"), dict):
        role, body = m.get("type", ""), m["data"]
    else:
        role, body = m.get("role") or m.get("type") or "", m
    content = body.get("content")
    if isinstance(content, list):
        content = "\n".join(str(p.get("text")) for p in content if isinstance(p, dict) and p.get("text") is not None)
    role = str(role)
    return _LC_ROLES.get(role.lower(), role), "" if content is None else str(content)


def _lc_messages(value) -> list[tuple[str, str]]:
    if isinstance(value, list) and value and isinstance(value[0], list):  # a batch: the first conversation
        value = value[0]
    return [m for m in map(_lc_message, value) if m] if isinstance(value, list) else []


def _lc_input_messages(inputs: dict) -> list[tuple[str, str]]:
    if "messages" in inputs:
        return _lc_messages(inputs["messages"])
    prompts = inputs.get("prompts")
    return [("user", str(p)) for p in prompts[:1]] if isinstance(prompts, list) else []


def _lc_output_messages(outputs: dict) -> list[tuple[str, str]]:
    generations = outputs.get("generations")
    if isinstance(generations, list) and generations:
        first = generations[0][0] if isinstance(generations[0], list) and generations[0] else generations[0]
        if isinstance(first, dict):
            message = _lc_message(first.get("message")) if isinstance(first.get("message"), dict) else None
            return [message or ("assistant", str(first.get("text") or ""))]
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        m = _lc_message(choices[0].get("message") or {})
        return [m] if m else []
    if "messages" in outputs:
        return _lc_messages(outputs["messages"])[-1:]
    return []


def _lc_io(value):
    """Inputs or outputs as `input.value`/`output.value`: chat messages made plain ({role, content}),
    a lone text field as that text, everything else as it is."""
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("messages"), list):
        return {"messages": [{"role": r, "content": c} for r, c in _lc_messages(value["messages"])]}
    if len(value) == 1 and isinstance(next(iter(value.values())), str):
        return next(iter(value.values()))
    return value


# --- Phoenix ------------------------------------------------------------------------------------

def read_phoenix(path: Path) -> list[SpanIn]:
    import pandas as pd
    import pyarrow

    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as e:
        raise TraceFileError(f"{path}: not a parquet file ({e})") from None
    if "context.span_id" not in df.columns and df.index.name in ("context.span_id", "span_id"):
        df = df.reset_index().rename(columns={"span_id": "context.span_id"})
    rows = df.to_dict(orient="records")
    return [_checked(n, _plain(r), _phoenix_span) for n, r in enumerate(rows, start=1)]


def _plain(value):
    """Parquet's values as plain Python: arrays as lists, NaN and NaT as None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) and not hasattr(value, "tzinfo"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if value is not None and type(value).__name__ == "NaTType":
        return None
    return value


def _flatten(prefix: str, value, out: dict) -> None:
    """OpenInference's flattened names again: lists of objects by index, objects by key."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    elif value is not None:
        out[prefix] = value


def _phoenix_span(row: dict) -> dict:
    attrs: dict = {}
    for col, value in row.items():
        if col.startswith("attributes."):
            _flatten(col[len("attributes."):], _json(value) if col.endswith(("_messages", "documents"))
                     else value, attrs)
    if row.get("span_kind") and "openinference.span.kind" not in attrs:
        attrs["openinference.span.kind"] = row["span_kind"]
    error = row.get("status_message") or "error" if row.get("status_code") == "ERROR" else ""
    return _span(row["context.trace_id"], row["context.span_id"], row.get("parent_id"), row.get("name"),
                 row.get("start_time"), row.get("end_time"), attrs, error)


IMPORTERS: dict[str, Callable[[Path], list[SpanIn]]] = {
    "langfuse": read_langfuse, "langsmith": read_langsmith, "phoenix": read_phoenix,
}
