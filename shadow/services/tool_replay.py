"""Replaying a turn's recorded tool calls to the candidate.

Production acted (searched, looked up an order) and the served answer rests on what the tools
returned. The candidate gets the same tools; a call whose name and arguments match a recorded one
gets the recorded result and the candidate is asked again; any other call has no result evalgap
could honestly give (calling the real tool would act on production), so the pair ends `diverged`:
counted in the report, never judged, never a loss.

Recorded calls are read from the turn's `metadata.tool_calls` (or a top-level `tool_calls` field,
which ingest keeps under `metadata._extra`), each `{"name", "arguments", "result"}` or the OpenAI
shape `{"id", "type": "function", "function": {"name", "arguments"}, "result"}`; `arguments` an
object or its JSON text. `metadata.tools` may hold the OpenAI tool definitions; without them a
definition is made from the recorded calls.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from llm import client as llm
from production.models import Turn


class Diverged(Exception):
    """The candidate called a tool production did not call with those arguments."""

    def __init__(self, reason: str, spent: llm.Reply):
        super().__init__(reason)
        self.reason, self.spent = reason, spent


@dataclass(frozen=True)
class RecordedCall:
    name: str
    arguments: str  # canonical JSON (sorted keys) when the arguments are JSON, else the text stripped
    result: str


def canonical(arguments) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments.strip()
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def recorded_tool_calls(turn: Turn) -> list[RecordedCall]:
    meta = turn.metadata if isinstance(turn.metadata, dict) else {}
    extra = meta.get("_extra") if isinstance(meta.get("_extra"), dict) else {}
    raw = meta.get("tool_calls") or extra.get("tool_calls") or []
    out = []
    for call in raw if isinstance(raw, list) else []:
        if not isinstance(call, dict):
            continue
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            continue
        result = next((call[k] for k in ("result", "output", "content") if k in call), "")
        out.append(RecordedCall(name=name, arguments=canonical(fn.get("arguments") or {}), result=_text(result)))
    return out


def tool_definitions(turn: Turn, recorded: list[RecordedCall]) -> list[dict]:
    meta = turn.metadata if isinstance(turn.metadata, dict) else {}
    tools = meta.get("tools")
    if isinstance(tools, list) and tools and all(isinstance(t, dict) for t in tools):
        return tools
    out: dict[str, dict] = {}
    for call in recorded:
        try:
            args = json.loads(call.arguments)
        except ValueError:
            args = {}
        props = out.setdefault(call.name, {})
        props.update({k: {} for k in (args if isinstance(args, dict) else {})})
    return [{"type": "function", "function": {"name": name, "description": "a tool production called for this turn",
                                              "parameters": {"type": "object", "properties": props}}}
            for name, props in out.items()]


def _add(total: llm.Reply | None, reply: llm.Reply) -> llm.Reply:
    if total is None:
        return reply
    return llm.Reply(content=reply.content, prompt_tokens=total.prompt_tokens + reply.prompt_tokens,
                     completion_tokens=total.completion_tokens + reply.completion_tokens,
                     latency_ms=total.latency_ms + reply.latency_ms, cost_usd=total.cost_usd + reply.cost_usd,
                     tool_calls=reply.tool_calls)


def answer_with_tools(send: Callable[[list[dict], list[dict]], llm.Reply], messages: list[dict],
                      recorded: list[RecordedCall], tools: list[dict]) -> llm.Reply:
    """Ask until the candidate answers in text, giving each matching call its recorded result.
    `send(messages, tools)` makes one request. The reply sums every request's tokens, cost and
    latency. Raises Diverged (with what was spent) on a call that matches no recorded one, or when
    the candidate keeps calling tools for more rounds than production made calls (bounded)."""
    results = {(c.name, c.arguments): c.result for c in recorded}
    total: llm.Reply | None = None
    messages = list(messages)
    for _ in range(2 * len(recorded) + 1):
        reply = send(messages, tools)
        total = _add(total, reply)
        if not reply.tool_calls:
            return total
        answers = []
        for call in reply.tool_calls:
            key = (call["name"], canonical(call["arguments"] or {}))
            if key not in results:
                raise Diverged(f"the candidate called {call['name']}({call['arguments']}), which production did "
                               f"not call with these arguments: no recorded result"[:500], total)
            answers.append({"role": "tool", "tool_call_id": call["id"], "content": results[key]})
        messages.append({"role": "assistant", "content": reply.content or None,
                         "tool_calls": [{"id": c["id"], "type": "function",
                                         "function": {"name": c["name"], "arguments": c["arguments"]}}
                                        for c in reply.tool_calls]})
        messages.extend(answers)
    raise Diverged(f"the candidate kept calling tools after {2 * len(recorded) + 1} rounds "
                   f"(production made {len(recorded)} calls)", total or llm.Reply("", 0, 0, 0.0, Decimal(0)))
