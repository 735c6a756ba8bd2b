"""The pairwise judge itself: its prompt, one call in one order, and how two orders combine.

No database here: the judge pass (`judge.py`) and calibration (`calibration.py`) both use it.
As FastChat's MT-Bench judge and Arena-Hard-Auto do, every pair is judged twice with the answers
swapped; two orders that disagree make the pair "inconsistent", a tie. A judge that always picks
the answer shown first therefore never produces a win.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from django.conf import settings

from llm import client as llm

from .slots import PromptDoesNotFit, slot_values

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
VERDICTS = ("A", "B", "tie")
CANDIDATE_FIRST, SERVED_FIRST = "candidate_first", "served_first"
T = TypeVar("T")


class PromptMissing(Exception):
    pass


@dataclass(frozen=True)
class Prompt:
    version: str
    system: str
    user: str


def load_prompt(version: str | None = None) -> Prompt:
    """The versioned prompt file shadow/prompts/<version>.txt: a "### system" and a "### user" part."""
    version = version or settings.JUDGE_PROMPT_VERSION
    if not re.fullmatch(r"[A-Za-z0-9._-]+", version or ""):
        raise PromptMissing(f"JUDGE_PROMPT_VERSION: {version!r} is not a prompt file name")
    path = PROMPTS / f"{version}.txt"
    if not path.exists():
        raise PromptMissing(f"no judge prompt {path} (JUDGE_PROMPT_VERSION={version})")
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^### (system|user)\s*$", text, flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], (p.strip("\n") for p in parts[2::2])))
    if set(sections) != {"system", "user"}:
        raise PromptMissing(f"{path}: expected a '### system' and a '### user' section")
    return Prompt(version=version, system=sections["system"], user=sections["user"])


_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Put values into {name} slots in one pass: text inside a value (an answer quoting "{query}",
    a JSON example) is never read as a slot."""
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def modes_text(modes: list[dict]) -> str:
    return "\n".join(f"- {m['code']}: {m['name']}" + (f" - {m['description']}" if m.get("description") else "")
                     for m in modes) or "(none defined)"


@dataclass(frozen=True)
class Case:
    """What the judge sees of one comparison, before the two answers are put in an order."""

    query: str
    conversation: tuple = ()  # ({"role", "content"}, ...)
    contexts: tuple = ()
    first: str = ""  # the candidate's answer (shadow) or response_a (calibration)
    second: str = ""  # the served answer (shadow) or response_b (calibration)
    # How a reason names each answer (a pair over its cap is unjudged with that reason).
    names: tuple = ("the candidate's answer", "the served answer")


def messages_for(prompt: Prompt, case: Case, swapped: bool, modes: list[dict]) -> list[dict]:
    """The judge's two messages; each field capped and delimited on its own (see `slots`). Raises
    PromptDoesNotFit when the user's message or an answer cannot be shown whole."""
    a, b = (case.second, case.first) if swapped else (case.first, case.second)
    names = case.names[::-1] if swapped else case.names
    values = slot_values(query=case.query, conversation=tuple(case.conversation), contexts=tuple(case.contexts),
                         answer_a=a, answer_b=b, names=names, template=prompt.user)
    values["failure_modes"] = modes_text(modes)
    return [{"role": "system", "content": fill(prompt.system, values)},
            {"role": "user", "content": fill(prompt.user, values)}]


def parse_judgement(content: str, codes: set[str]) -> dict:
    """The judge's JSON, checked: raises ValueError naming what is wrong (the judge is re-asked).
    Failure-mode codes outside the taxonomy are dropped and counted, not an error."""
    data = llm.loads_json_object(content)
    verdict = data.get("verdict")
    normal = {"a": "A", "b": "B", "tie": "tie"}.get(verdict.strip().lower()) if isinstance(verdict, str) else None
    if normal is None:
        raise ValueError(f'"verdict": expected "A", "B" or "tie", got {verdict!r}'[:200])
    rationale = data.get("rationale")
    if not isinstance(rationale, str):
        raise ValueError('"rationale": expected a string')
    out = {"verdict": normal, "rationale": rationale, "dropped": 0}
    for key in ("failure_modes_a", "failure_modes_b"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ValueError(f'"{key}": expected a list of failure-mode codes')
        kept = []
        for code in value:
            code = code.strip().upper()
            if code in codes:
                if code not in kept:
                    kept.append(code)
            else:
                out["dropped"] += 1
        out[key] = kept
    return out


@dataclass
class OrderResult:
    """One order's outcome: a verdict, or why there is none."""

    swapped: bool
    verdict: str = ""  # "A" | "B" | "tie", as the judge said it
    rationale: str = ""
    failure_modes_a: list = field(default_factory=list)
    failure_modes_b: list = field(default_factory=list)
    dropped: int = 0
    raw: str = ""
    attempts: int = 0
    cost_usd: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""
    malformed: bool = False  # the output never validated (final); otherwise an error is transient
    unfit: bool = False  # never asked: a field the judge must see whole is over its cap (final)

    @property
    def ok(self) -> bool:
        return bool(self.verdict)

    def winner(self) -> str:
        """'first' | 'second' | 'tie' in the case's terms (first = the candidate / response_a)."""
        if self.verdict == "tie":
            return "tie"
        shown_first_won = self.verdict == "A"
        return "first" if shown_first_won != self.swapped else "second"

    def modes(self) -> tuple[list, list]:
        """(modes of the first answer, modes of the second), undoing the swap."""
        return (self.failure_modes_b, self.failure_modes_a) if self.swapped else (self.failure_modes_a,
                                                                                 self.failure_modes_b)


def judge_order(ep: llm.Endpoint, prompt: Prompt, case: Case, *, swapped: bool, modes: list[dict],
                codes: set[str], spend: llm.Spend | None = None) -> OrderResult:
    """Ask the judge once (re-asking on malformed output, bounded by LLM_MAX_INVALID); `spend` says
    whose ledger cap pays (the judge's by default)."""
    seen = {"raw": "", "attempts": 0}

    def parse(content: str) -> dict:
        seen["raw"], seen["attempts"] = content, seen["attempts"] + 1
        return parse_judgement(content, codes)

    try:
        messages = messages_for(prompt, case, swapped, modes)
    except PromptDoesNotFit as e:  # judged on part of an answer is worse than not judged
        return OrderResult(swapped=swapped, error=str(e), malformed=True, unfit=True)
    usage = llm.Usage()
    result = OrderResult(swapped=swapped)
    try:
        parsed, reply = llm.chat_json(ep, messages, parse, temperature=0.0, usage=usage, spend=spend)
        result.verdict, result.rationale = parsed["verdict"], parsed["rationale"]
        result.failure_modes_a, result.failure_modes_b = parsed["failure_modes_a"], parsed["failure_modes_b"]
        result.dropped = parsed["dropped"]
    except llm.LLMOutputInvalid as e:
        result.error, result.malformed = f"malformed judge output: {e}"[:500], True
    except (llm.LLMUnavailable, llm.LLMError, llm.BudgetExceeded, llm.AlreadyAsked) as e:
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
    result.raw, result.attempts = seen["raw"], seen["attempts"]
    result.cost_usd, result.prompt_tokens, result.completion_tokens = (usage.cost_usd, usage.prompt_tokens,
                                                                       usage.completion_tokens)
    return result


def combine(first: OrderResult, second: OrderResult) -> str:
    """Two orders' winners -> 'first' | 'second' | 'tie' | 'inconsistent' (both must be ok)."""
    w1, w2 = first.winner(), second.winner()
    return w1 if w1 == w2 else "inconsistent"


def stream(fn: Callable[[T], object], items: Iterable[T], *, concurrency: int) -> Iterator[tuple[T, object]]:
    """(item, fn(item) or the exception it raised) as each finishes: `llm.client.stream` (its threads
    share this thread's database connection, for the ledger)."""
    return llm.stream(fn, items, concurrency=concurrency)
