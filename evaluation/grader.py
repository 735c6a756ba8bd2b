"""What the candidate and the grader are asked, and how the grader's answer is read.

The grader sees the question, the reference answer a person approved, and the answer to grade;
it writes its rationale before its verdict (reasoning first, then the decision) as one JSON object.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from labelling.vocabulary import VERDICT_SCORES  # noqa: F401  (the grader's verdicts: labelling's one scale)
from llm.slots import new_boundary, shown, slot, slots_rule, whole

GRADER_SYSTEM = (
    "You grade an AI assistant's answer against a reference answer that a person approved. "
    "Judge whether the answer gives the user what the reference gives: the same facts and the same "
    "outcome. Wording, length and style do not matter; missing, wrong or invented facts do. "
    "An answer that says it cannot help when the reference helps is incorrect.\n"
    "Verdicts: \"correct\" (right and complete), \"partially_correct\" (right in part; something is "
    "missing or wrong), \"incorrect\" (wrong, off-topic, or no answer).\n"
    'Reply with one JSON object and nothing else: {"rationale": "<one or two sentences>", '
    '"verdict": "correct" | "partially_correct" | "incorrect"}'
)


@dataclass(frozen=True)
class Grade:
    verdict: str
    rationale: str

    @property
    def score(self) -> float:
        return VERDICT_SCORES[self.verdict]


def parse_grade(content: str) -> Grade:
    """The grader's JSON object as a Grade; ValueError (so the client asks again) naming what is wrong."""
    from llm.client import loads_json_object

    data = loads_json_object(content)
    verdict = data.get("verdict")
    if verdict not in VERDICT_SCORES:
        raise ValueError(f"verdict must be one of {', '.join(VERDICT_SCORES)}, got {verdict!r}")
    rationale = data.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        raise ValueError("rationale must be a non-empty string")
    return Grade(verdict=verdict, rationale=rationale.strip())


def grader_messages(*, query: str, reference: str, answer: str, conversation: list[dict] | None = None) -> list[dict]:
    """The grader's two messages. Each field is capped on its own and sits in a slot whose boundary
    is drawn for this request (`llm.slots`): the answer to grade cannot close its slot and speak as
    the prompt. The question, the reference and the answer are whole, or PromptDoesNotFit (the item
    is recorded as failed with that reason); the conversation keeps its newest part."""
    texts = [query, reference, answer, *(str(m.get("content", "")) for m in conversation or [])]
    b = new_boundary(texts)
    parts = []
    if conversation:
        earlier = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in conversation)
        cap = int(settings.JUDGE_HISTORY_MAX_CHARS)
        text = shown(earlier[-cap:] if len(earlier) > cap else earlier)
        parts.append(slot(b, "EARLIER IN THE CONVERSATION", text if len(earlier) <= cap else "[…] " + text))
    parts += [slot(b, "QUESTION", whole("the question", query, int(settings.JUDGE_QUERY_MAX_CHARS),
                                        "JUDGE_QUERY_MAX_CHARS")),
              slot(b, "REFERENCE ANSWER", whole("the reference answer", reference,
                                                int(settings.JUDGE_ANSWER_MAX_CHARS), "JUDGE_ANSWER_MAX_CHARS")),
              slot(b, "ANSWER TO GRADE", whole("the answer to grade", answer, int(settings.JUDGE_ANSWER_MAX_CHARS),
                                               "JUDGE_ANSWER_MAX_CHARS") or "(empty)")]
    system = GRADER_SYSTEM.replace("\nReply with one JSON", "\n" + slots_rule(b, "question, the reference answer, the "
                                   "answer to grade and any earlier conversation") + "\nReply with one JSON", 1)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def candidate_messages(*, system_prompt: str, query: str, contexts: list[str] | None,
                       conversation: list[dict] | None) -> list[dict]:
    """The release's own system prompt, the conversation so far, the retrieved passages the item was
    answered with, then the question: the release answers as it would have in production. The
    passages are user content, never the system role: retrieved text is data, not instructions."""
    system = system_prompt.strip()
    messages = [{"role": "system", "content": system}] if system else []
    for m in conversation or []:
        role = m.get("role") if m.get("role") in ("user", "assistant") else "user"
        messages.append({"role": role, "content": str(m.get("content", ""))})
    if contexts:
        passages = "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))
        messages.append({"role": "user", "content": f"Answer using these retrieved passages:\n{passages}"})
    messages.append({"role": "user", "content": query})
    return messages
