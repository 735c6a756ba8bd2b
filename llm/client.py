"""The one module that talks to an LLM: any OpenAI-compatible endpoint, through the openai SDK.

Generation, the shadow candidates and judge, and the offline grader all call `chat_json` (or
`chat_text`) with an `Endpoint`; nothing else builds a request. What it guarantees:
- every message's text passes the PII redactor before it leaves (`LLM_REDACT_PII`, on by default);
- retries are ours, not the SDK's (max_retries=0): rate limits, timeouts, connection and server
  errors back off exponentially a bounded number of times; output that does not validate is asked
  for again, also bounded;
- every request's tokens are counted, retries included, because every request is paid for;
- every request is reserved in the spend ledger before it is sent and settled with the usage the
  server reports (llm/ledger.py): one daily cap per purpose, shared by every process;
- tools are sent only when the caller hands their definitions (a shadow replay of a turn with
  recorded tool calls, which answers each call with the recorded result); otherwise a candidate
  that would call tools answers in text and cannot act.
"""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable, Iterator, TypeVar

import openai
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from core.pii import redact_messages

from . import ledger
from .ledger import AlreadyAsked, BudgetExceeded, CapReached, Spend, job_label, job_spend, spend_today  # noqa: F401

TRANSIENT = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError)
T = TypeVar("T")
R = TypeVar("R")


class LLMError(Exception):
    """The request cannot succeed as asked (bad key, unknown model, ...): retrying will not help."""


class LLMNotConfigured(LLMError):
    pass


class LLMUnavailable(Exception):
    """Transient errors outlasted our retries; the work is kept and can be retried later."""


class LLMOutputInvalid(LLMError):
    """The model kept answering with something that is not the JSON asked for."""


@dataclass(frozen=True)
class Endpoint:
    """Where and what to ask: base URL, key, model, and the prices that make a cost of the tokens."""

    role: str  # "OPENAI", "JUDGE", "GRADER", or "release:<name>": named in error messages
    base_url: str
    api_key: str
    model: str
    price_in_per_1k: Decimal = Decimal(0)
    price_out_per_1k: Decimal = Decimal(0)
    timeout: float = 60.0
    key_name: str = "OPENAI_API_KEY"  # where the key comes from, named when it is missing

    def missing(self) -> list[str]:
        """The settings to set, named as a user would set them (the shared OPENAI_* ones first)."""
        out = [name for name, value in (("OPENAI_BASE_URL", self.base_url), (self.key_name, self.api_key))
               if not value]
        if not self.model:
            out.append(f"{self.role}_MODEL")
        return out

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (self.price_in_per_1k * prompt_tokens + self.price_out_per_1k * completion_tokens) / 1000


def endpoint(role: str, *, model: str | None = None) -> Endpoint:
    """The endpoint configured for a role (settings `<ROLE>_BASE_URL`, `_API_KEY`, `_MODEL`,
    `_PRICE_PER_1K_PROMPT_TOKENS`, `_PRICE_PER_1K_COMPLETION_TOKENS`); a role without its own base
    URL or key uses `OPENAI_BASE_URL` / `OPENAI_API_KEY`."""
    def get(name, default=None):
        value = getattr(settings, f"{role}_{name}", None)
        return default if value in (None, "") else value

    return Endpoint(
        role=role,
        base_url=get("BASE_URL", settings.OPENAI_BASE_URL),
        api_key=get("API_KEY", settings.OPENAI_API_KEY),
        model=model or get("MODEL", ""),
        price_in_per_1k=Decimal(str(get("PRICE_PER_1K_PROMPT_TOKENS", 0))),
        price_out_per_1k=Decimal(str(get("PRICE_PER_1K_COMPLETION_TOKENS", 0))),
        timeout=float(settings.LLM_TIMEOUT_SECONDS),
    )


def endpoint_for(*, role: str, base_url: str, api_key_env: str, model: str, price_in=0, price_out=0) -> Endpoint:
    """An endpoint described by a record (a release): its key is the environment variable the record
    names (settings.RELEASE_API_KEYS), so no key is ever stored in the database.

    OPENAI_API_KEY is the key of OPENAI_BASE_URL only: a record with a base URL of its own gets the
    key it names or none (the endpoint is then "not configured", naming the variable to set), never
    the shared key, which a custom URL would otherwise receive."""
    key = settings.RELEASE_API_KEYS.get(api_key_env, "") if api_key_env else ""
    own_url = bool(base_url) and base_url.rstrip("/") != (settings.OPENAI_BASE_URL or "").rstrip("/")
    if own_url:
        key_name = api_key_env or f"the api_key_env of {role} (its base URL is its own)"
    else:
        key, key_name = key or settings.OPENAI_API_KEY, api_key_env or "OPENAI_API_KEY"
    return Endpoint(role=role, base_url=base_url or settings.OPENAI_BASE_URL, api_key=key,
                    model=model, price_in_per_1k=Decimal(str(price_in)), price_out_per_1k=Decimal(str(price_out)),
                    timeout=float(settings.LLM_TIMEOUT_SECONDS), key_name=key_name)


def not_configured_message(ep: Endpoint, hint: str = "") -> str:
    missing = ep.missing()
    return (f"no LLM endpoint configured: set {' and '.join(missing)} (any OpenAI-compatible endpoint, e.g. "
            f"OPENAI_BASE_URL=https://api.openai.com/v1 and OPENAI_API_KEY=sk-...; {ep.role}_BASE_URL and "
            f"{ep.role}_API_KEY override them for the {ep.role.lower()} calls){hint}")


@dataclass
class Usage:
    """Tokens and requests, added to from several threads."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    cost_usd: Decimal = Decimal(0)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, ep: Endpoint, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cost_usd += ep.cost(prompt_tokens, completion_tokens)

    def request(self) -> None:
        with self._lock:
            self.attempts += 1

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text[:300])


class Budget:
    """One run's own cap (an offline run's --max-usd), on top of the ledger's daily cap per purpose:
    a request is not sent once it is reached. Requests already in flight may take the run a little
    past it; the daily caps of the ledger are reserved before sending and are never passed."""

    def __init__(self, max_usd: float | Decimal | None, spent: Decimal = Decimal(0)):
        self.max_usd = None if max_usd is None else Decimal(str(max_usd))
        self.spent = Decimal(spent)
        self.stopped = False
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            if self.max_usd is not None and self.spent >= self.max_usd:
                self.stopped = True
                raise BudgetExceeded(f"budget of ${self.max_usd} reached (${self.spent:.4f} spent)")

    def spend(self, usd: Decimal) -> None:
        with self._lock:
            self.spent += usd


_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()


def get_client(ep: Endpoint) -> openai.OpenAI:
    """One SDK client (one connection pool) per endpoint, shared by threads."""
    if ep.missing():
        raise LLMNotConfigured(not_configured_message(ep))
    key = (ep.base_url, ep.api_key, ep.timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key, timeout=ep.timeout,
                                          max_retries=0)
        return _clients[key]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def loads_json_object(content: str | None) -> dict:
    """The one JSON object a model was asked for (a code fence around it is tolerated).
    Raises ValueError naming what is wrong."""
    if not content or not content.strip():
        raise ValueError("empty response")
    fenced = _FENCE.match(content)  # some servers wrap JSON mode output in a code fence anyway
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError("expected one JSON object")
    return data


def _backoff(attempt: int, error: Exception) -> float:
    delay = float(settings.LLM_BACKOFF_SECONDS) * 2 ** attempt
    # A 429 may say how long to wait; honour it within the cap.
    response = getattr(error, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass
    return min(delay, float(settings.LLM_BACKOFF_MAX_SECONDS))


@dataclass
class Reply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: Decimal
    # The tool calls asked for ({"id", "name", "arguments"}), when tools were sent.
    tool_calls: list = field(default_factory=list)


def purpose_of(ep: Endpoint) -> str:
    """The ledger purpose of a request whose caller did not name one, from its endpoint's role."""
    if ep.role.startswith("release:"):
        return "replay"
    return {"JUDGE": "judge", "GRADER": "grader"}.get(ep.role, "generation")


def _send(ep: Endpoint, messages: list[dict], temperature: float, json_mode: bool, usage: Usage,
          budget: Budget | None, max_tokens: int | None, spend: Spend | None = None,
          tools: list | None = None) -> Reply:
    """One request with transient retries, reserved and settled in the ledger; counts usage. Tools
    only when the caller hands them. `max_tokens` is always sent (LLM_MAX_TOKENS by default): it
    bounds the worst case."""
    client = get_client(ep)
    spend = spend or Spend(purpose=purpose_of(ep))
    transient = 0
    max_tokens = int(max_tokens or settings.LLM_MAX_TOKENS)
    kwargs = {"response_format": {"type": "json_object"}} if json_mode else {}
    kwargs["max_tokens"] = max_tokens
    if tools:
        kwargs["tools"] = tools
    if budget is not None:
        budget.check()
    worst = ep.cost(ledger.worst_case_tokens(messages), max_tokens)
    entry = ledger.spend_reserve(spend=spend, usd=worst, model=ep.model)
    attempts = 0
    unknown = False  # a timeout or a dropped connection: the server may have answered (and billed)
    try:
        while True:
            if spend.beat is not None:
                with ledger.db_lock:
                    spend.beat()
            usage.request()
            attempts += 1
            started = time.monotonic()
            try:
                response = client.chat.completions.create(model=ep.model, messages=messages,
                                                          temperature=temperature, **kwargs)
            except TRANSIENT as e:
                unknown = unknown or isinstance(e, (openai.APITimeoutError, openai.APIConnectionError))
                usage.error(f"{type(e).__name__}: {e}")
                if transient >= int(settings.LLM_MAX_RETRIES):
                    raise LLMUnavailable(f"{ep.role}: {type(e).__name__} after {transient + 1} attempts: {e}") from e
                time.sleep(_backoff(transient, e))
                transient += 1
                continue
            except openai.APIError as e:
                raise LLMError(f"{ep.role}: {type(e).__name__}: {e}") from e
            break
    except BaseException as e:
        # Released only when every attempt got an HTTP error back; anything else (a timeout, a time
        # limit or an interrupt mid-request) may have been answered and billed: kept at its worst case.
        if unknown or not isinstance(e, (LLMError, LLMUnavailable)):
            ledger.spend_keep(entry_id=entry, attempts=attempts)
        else:
            ledger.spend_release(entry_id=entry, attempts=attempts)
        raise
    latency = (time.monotonic() - started) * 1000
    p = (response.usage.prompt_tokens or 0) if response.usage is not None else 0
    c = (response.usage.completion_tokens or 0) if response.usage is not None else 0
    # No usage reported: the answer is counted at its worst case.
    ledger.spend_settle(entry_id=entry, cost_usd=ep.cost(p, c) if response.usage is not None else worst,
                        prompt_tokens=p, completion_tokens=c, attempts=attempts)
    usage.add(ep, p, c)
    cost = ep.cost(p, c)
    if budget is not None:
        budget.spend(cost)
    message = response.choices[0].message if response.choices else None
    calls = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
             for t in (getattr(message, "tool_calls", None) or []) if getattr(t, "function", None)]
    return Reply(content=(message.content if message else None) or "", prompt_tokens=p, completion_tokens=c,
                 latency_ms=latency, cost_usd=cost, tool_calls=calls)


def chat_text(ep: Endpoint, messages: list[dict], *, temperature: float = 0.0, usage: Usage | None = None,
              budget: Budget | None = None, max_tokens: int | None = None, spend: Spend | None = None,
              redact: bool = True, tools: list | None = None) -> Reply:
    """A plain answer (a candidate model answering a user's query). `spend` says whose cap pays (by
    default the purpose of the endpoint's role). `redact=False` sends the text as it is: only for a
    release whose data boundary allows raw production text. `tools`: tool definitions; the reply's
    `tool_calls` lists the calls the model asked for."""
    usage = usage if usage is not None else Usage()
    return _send(ep, _clean(messages) if redact else messages, temperature, False, usage, budget, max_tokens, spend,
                 tools)


def chat_json(ep: Endpoint, messages: list[dict], parse: Callable[[str], T], *, temperature: float = 0.0,
              usage: Usage | None = None, budget: Budget | None = None, max_invalid: int | None = None,
              max_tokens: int | None = None, spend: Spend | None = None) -> tuple[T, Reply]:
    """Ask until `parse(content)` accepts the answer (it raises ValueError naming what is wrong, and
    the model is told). Returns the parsed value and the last reply; `usage` counts every request."""
    usage = usage if usage is not None else Usage()
    max_invalid = int(settings.LLM_MAX_INVALID) if max_invalid is None else max_invalid
    messages = _clean(messages)
    invalid = 0
    while True:
        this = spend
        if spend is not None and spend.key is not None and invalid:
            # a re-ask after invalid output is a request of its own
            this = Spend(purpose=spend.purpose, job=spend.job, key=f"{spend.key}#{invalid}", beat=spend.beat)
        reply = _send(ep, messages, temperature, True, usage, budget, max_tokens, this)
        try:
            return parse(reply.content), reply
        except ValueError as e:
            usage.error(f"malformed output: {e}")
            if invalid >= max_invalid:
                raise LLMOutputInvalid(f"malformed output {invalid + 1} times, last: {e}") from None
            invalid += 1
            messages = [*messages, {"role": "assistant", "content": reply.content[:2000]},
                        {"role": "user", "content": f"That was not valid: {e}. Answer again with only the JSON "
                                                    f"object described above."}]


def _clean(messages: list[dict]) -> list[dict]:
    return redact_messages(messages) if settings.LLM_REDACT_PII else messages


def map_concurrent(fn: Callable[[T], R], items: Iterable[T], *, concurrency: int) -> list[R | BaseException]:
    """fn over items with at most `concurrency` in flight; results in input order, an exception
    in place of the result of an item that raised (so one failure never loses the others).

    The threads use the caller's database connection (the ledger's statements take `ledger.db_lock`):
    the caller's transaction and job see what they write, and no connection is left behind."""
    items = list(items)
    if not items:
        return []
    conn = connections[DEFAULT_DB_ALIAS]

    def share():
        connections[DEFAULT_DB_ALIAS] = conn

    def safe(item):
        try:
            return fn(item)
        except Exception as e:  # recorded per item by the caller
            return e

    conn.inc_thread_sharing()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items))), thread_name_prefix="llm",
                                initializer=share) as pool:
            return list(pool.map(safe, items))
    finally:
        conn.dec_thread_sharing()


def stream(fn: Callable[[T], object], items: Iterable[T], *, concurrency: int) -> Iterator[tuple[T, object]]:
    """(item, fn(item) or the exception it raised) as each finishes, with at most `concurrency` in
    flight. Items are drawn lazily, so the caller may read and write the database between them.

    The threads share the caller's connection (as in `map_concurrent`); the caller's thread holds
    `ledger.db_lock` whenever it runs (drawing items, handling results) and lets go only while it
    waits, so its statements and transactions never interleave with the threads' ledger ones."""
    concurrency = max(1, concurrency)
    source = iter(items)
    conn = connections[DEFAULT_DB_ALIAS]

    def share():
        connections[DEFAULT_DB_ALIAS] = conn

    conn.inc_thread_sharing()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm", initializer=share) as pool:
            # Let go before the pool's shutdown waits for threads that may want the lock.
            ledger.db_lock.acquire()
            held = True
            try:
                inflight: dict = {}
                exhausted = False
                while True:
                    while not exhausted and len(inflight) < concurrency * 2:
                        item = next(source, None)
                        if item is None:
                            exhausted = True
                            break
                        inflight[pool.submit(fn, item)] = item
                    if not inflight:
                        return
                    ledger.db_lock.release()
                    held = False
                    done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                    ledger.db_lock.acquire()
                    held = True
                    for future in done:
                        item = inflight.pop(future)
                        try:
                            yield item, future.result()
                        except Exception as e:  # noqa: BLE001 - handed to the caller, per item
                            yield item, e
            finally:
                if held:
                    ledger.db_lock.release()
    finally:
        conn.dec_thread_sharing()
