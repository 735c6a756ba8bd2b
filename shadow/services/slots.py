"""The judge's slots: each field capped on its own before the prompt is assembled, and delimited by
a boundary made for the request (see `llm.slots` for why).

The user's message and both answers are whole or the pair is not judged (`PromptDoesNotFit`, stored
as the pair's unjudged reason); the conversation so far and the contexts get what room is left, cut
with a note saying what was left out.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from llm.slots import PromptDoesNotFit, new_boundary, prompt_ceiling, shown, whole

__all__ = ["Caps", "PromptDoesNotFit", "slot_values"]


@dataclass(frozen=True)
class Caps:
    prompt: int  # the whole user message
    answer: int  # each answer, which must fit whole
    query: int  # the user's latest message, which must fit whole
    history: int  # the conversation so far (its oldest part is left out first)

    @classmethod
    def from_settings(cls) -> Caps:
        return cls(prompt=min(int(settings.JUDGE_PROMPT_MAX_CHARS), prompt_ceiling()),
                   answer=int(settings.JUDGE_ANSWER_MAX_CHARS), query=int(settings.JUDGE_QUERY_MAX_CHARS),
                   history=int(settings.JUDGE_HISTORY_MAX_CHARS))


def _contexts_text(contexts: tuple, room: int) -> str:
    """The passages in their order, as many as fit in `room`; the passage that reaches the cap is cut,
    and a last line says what was left out."""
    if not contexts:
        return "(none)"
    texts = [str(c) for c in contexts]
    room -= 200  # the note below
    parts, used, first_cut = [], 0, None
    for i, c in enumerate(texts):
        head = f"[{i + 1}] "
        left = room - used - len(head) - 2
        if left < min(len(c), 200):  # no room for this passage, or for a useful part of it
            first_cut = i
            break
        text = shown(c, left)
        parts.append(head + text)
        used += len(head) + len(text) + 2
        if len(c) > left or len(text) == left:
            first_cut = i
            break
    if first_cut is None:
        return "\n\n".join(parts)
    total = sum(len(c) for c in texts)
    parts.append(f"[… passages {first_cut + 1} to {len(texts)} of {len(texts)} are cut or left out: the retrieved "
                 f"context is {total:,} characters, more than the judge's prompt holds]")
    return "\n\n".join(parts)


def _history_text(conversation: tuple, room: int) -> str:
    """The conversation so far, newest messages first kept; the oldest one shown is cut from its start."""
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {shown(str(m['content']))}" for m in conversation]
    if not lines:
        return "(this is the first message of the conversation)"
    kept, used = [], 0
    note = "[… earlier messages of the conversation not shown (the judge's prompt cap)]"
    for line in reversed(lines):
        if used + len(line) + 2 <= room:
            kept.append(line)
            used += len(line) + 2
            continue
        left = room - used - len(note) - 4
        if left > 200:
            kept.append("… " + line[-left:])
        kept.append(note)
        break
    return "\n\n".join(reversed(kept)) if kept else note


def slot_values(*, query: str, conversation: tuple, contexts: tuple, answer_a: str, answer_b: str,
                template: str, names: tuple = ("answer A", "answer B"), caps: Caps | None = None) -> dict[str, str]:
    """The values of the judge prompt's slots ({boundary}, {conversation}, {contexts}, {query},
    {answer_a}, {answer_b}); raises PromptDoesNotFit naming the field that cannot be shown whole."""
    caps = caps or Caps.from_settings()
    raw = [query, answer_a, answer_b, *map(str, contexts), *(str(m["content"]) for m in conversation)]
    boundary = new_boundary(raw)
    values = {"boundary": boundary,
              "query": whole("the user's message", query, caps.query, "JUDGE_QUERY_MAX_CHARS"),
              "answer_a": whole(names[0], answer_a, caps.answer, "JUDGE_ANSWER_MAX_CHARS") or "(empty answer)",
              "answer_b": whole(names[1], answer_b, caps.answer, "JUDGE_ANSWER_MAX_CHARS") or "(empty answer)"}
    # What the template itself takes, with the boundary in each marker.
    frame = len(template.replace("{boundary}", boundary))
    fixed = frame + len(values["query"]) + len(values["answer_a"]) + len(values["answer_b"])
    if fixed > caps.prompt:
        raise PromptDoesNotFit(f"the user's message and both answers take {fixed:,} characters with the prompt, "
                               f"over the judge's cap of {caps.prompt:,} (JUDGE_PROMPT_MAX_CHARS)")
    values["conversation"] = _history_text(conversation, min(caps.history, caps.prompt - fixed))
    values["contexts"] = _contexts_text(contexts, caps.prompt - fixed - len(values["conversation"]))
    return values
