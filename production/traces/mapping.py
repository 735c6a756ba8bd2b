"""One trace's spans -> one turn record of the production-log contract (docs/production-log.md).

The turn is the trace's user-facing exchange: its root span when that is an LLM, CHAIN or AGENT span,
otherwise the shallowest such span under it (an HTTP server span at the root, say). Three vocabularies
are read, each for what it says:

- OpenInference (`openinference.span.kind`, `llm.input_messages.N.message.role/content`,
  `llm.output_messages...`, `input.value`/`output.value`, `retrieval.documents.N.document.content`,
  `llm.model_name`, `llm.token_count.*`, `session.id`, `user.id`, `tool.name`);
- OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.request.model`,
  `gen_ai.response.model`, `gen_ai.usage.*`, `gen_ai.input.messages`/`gen_ai.output.messages`, the
  older `gen_ai.prompt.N.*`/`gen_ai.completion.N.*` and the `gen_ai.user.message`/`gen_ai.choice`/
  `gen_ai.content.prompt`/`gen_ai.content.completion` events, `gen_ai.conversation.id`);
- Langfuse's OTel attributes (`langfuse.observation.type/input/output/model.name/usage_details`).

`turn_record` returns None while the trace's root span has not arrived, and raises ContractError
naming what is missing when the trace cannot become a turn.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson

from ..contract import ContractError

TURN_KINDS = ("LLM", "CHAIN", "AGENT")

_LANGFUSE_KINDS = {"generation": "LLM", "agent": "AGENT", "chain": "CHAIN", "span": "CHAIN", "tool": "TOOL",
                   "retriever": "RETRIEVER", "embedding": "EMBEDDING", "evaluator": "EVALUATOR",
                   "guardrail": "GUARDRAIL"}
_GENAI_OPERATIONS = {"chat": "LLM", "text_completion": "LLM", "generate_content": "LLM", "invoke_agent": "AGENT",
                     "create_agent": "AGENT", "execute_tool": "TOOL", "embeddings": "EMBEDDING"}
_TEXT_KEYS = ("query", "question", "input", "prompt", "text", "content", "message", "answer", "output",
              "response", "result")


def span_kind(span: dict) -> str:
    a = span["attributes"]
    kind = a.get("openinference.span.kind")
    if kind:
        return str(kind).upper()
    kind = a.get("langfuse.observation.type")
    if kind:
        return _LANGFUSE_KINDS.get(str(kind).lower(), str(kind).upper())
    op = a.get("gen_ai.operation.name")
    if op:
        return _GENAI_OPERATIONS.get(str(op), "LLM")
    if any(k.startswith("gen_ai.") for k in a):
        return "LLM"
    return ""


def turn_record(spans: list[dict]) -> dict | None:
    spans = sorted(spans, key=lambda s: (s["start_ns"] or 0, s["span_id"]))
    roots = [s for s in spans if not s["parent_span_id"]]
    if not roots:
        return None
    root = roots[0]
    children: dict[str, list[dict]] = {}
    for s in spans:
        children.setdefault(s["parent_span_id"], []).append(s)
    turn_span = _turn_span(root, children)
    if turn_span is None:
        raise ContractError(f"trace: no LLM, CHAIN or AGENT span in it (root span {root['name']!r}, "
                            f"{len(spans)} spans); nothing says what the user asked")
    below = _descendants(turn_span, children)
    llms = [s for s in [turn_span, *below] if span_kind(s) == "LLM"]
    query = _query(turn_span)
    if query is None:
        query = next((q for q in map(_query, llms) if q is not None), None)
    if query is None:
        raise ContractError(f"query: no user message in span {turn_span['name']!r} or the LLM spans under it "
                            "(looked for llm.input_messages, input.value, gen_ai.input.messages, gen_ai.prompt, "
                            "langfuse.observation.input)")
    response = _response(turn_span)
    if response is None:
        response = next((r for r in map(_response, reversed(llms)) if r is not None), "")
    everything = [root, *_descendants(root, children)]
    record = {
        "id": turn_span["trace_id"],
        "session_id": _first_attr(everything, turn_span, ("session.id", "gen_ai.conversation.id",
                                                          "langfuse.session.id")) or turn_span["trace_id"],
        "timestamp": _rfc3339(root["start_ns"]),
        "query": query,
        "response": response,
        "contexts": _contexts(everything),
        "metadata": _metadata(turn_span, everything, llms, len(spans)),
    }
    user = _first_attr(everything, turn_span, ("user.id", "enduser.id", "langfuse.user.id"))
    if user:
        record["user_id"] = user
    model = _model(turn_span) or next((m for m in map(_model, reversed(llms)) if m), "")
    if model:
        record["model"] = model
    if turn_span["end_ns"]:
        record["response_timestamp"] = _rfc3339(turn_span["end_ns"])
        if turn_span["start_ns"]:
            record["latency_ms"] = (turn_span["end_ns"] - turn_span["start_ns"]) / 1e6
    return record


def _turn_span(root: dict, children: dict[str, list[dict]]) -> dict | None:
    level = [root]
    while level:  # breadth first: the shallowest turn-kind span, the earliest at its depth
        for s in level:
            if span_kind(s) in TURN_KINDS:
                return s
        level = [c for s in level for c in children.get(s["span_id"], [])]
    return None


def _descendants(span: dict, children: dict[str, list[dict]]) -> list[dict]:
    out, stack, seen = [], list(reversed(children.get(span["span_id"], []))), {span["span_id"]}
    while stack:
        s = stack.pop()
        if s["span_id"] in seen:  # a cycle in bad input must not loop
            continue
        seen.add(s["span_id"])
        out.append(s)
        stack.extend(reversed(children.get(s["span_id"], [])))
    return sorted(out, key=lambda s: (s["start_ns"] or 0, s["span_id"]))


def _rfc3339(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _first_attr(spans: list[dict], first: dict, keys: tuple[str, ...]) -> str:
    for s in (first, *spans):
        for k in keys:
            v = s["attributes"].get(k)
            if v not in (None, ""):
                return str(v)
    return ""


# --- messages --------------------------------------------------------------------------------------

def _indexed(attrs: dict, prefix: str) -> list[dict]:
    """`prefix.N.rest` attributes -> [{rest: value}] by N: OpenInference flattens lists this way."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)")
    items: dict[int, dict] = {}
    for k, v in attrs.items():
        m = pat.fullmatch(k)
        if m:
            items.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return [items[i] for i in sorted(items)]


def _oi_messages(attrs: dict, prefix: str, field: str = "message.") -> list[tuple[str, str]]:
    """OpenInference's `llm.*_messages.N.message.role/content`; with field="" the older GenAI
    `gen_ai.prompt.N.role/content` and `gen_ai.completion.N.*` (OpenLLMetry)."""
    out = []
    for m in _indexed(attrs, prefix):
        content = m.get(f"{field}content")
        if content is None:  # multimodal: message.contents.K.message_content.text
            parts = [v for k, v in sorted(m.items()) if k.startswith("message.contents.") and k.endswith(".text")]
            content = "\n".join(str(p) for p in parts) if parts else None
        out.append((str(m.get(f"{field}role") or ""), content))
    return out


def _genai_messages(value) -> list[tuple[str, str | None]]:
    """gen_ai.input.messages / gen_ai.output.messages: [{role, parts: [{type: text, content}]}] (JSON)."""
    value = _json(value)
    if isinstance(value, dict):
        value = value.get("messages")
    if not isinstance(value, list):
        return []
    out = []
    for m in value:
        if not isinstance(m, dict):
            continue
        out.append((str(m.get("role") or ""), _content(m)))
    return out


def _content(m: dict) -> str | None:
    if "parts" in m and isinstance(m["parts"], list):
        texts = [str(p.get("content")) for p in m["parts"]
                 if isinstance(p, dict) and p.get("type", "text") == "text" and p.get("content") is not None]
        return "\n".join(texts) if texts else None
    content = m.get("content")
    if isinstance(content, list):  # OpenAI content parts
        texts = [str(p.get("text")) for p in content if isinstance(p, dict) and p.get("text") is not None]
        return "\n".join(texts) if texts else None
    if isinstance(content, dict):
        return _content(content) if "content" in content or "parts" in content else None
    return None if content is None else str(content)


def _last(messages: list[tuple[str, str | None]], roles: tuple[str, ...]) -> str | None:
    for role, content in reversed(messages):
        if role in roles and content is not None:
            return content
    return None


def _json(value):
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(value, roles: tuple[str, ...]) -> str | None:
    """A free-form input or output value -> its text: a string as it is; a chat request or response (the
    OpenAI shapes) by its messages; an object with one obvious text field by it; else its JSON."""
    value = _json(value)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return _last(_genai_messages(value["messages"]), roles)
        if isinstance(value.get("choices"), list) and value["choices"]:
            choice = value["choices"][0]
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                return _content(message) if isinstance(message, dict) else None
        if "role" in value and ("content" in value or "parts" in value):
            return _content(value)
        for k in _TEXT_KEYS:
            if isinstance(value.get(k), str):
                return value[k]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return _last(_genai_messages(value), roles)
    return orjson.dumps(value, default=str).decode()


def _query(span: dict) -> str | None:
    a = span["attributes"]
    for q in (_last(_oi_messages(a, "llm.input_messages"), ("user",)),
              _last(_genai_messages(a.get("gen_ai.input.messages")), ("user",)),
              _last(_oi_messages(a, "gen_ai.prompt", ""), ("user",)),
              _event_text(span, ("gen_ai.user.message",), "content", ("user",)),
              _event_text(span, ("gen_ai.content.prompt",), "gen_ai.prompt", ("user",))):
        if q is not None:
            return q
    for key in ("langfuse.observation.input", "input.value", "gen_ai.prompt"):
        if a.get(key) is not None:
            return _text(a[key], ("user",))
    return None


def _response(span: dict) -> str | None:
    a = span["attributes"]
    for r in (_last(_oi_messages(a, "llm.output_messages"), ("assistant", "model", "")),
              _last(_genai_messages(a.get("gen_ai.output.messages")), ("assistant", "model", "")),
              _last(_oi_messages(a, "gen_ai.completion", ""), ("assistant", "model", "")),
              _event_text(span, ("gen_ai.choice",), "message", ("assistant", "")),
              _event_text(span, ("gen_ai.content.completion",), "gen_ai.completion", ("assistant", ""))):
        if r is not None:
            return r
    for key in ("langfuse.observation.output", "output.value", "gen_ai.completion"):
        if a.get(key) is not None:
            return _text(a[key], ("assistant", ""))
    return None


def _event_text(span: dict, names: tuple[str, ...], attr: str, roles: tuple[str, ...]) -> str | None:
    found = None
    for e in span["events"]:
        if e["name"] in names:
            v = e["attributes"].get(attr, e["attributes"].get("body"))
            if v is not None:
                found = _text(v, roles)
    return found


def _model(span: dict) -> str:
    a = span["attributes"]
    for k in ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model", "langfuse.observation.model.name"):
        if a.get(k):
            return str(a[k])
    return ""


# --- contexts, tool calls, tokens --------------------------------------------------------------------

def _contexts(spans: list[dict]) -> list[str]:
    out = []
    for s in spans:
        for doc in _indexed(s["attributes"], "retrieval.documents"):
            if doc.get("document.content") is not None:
                out.append(str(doc["document.content"]))
    return out


def _tool_calls(spans: list[dict]) -> list[dict]:
    calls: list[dict] = []
    for s in spans:
        a, kind = s["attributes"], span_kind(s)
        if kind == "LLM":
            for m in _indexed(a, "llm.output_messages"):
                for tc in _indexed(m, "message.tool_calls"):
                    call = {"name": str(tc.get("tool_call.function.name") or ""),
                            "arguments": tc.get("tool_call.function.arguments", "")}
                    if tc.get("tool_call.id"):
                        call["id"] = str(tc["tool_call.id"])
                    calls.append(call)
        elif kind == "TOOL":
            name = str(a.get("tool.name") or a.get("gen_ai.tool.name") or s["name"])
            call_id = str(a.get("tool.id") or a.get("tool_call.id") or a.get("gen_ai.tool.call.id") or "")
            arguments = a.get("tool.parameters", a.get("gen_ai.tool.call.arguments",
                                                      a.get("input.value", a.get("langfuse.observation.input"))))
            result = a.get("gen_ai.tool.call.result", a.get("output.value", a.get("langfuse.observation.output")))
            # The LLM asked for it earlier in the trace: the tool span adds its result to that call.
            asked = next((c for c in calls if "result" not in c and
                          ((call_id and c.get("id") == call_id) or (not call_id and c["name"] == name))), None)
            if asked is None:
                asked = {"name": name, "arguments": arguments if arguments is not None else ""}
                if call_id:
                    asked["id"] = call_id
                calls.append(asked)
            if result is not None:
                asked["result"] = result
    return calls


def _tokens(llms: list[dict]) -> dict:
    keys = {"prompt": ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
            "completion": ("llm.token_count.completion", "gen_ai.usage.output_tokens",
                           "gen_ai.usage.completion_tokens"),
            "total": ("llm.token_count.total",)}
    totals: dict[str, int] = {}
    for s in llms:
        a = s["attributes"]
        usage = _json(a.get("langfuse.observation.usage_details"))
        usage = usage if isinstance(usage, dict) else {}
        for name, ks in keys.items():
            v = next((a[k] for k in ks if isinstance(a.get(k), (int, float))), None)
            if v is None:
                v = usage.get({"prompt": "input", "completion": "output", "total": "total"}[name])
            if isinstance(v, (int, float)):
                totals[name] = totals.get(name, 0) + int(v)
    if totals and "total" not in totals:
        totals["total"] = totals.get("prompt", 0) + totals.get("completion", 0)
    return totals


def _metadata(turn_span: dict, spans: list[dict], llms: list[dict], received: int) -> dict:
    # `spans` counts every span of the trace received so far: a later assembly with more of them
    # refreshes the turn (production.services.traces), one with as many is the same turn again.
    meta: dict = {"trace": {"trace_id": turn_span["trace_id"], "span_id": turn_span["span_id"],
                            "name": turn_span["name"], "kind": span_kind(turn_span), "spans": received}}
    if turn_span.get("service"):
        meta["trace"]["service"] = turn_span["service"]
    if turn_span["status"].get("code") == 2:
        meta["trace"]["error"] = turn_span["status"].get("message") or "error"
    tokens = _tokens(llms)
    if tokens:
        meta["token_count"] = tokens
    calls = _tool_calls(spans)
    if calls:
        meta["tool_calls"] = calls
    return meta
