"""What generation asks the LLM, and how it reads the answer. The asking itself is `llm.client`'s."""
from __future__ import annotations

from django.conf import settings

from llm import client as llm


def generation_endpoint(model: str | None = None) -> llm.Endpoint:
    return llm.endpoint("GENERATION", model=model or settings.GENERATION_MODEL)


def not_configured_message() -> str:
    return llm.not_configured_message(generation_endpoint(), hint=", or run with --offline for the rule-based generator")


def missing_settings() -> list[str]:
    return generation_endpoint().missing()


def parse_cases(content: str | None) -> list[dict]:
    """{"cases": [{"query": str, "reference_answer": str|null, "rationale": str}]} -> the cases.

    Raises ValueError naming what is wrong; the caller asks again."""
    data = llm.loads_json_object(content)
    if not isinstance(data.get("cases"), list):
        raise ValueError('expected an object with a "cases" array')
    if not data["cases"]:
        raise ValueError('"cases" is empty')
    out = []
    for i, case in enumerate(data["cases"]):
        if not isinstance(case, dict):
            raise ValueError(f"cases[{i}]: expected an object")
        query, ref, why = case.get("query"), case.get("reference_answer"), case.get("rationale", "")
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"cases[{i}].query: expected a non-empty string")
        if ref is not None and not isinstance(ref, str):
            raise ValueError(f"cases[{i}].reference_answer: expected a string or null")
        if why is not None and not isinstance(why, str):
            raise ValueError(f"cases[{i}].rationale: expected a string")
        out.append({"query": query.strip(), "reference_answer": (ref or "").strip(), "rationale": (why or "").strip()})
    return out


def complete_cases(*, messages: list[dict], model: str, temperature: float, usage: llm.Usage,
                   spend: llm.Spend | None = None) -> list[dict]:
    """Ask for cases until the answer validates. `usage` is updated in place, also when this raises."""
    cases, _ = llm.chat_json(generation_endpoint(model), messages, parse_cases, temperature=temperature, usage=usage,
                             spend=spend)
    return cases
