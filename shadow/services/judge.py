"""Judge every unjudged pair: twice, with the answers swapped, at temperature 0.

A pair's outcome:
- both orders answered: the common winner, or `inconsistent` (a tie) when they disagree;
- an order whose output stayed malformed after the bounded re-asks: `unjudged`, with the reason
  (not retried automatically: the same judge would likely fail the same way);
- an order the judge could not be reached for (429s, timeouts, 5xx outlasting the retries): the
  pair stays pending with the reason, and the next pass asks only the missing order.
Each order is a `ShadowVerdict` row with the judge model, prompt version and the raw answer.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.jobs import job_claim, job_fail, job_finish, job_held, job_progress
from core.jsonl import JsonLineError, json_objects
from llm import client as llm
from releases.models import Release
from taxonomy.selectors import failure_mode_tree

from ..models import JudgeRun, Outcome, ShadowPair, ShadowVerdict
from .context import conversation, histories
from .judging import CANDIDATE_FIRST, SERVED_FIRST, Case, OrderResult, combine, judge_order, load_prompt, stream

ORDERS = (CANDIDATE_FIRST, SERVED_FIRST)
OUTCOME_OF = {"first": Outcome.CANDIDATE, "second": Outcome.SERVED, "tie": Outcome.TIE,
              "inconsistent": Outcome.INCONSISTENT}
WINNER_OF = {"first": ShadowVerdict.Winner.CANDIDATE, "second": ShadowVerdict.Winner.SERVED,
             "tie": ShadowVerdict.Winner.TIE}
PAIRS_PER_READ = 250  # pairs whose conversations are read from the database at once
FLUSH_EVERY = 200  # verdicts written per transaction


class JudgeError(Exception):
    pass


def active_modes() -> list[dict]:
    return [m for m in failure_mode_tree() if m["active"]]


def judge_run_create(*, release: str | None = None, user: str = "") -> JudgeRun:
    rel = None
    if release:
        rel = Release.objects.filter(name=release).first()
        if rel is None:
            raise JudgeError(f"--release: no release named {release!r}")
    ep = llm.endpoint("JUDGE")
    if ep.missing():
        raise llm.LLMNotConfigured(llm.not_configured_message(ep, hint=" (JUDGE_MODEL names the judge)"))
    return JudgeRun.objects.create(release=rel, judge_model=ep.model, prompt_version=load_prompt().version)


def pending_pairs(run: JudgeRun):
    qs = ShadowPair.objects.filter(outcome="", error="")
    if run.release_id:
        qs = qs.filter(release_id=run.release_id)
    return qs


@dataclass
class _Tally:
    judged: int = 0
    candidate_wins: int = 0
    served_wins: int = 0
    ties: int = 0
    inconsistent: int = 0
    failed: int = 0
    dropped_codes: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    pairs: int = 0

    def fields(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _PairState:
    pair: ShadowPair
    case: Case
    results: dict = field(default_factory=dict)  # order -> OrderResult (this pass and earlier ones)
    waiting: int = 0


def shadow_judge(*, run_id: int, progress=None) -> JudgeRun:
    """Judge the run's pending pairs. `progress(done_pairs, total_pairs)` drives a progress bar."""
    with job_held(JudgeRun, run_id) as mine:
        if not mine:
            return JudgeRun.objects.get(pk=run_id)
        run = JudgeRun.objects.get(pk=run_id)
        if run.judge_model.startswith("humans:"):
            job_fail(JudgeRun, run_id, "a pass of human picks cannot be resumed by the LLM judge: run "
                                       "shadow_judge --humans-from PATH again")
            return JudgeRun.objects.get(pk=run_id)
        try:
            _judge(run, progress)
        except Exception as e:
            job_fail(JudgeRun, run_id, e)
            raise
    return JudgeRun.objects.get(pk=run_id)


def _earlier(pair_ids: list[int], run: JudgeRun) -> dict[int, dict[str, OrderResult]]:
    """Orders already answered for these pairs by this judge and prompt (a pass that was cut short)."""
    out: dict[int, dict[str, OrderResult]] = {}
    for v in ShadowVerdict.objects.filter(pair_id__in=pair_ids, judge_model=run.judge_model,
                                          prompt_version=run.prompt_version).exclude(verdict=""):
        out.setdefault(v.pair_id, {})[v.order] = OrderResult(
            swapped=v.order == SERVED_FIRST, verdict=v.verdict, rationale=v.rationale,
            failure_modes_a=v.failure_modes_a, failure_modes_b=v.failure_modes_b)
    return out


def _judge(run: JudgeRun, progress) -> None:
    ep = llm.endpoint("JUDGE", model=run.judge_model)
    prompt = load_prompt(run.prompt_version)
    modes = active_modes()
    codes = {m["code"] for m in modes}
    ids = list(pending_pairs(run).order_by("id").values_list("id", flat=True))
    tally = _Tally(pairs=len(ids))
    job_progress(JudgeRun, run.pk, pairs=len(ids))
    states: dict[int, _PairState] = {}
    verdicts: list[ShadowVerdict] = []
    finished: list[_PairState] = []
    done = 0

    def work():
        """(pair id, order) to ask, reading pairs and their conversations a slice at a time."""
        for start in range(0, len(ids), PAIRS_PER_READ):
            part = ids[start:start + PAIRS_PER_READ]
            pairs = list(ShadowPair.objects.filter(pk__in=part).select_related("turn"))
            before = histories([p.turn for p in pairs], settings.SHADOW_CONVERSATION_TURNS)
            earlier = _earlier(part, run)
            for p in pairs:
                if stop:
                    return  # the judge's daily cap was reached: nothing more is asked
                case = Case(query=p.turn.query, conversation=tuple(conversation(before[p.turn_id])),
                            contexts=tuple(p.turn.contexts or ()), first=p.candidate_answer, second=p.turn.response)
                state = states[p.pk] = _PairState(pair=p, case=case, results=dict(earlier.get(p.pk, {})))
                missing = [o for o in ORDERS if o not in state.results]
                state.waiting = len(missing)
                if not missing:  # both orders were answered by an earlier pass that did not finish
                    finished.append(state)
                for order in missing:
                    yield p.pk, order

    job = llm.job_label(JudgeRun, run.pk)
    stop: list[str] = []  # the first cap refusal, once one came

    def beat():
        job_progress(JudgeRun, run.pk)

    def ask(item):
        pair_id, order = item
        # Keyed per run, pair and order: a pass re-executed after its worker died never asks twice.
        spend = llm.Spend(purpose="judge", job=job, key=f"judge-run:{run.pk}:pair:{pair_id}:{order}", beat=beat)
        return judge_order(ep, prompt, states[pair_id].case, swapped=order == SERVED_FIRST, modes=modes, codes=codes,
                           spend=spend)

    last_flush = time.monotonic()
    for (pair_id, order), result in stream(ask, work(), concurrency=settings.JUDGE_CONCURRENCY):
        state = states[pair_id]
        if isinstance(result, Exception):  # a bug, not the judge: recorded as a transient failure
            result = OrderResult(swapped=order == SERVED_FIRST, error=f"{type(result).__name__}: {result}"[:500])
        if result.error.startswith("CapReached") and not stop:
            stop.append(result.error.split(": ", 1)[1])
        state.results[order] = result
        state.waiting -= 1
        tally.requests += result.attempts
        tally.prompt_tokens += result.prompt_tokens
        tally.completion_tokens += result.completion_tokens
        tally.cost_usd += result.cost_usd
        tally.dropped_codes += result.dropped
        verdicts.append(_verdict_row(run, state.pair, order, result))
        if state.waiting == 0:
            finished.append(state)
        if len(verdicts) >= FLUSH_EVERY or time.monotonic() - last_flush > 5:
            done += _flush(run, verdicts, finished, states, tally)
            last_flush = time.monotonic()
            if progress:
                progress(done, len(ids))
    done += _flush(run, verdicts, finished, states, tally)
    if progress:
        progress(done, len(ids))
    # The run's cost over every execution is the ledger's, not this pass's count.
    spent = llm.job_spend(job)
    costs = {"cost_usd": spent["cost_usd"] + spent["reserved_usd"], "requests": spent["requests"],
             "prompt_tokens": spent["prompt_tokens"], "completion_tokens": spent["completion_tokens"]}
    if stop:
        left = pending_pairs(run).count()
        job_fail(JudgeRun, run.pk, f"{stop[0]}: {left} of {len(ids)} pairs left unjudged (asked by the next pass)",
                 **{**tally.fields(), **costs})
        return
    job_finish(JudgeRun, run.pk, **{**tally.fields(), **costs})


def _verdict_row(run: JudgeRun, pair: ShadowPair, order: str, r: OrderResult) -> ShadowVerdict:
    winner = WINNER_OF[r.winner()] if r.ok else ""
    return ShadowVerdict(pair=pair, run=run, order=order, judge_model=run.judge_model,
                         prompt_version=run.prompt_version, raw_answer=r.raw, verdict=r.verdict, winner=winner,
                         rationale=r.rationale, failure_modes_a=r.failure_modes_a, failure_modes_b=r.failure_modes_b,
                         dropped_codes=r.dropped, attempts=r.attempts, error=r.error, cost_usd=r.cost_usd)


def pair_outcome(results: dict[str, OrderResult]) -> tuple[str, str, list, list]:
    """(outcome, reason, candidate's modes, served's modes) from both orders; outcome "" = pending."""
    first, second = results[CANDIDATE_FIRST], results[SERVED_FIRST]
    unfit = [r for r in results.values() if r.unfit]
    if unfit:  # never asked: the reason names the field over its cap
        return Outcome.UNJUDGED, f"not judged: {unfit[0].error}", [], []
    malformed = [(o, r) for o, r in results.items() if r.malformed]
    if malformed:
        order, r = malformed[0]
        return Outcome.UNJUDGED, f"{order.replace('_', ' ')} order: {r.error} ({r.attempts} attempts)", [], []
    broken = [(o, r) for o, r in results.items() if not r.ok]
    if broken:
        order, r = broken[0]
        return "", f"judge unavailable in the {order.replace('_', ' ')} order: {r.error}", [], []
    cand = list(dict.fromkeys([*first.modes()[0], *second.modes()[0]]))
    served = list(dict.fromkeys([*first.modes()[1], *second.modes()[1]]))
    return OUTCOME_OF[combine(first, second)], "", cand, served


def _flush(run: JudgeRun, verdicts: list, finished: list, states: dict, tally: _Tally) -> int:
    now = timezone.now()
    with transaction.atomic():
        # A re-asked order replaces the failed row an earlier pass left (rows are unique per pair,
        # order, judge and prompt; answered orders are never asked again, so only failed rows go).
        if verdicts:
            ShadowVerdict.objects.filter(pair_id__in={v.pair_id for v in verdicts}, judge_model=run.judge_model,
                                         prompt_version=run.prompt_version, verdict="").exclude(run=run).delete()
        ShadowVerdict.objects.bulk_create(verdicts)
        for state in finished:
            outcome, reason, cand, served = pair_outcome(state.results)
            ShadowPair.objects.filter(pk=state.pair.pk, outcome="").update(
                outcome=outcome, outcome_reason=reason, judged_at=now if outcome else None,
                candidate_failure_modes=cand, served_failure_modes=served)
            if outcome in (Outcome.UNJUDGED, ""):
                tally.failed += 1
            else:
                tally.judged += 1
                tally.candidate_wins += outcome == Outcome.CANDIDATE
                tally.served_wins += outcome == Outcome.SERVED
                tally.ties += outcome == Outcome.TIE
                tally.inconsistent += outcome == Outcome.INCONSISTENT
            states.pop(state.pair.pk, None)
        job_progress(JudgeRun, run.pk, **tally.fields())
    n = len(finished)
    verdicts.clear()
    finished.clear()
    return n


# --- people standing in for the judge (the demo without any LLM endpoint) -----------------------

def shadow_judge_from_humans(*, path: str | Path, release: str | None = None) -> JudgeRun:
    """Record human pairwise preferences as the verdicts of pending pairs, for a demo with no LLM.

    `path`: JSON lines {"id", "response_a", "response_b", "human": "a" | "b" | "tie"} (the
    judge_calibrate format). A pending pair takes the line whose `id` is its turn's id, and whose
    response_a or response_b is its candidate answer (that says which side the humans' pick is).
    Both orders get the humans' pick, so these pairs are never inconsistent. The verdicts say
    where they came from: judge model "humans:<file name>", prompt version "human-preference".
    """
    path = Path(path)
    lines = {}
    try:
        for no, rec in json_objects(path):
            if rec.get("human") not in ("a", "b", "tie") or "id" not in rec:
                raise JudgeError(f"{path}:{no}: expected {{\"id\", \"response_a\", \"response_b\", "
                                 f"\"human\": \"a\" | \"b\" | \"tie\"}}")
            lines[str(rec["id"])] = rec
    except JsonLineError as e:
        raise JudgeError(f"{path}:{e.line_no}: {e.reason}") from None
    rel = Release.objects.filter(name=release).first() if release else None
    if release and rel is None:
        raise JudgeError(f"--release: no release named {release!r}")
    run = JudgeRun.objects.create(release=rel, judge_model=f"humans:{path.name}"[:255],
                                  prompt_version="human-preference")
    job_claim(JudgeRun, run.pk)
    tally = _Tally()
    qs = ShadowPair.objects.filter(outcome="", error="").select_related("turn")
    if rel:
        qs = qs.filter(release=rel)
    verdicts, finished, states = [], [], {}
    for pair in qs.order_by("id").iterator(chunk_size=1000):
        rec = lines.get(pair.turn.external_id)
        if rec is None:
            continue
        if pair.candidate_answer == rec.get("response_b"):
            winner = {"a": "second", "b": "first", "tie": "tie"}[rec["human"]]
        elif pair.candidate_answer == rec.get("response_a"):
            winner = {"a": "first", "b": "second", "tie": "tie"}[rec["human"]]
        else:
            continue
        tally.pairs += 1
        results = {}
        votes = rec.get("human_votes")
        votes = ", ".join(f"{k} {v}" for k, v in votes.items()) if isinstance(votes, dict) else rec["human"]
        for order in ORDERS:
            swapped = order == SERVED_FIRST
            shown_first_won = (winner == "first") != swapped
            verdict = "tie" if winner == "tie" else ("A" if shown_first_won else "B")
            results[order] = r = OrderResult(swapped=swapped, verdict=verdict,
                                             rationale=f"human preference from {path.name} (standing in for the "
                                                       f"judge; votes: {votes})",
                                             raw=json.dumps({"human": rec["human"], "id": rec["id"]}))
            verdicts.append(_verdict_row(run, pair, order, r))
        state = states[pair.pk] = _PairState(pair=pair, case=Case(query=""), results=results)
        finished.append(state)
        if len(verdicts) >= FLUSH_EVERY:
            _flush(run, verdicts, finished, states, tally)
    _flush(run, verdicts, finished, states, tally)
    job_finish(JudgeRun, run.pk, **tally.fields())
    return JudgeRun.objects.get(pk=run.pk)
