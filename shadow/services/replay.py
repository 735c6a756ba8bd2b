"""Replay: evalgap asks a candidate release the queries production answered, never showing users.

The sample is whole conversations: sessions ordered by sha256(salt ‖ source ‖ session id) and
taken in that order until N turns of the day are in, so the same salt always draws the same
conversations (and a conversation spanning days is in or out on every day), independent of any
rollout bucket. Each sampled turn is sent with the conversation before it (the answers users saw)
and the contexts retrieval logged for it, so only generation differs between the two answers.
What the candidate may see is the release's data boundary: `same` sends the served model's input
as production logged it (raw), `redacted` (the default) sends it through the PII redactor, and the
pair says which. A turn with recorded tool calls is replayed with them (`tool_replay`); a turn
without sends no tools, and a candidate that would call tools answers in text.
"""
from __future__ import annotations

from dataclasses import replace

import hashlib
import logging
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.jobs import job_fail, job_finish, job_held, job_progress, safe_error
from llm import client as llm
from production.models import Turn
from releases.models import Release
from releases.selectors import release_turn_filter

from ..models import Outcome, ShadowPair, ShadowRun
from .context import conversation, histories
from .tool_replay import Diverged, answer_with_tools, recorded_tool_calls, tool_definitions

log = logging.getLogger(__name__)


class ShadowError(Exception):
    """The run cannot be done as asked (unknown release, bad day); the message says which."""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def session_rank(salt: str, source: str, session: str) -> str:
    return hashlib.sha256(f"{salt}\x1f{source}\x1f{session}".encode()).hexdigest()


def sample_turn_ids(*, release: Release, day: date, n: int, salt: str) -> list[int]:
    """The turns of `day` a replay of `release` asks about: whole conversations in salted-hash order
    until at least n turns (the last conversation is taken whole, so the count may pass n by less
    than its length). Turns the release served itself, and turns without an answer, are left out."""
    if n <= 0:
        return []
    start, end = day_bounds(day)
    of_day = Turn.objects.production().filter(timestamp__gte=start, timestamp__lt=end).exclude(response="")
    # Not `.exclude(release_turn_filter(...))`: on a turn without metadata.release the negated
    # JSON comparison is NULL, and SQL would drop the turn.
    own = set(of_day.filter(release_turn_filter(release)).values_list("id", flat=True))
    rows = of_day.values_list("id", "session_id", "source__name", "session__external_id")
    by_session: dict[int, list[int]] = {}
    keys: dict[int, str] = {}
    for turn_id, session_id, source, session in rows:
        if turn_id in own:
            continue
        by_session.setdefault(session_id, []).append(turn_id)
        keys[session_id] = session_rank(salt, source, session)
    picked: list[int] = []
    for session_id in sorted(by_session, key=lambda s: (keys[s], s)):
        if len(picked) >= n:
            break
        picked.extend(sorted(by_session[session_id]))
    return picked


def candidate_messages(release: Release, turn: Turn, history: list[Turn]) -> list[dict]:
    """What the candidate is sent: its system prompt, the conversation as the user saw it, the
    logged contexts, the query."""
    messages = [{"role": "system", "content": release.system_prompt}] if release.system_prompt else []
    messages += conversation(history)
    if turn.contexts:  # user content, never the system role: retrieved text is data, not instructions
        messages.append({"role": "user", "content": contexts_message(turn.contexts)})
    messages.append({"role": "user", "content": turn.query})
    return messages


def raw_input(release: Release) -> bool:
    """May the candidate get the production text as it is (its data boundary is `same`)?"""
    return release.data_boundary == Release.DataBoundary.SAME


def input_kind(release: Release) -> str:
    """What the candidate is sent, as the pair records it."""
    return "raw" if raw_input(release) or not settings.LLM_REDACT_PII else "redacted"


def candidate_answer(ep: llm.Endpoint, release: Release, turn: Turn, history: list[Turn], *,
                     spend: llm.Spend | None = None, usage: llm.Usage | None = None) -> llm.Reply:
    """The candidate's answer to one turn, on the input its data boundary allows, with the turn's
    recorded tool calls replayed. Raises Diverged when it calls a tool production did not. Each
    request of a tool exchange is its own ledger entry: the first under `spend`'s key, the k-th
    under that key + ":tools:k" (never asked twice either)."""
    raw = raw_input(release)
    rounds = iter(range(1_000_000))

    def send(messages: list[dict], tools: list[dict] | None = None) -> llm.Reply:
        k = next(rounds)
        pay = spend if spend is None or not k or spend.key is None else replace(spend, key=f"{spend.key}:tools:{k}")
        return llm.chat_text(ep, messages, usage=usage, redact=not raw, tools=tools, spend=pay)

    messages = candidate_messages(release, turn, history)
    recorded = recorded_tool_calls(turn)
    if not recorded:
        return send(messages)
    return answer_with_tools(send, messages, recorded, tool_definitions(turn, recorded))


def contexts_message(contexts: list) -> str:
    return "Retrieved context for the next user message:\n\n" + "\n\n".join(
        f"[{i + 1}] {c}" for i, c in enumerate(contexts))


def release_endpoint(release: Release) -> llm.Endpoint:
    return llm.endpoint_for(role=f"release:{release.name}", base_url=release.base_url,
                            api_key_env=release.api_key_env, model=release.model,
                            price_in=settings.SHADOW_PRICE_PER_1K_PROMPT_TOKENS,
                            price_out=settings.SHADOW_PRICE_PER_1K_COMPLETION_TOKENS)


def replay_key(run_id: int, turn_id: int) -> str:
    """A replayed turn's ledger key: asked once per run, whatever re-executes it."""
    return f"shadow-run:{run_id}:turn:{turn_id}"


def shadow_run_create(*, release: str, day: date | None = None, sample: int | None = None,
                      user: str = "") -> ShadowRun:
    rel = Release.objects.filter(name=release).first()
    if rel is None:
        raise ShadowError(f"--release: no release named {release!r} (python manage.py release_add NAME --model M)")
    day = day or (timezone.now().astimezone(dt_timezone.utc).date() - timedelta(days=1))
    n = settings.SHADOW_SAMPLE_SIZE if sample is None else sample
    if n < 0:
        raise ShadowError("--sample: must be 0 or more")
    return ShadowRun.objects.create(release=rel, day=day, sample_size=n, salt=settings.SHADOW_SAMPLE_SALT,
                                    created_by=user)


def shadow_run_execute(*, run_id: int, progress=None) -> ShadowRun:
    """Replay one run's sample. Held by one live worker at a time (`job_held`, as ingest is); safe to
    run again: pairs are (turn, release) once, a turn already answered (by replay or mirror) is not
    asked again, one that failed is, and one this run asked before (a worker killed mid-request) is
    never asked twice: its ledger key says so.

    `progress(done, total)` is called as answers arrive (the command's progress bar).
    """
    with job_held(ShadowRun, run_id) as mine:
        if not mine:
            return ShadowRun.objects.get(pk=run_id)
        run = ShadowRun.objects.select_related("release").get(pk=run_id)
        try:
            _execute(run, progress)
        except Exception as e:
            job_fail(ShadowRun, run_id, e, **_costs(run.pk))
            raise
    return ShadowRun.objects.select_related("release").get(pk=run_id)


def _costs(run_id: int) -> dict:
    """The run's cost over all its executions, from the ledger (never a count kept in memory)."""
    spent = llm.job_spend(llm.job_label(ShadowRun, run_id))
    return {"cost_usd": spent["cost_usd"] + spent["reserved_usd"], "requests": spent["requests"],
            "prompt_tokens": spent["prompt_tokens"], "completion_tokens": spent["completion_tokens"]}


def _execute(run: ShadowRun, progress) -> None:
    release = run.release
    ids = sample_turn_ids(release=release, day=run.day, n=run.sample_size, salt=run.salt)
    answered_before = set(ShadowPair.objects.filter(release=release, turn_id__in=ids, error="")
                          .values_list("turn_id", flat=True))
    todo = [t for t in ids if t not in answered_before]
    job_progress(ShadowRun, run.pk, sampled=len(ids))
    ep = release_endpoint(release)
    if todo and ep.missing():
        raise llm.LLMNotConfigured(llm.not_configured_message(ep, hint=f" (release {release.name}: --base-url / "
                                                                       f"--api-key-env, or OPENAI_*)"))
    turns = {t.pk: t for t in Turn.objects.filter(pk__in=todo)}
    before = histories(list(turns.values()), settings.SHADOW_CONVERSATION_TURNS)
    job = llm.job_label(ShadowRun, run.pk)
    done = 0

    def beat():
        job_progress(ShadowRun, run.pk)

    def ask(turn_id: int):
        spend = llm.Spend(purpose="replay", job=job, key=replay_key(run.pk, turn_id), beat=beat)
        return candidate_answer(ep, release, turns[turn_id], before[turn_id], spend=spend)

    failed = not_sent = 0
    cap: llm.CapReached | None = None
    # Chunks keep the pair writes in this thread (the requests' ledger rows are written by their own).
    chunk = max(1, settings.SHADOW_CONCURRENCY * 8)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        if cap is not None:
            results = [cap] * len(part)  # the cap holds for the rest of the day: not asked
        else:
            results = llm.map_concurrent(ask, part, concurrency=settings.SHADOW_CONCURRENCY)
        for turn_id, result in zip(part, results):
            if isinstance(result, llm.BudgetExceeded):
                cap = cap or result
                not_sent += 1
                continue
            turn = turns[turn_id]
            fields = {"origin": ShadowPair.Origin.REPLAY, "run": run, "session_id": turn.session_id,
                      "day": run.day, "candidate_input": input_kind(release)}
            if isinstance(result, Diverged):  # ends the pair: never judged, never a loss
                fields.update(_diverged_fields(result))
            elif isinstance(result, Exception):
                failed += 1
                fields.update(error=safe_error(result) or "failed", candidate_answer="")
            else:
                fields.update(candidate_answer=result.content, latency_ms=result.latency_ms, error="",
                              prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                              cost_usd=result.cost_usd, outcome="", outcome_reason="")
            ShadowPair.objects.update_or_create(turn=turn, release=release, defaults=fields)
        done += len(part)
        job_progress(ShadowRun, run.pk, **_costs(run.pk))
        if progress:
            progress(done, len(todo))
    answered = ShadowPair.objects.filter(release=release, turn_id__in=ids, error="").count()
    reason = ""
    if cap is not None:
        reason = (f"{cap.setting} of ${cap.cap} reached (${max(cap.left, Decimal(0)):.4f} left today, the next "
                  f"request could cost up to ${cap.need:.4f}): {not_sent} of {len(ids)} sampled turns not asked")
        log.warning("shadow run %s: %s", run.pk, reason)
    job_finish(ShadowRun, run.pk, sampled=len(ids), answered=answered, failed=failed, not_sent=not_sent,
               budget_usd=cap.cap if cap is not None else llm.ledger.cap_usd("replay"),
               budget_stopped=cap is not None, budget_reason=reason, **_costs(run.pk))


def _diverged_fields(d: Diverged) -> dict:
    spent = d.spent
    return {"candidate_answer": spent.content, "latency_ms": spent.latency_ms, "error": "",
            "prompt_tokens": spent.prompt_tokens, "completion_tokens": spent.completion_tokens,
            "cost_usd": spent.cost_usd, "outcome": Outcome.DIVERGED, "outcome_reason": d.reason}


def shadow_runs_daily(*, day: date | None = None) -> list[int]:
    """The beat's daily work: one run per release marked for shadowing, for the day before."""
    return [shadow_run_create(release=r.name, day=day, user="beat").pk
            for r in Release.objects.filter(shadow_enabled=True).order_by("name")]
