"""The one module that talks to an LLM: any OpenAI-compatible endpoint, through the openai SDK.

Retries are ours, not the SDK's (max_retries=0): rate limits, timeouts, connection and server
errors back off exponentially, a bounded number of times; output that is not the JSON we asked
for is asked for again, also bounded. Every request's token usage is counted, retries included,
because every request is paid for.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

import openai
from django.conf import settings

TRANSIENT = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError)


def setting(name: str, default=None):
    """A Django setting, else the environment variable of the same name, else the default."""
    value = getattr(settings, name, None)
    if value in (None, ""):
        value = os.environ.get(name, "")
    return default if value in (None, "") else value


class LLMError(Exception):
    """The request cannot succeed as asked (bad key, unknown model, ...): retrying will not help."""


class LLMNotConfigured(LLMError):
    pass


class LLMUnavailable(Exception):
    """Transient errors outlasted our retries; the run is kept and can be retried later."""


class LLMOutputInvalid(LLMError):
    """The model kept answering with something that is not the JSON asked for."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    def cost_usd(self) -> Decimal:
        per_1k_in = Decimal(str(setting("GENERATION_PRICE_PER_1K_PROMPT_TOKENS", 0)))
        per_1k_out = Decimal(str(setting("GENERATION_PRICE_PER_1K_COMPLETION_TOKENS", 0)))
        return (per_1k_in * self.prompt_tokens + per_1k_out * self.completion_tokens) / 1000


def missing_settings() -> list[str]:
    return [name for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY") if not setting(name)]


def not_configured_message() -> str:
    missing = missing_settings()
    return (f"no LLM endpoint configured: set {' and '.join(missing)} (any OpenAI-compatible endpoint, e.g. "
            f"OPENAI_BASE_URL=https://api.openai.com/v1 and OPENAI_API_KEY=sk-...; the model comes from "
            f"GENERATION_MODEL or --model), or run with --offline for the rule-based generator")


def default_model() -> str:
    return setting("GENERATION_MODEL", "gpt-4o-mini")


def get_client() -> openai.OpenAI:
    if missing_settings():
        raise LLMNotConfigured(not_configured_message())
    return openai.OpenAI(base_url=setting("OPENAI_BASE_URL"), api_key=setting("OPENAI_API_KEY"),
                         timeout=float(setting("GENERATION_LLM_TIMEOUT_SECONDS", 60)), max_retries=0)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_cases(content: str | None) -> list[dict]:
    """{"cases": [{"query": str, "reference_answer": str|null, "rationale": str}]} -> the cases.

    Raises ValueError naming what is wrong; the caller asks again."""
    if not content or not content.strip():
        raise ValueError("empty response")
    fenced = _FENCE.match(content)  # some servers wrap JSON mode output in a code fence anyway
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
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


def _backoff(attempt: int, error: Exception) -> float:
    base = float(setting("GENERATION_LLM_BACKOFF_SECONDS", 2.0))
    cap = float(setting("GENERATION_LLM_BACKOFF_MAX_SECONDS", 60.0))
    delay = base * 2 ** attempt
    # A 429 may say how long to wait; honour it within the cap.
    response = getattr(error, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass
    return min(delay, cap)


def complete_cases(*, messages: list[dict], model: str, temperature: float, usage: Usage,
                   client: openai.OpenAI | None = None) -> list[dict]:
    """Ask for cases until the answer validates. `usage` is updated in place, also when this raises."""
    client = client or get_client()
    max_transient = int(setting("GENERATION_LLM_MAX_RETRIES", 5))
    max_invalid = int(setting("GENERATION_LLM_MAX_INVALID", 2))
    transient = invalid = 0
    while True:
        usage.attempts += 1
        try:
            response = client.chat.completions.create(
                model=model, messages=messages, temperature=temperature, response_format={"type": "json_object"})
        except TRANSIENT as e:
            usage.errors.append(f"{type(e).__name__}: {e}"[:300])
            if transient >= max_transient:
                raise LLMUnavailable(f"{type(e).__name__} after {usage.attempts} attempts: {e}") from e
            time.sleep(_backoff(transient, e))
            transient += 1
            continue
        except openai.APIError as e:
            raise LLMError(f"{type(e).__name__}: {e}") from e
        if response.usage is not None:
            usage.prompt_tokens += response.usage.prompt_tokens or 0
            usage.completion_tokens += response.usage.completion_tokens or 0
        content = response.choices[0].message.content if response.choices else None
        try:
            return parse_cases(content)
        except ValueError as e:
            usage.errors.append(f"malformed output: {e}"[:300])
            if invalid >= max_invalid:
                raise LLMOutputInvalid(f"malformed output {invalid + 1} times, last: {e}") from None
            invalid += 1
            messages = [*messages, {"role": "assistant", "content": (content or "")[:2000]},
                        {"role": "user", "content": f"That was not valid: {e}. Answer again with only the JSON "
                                                    f"object described above."}]
