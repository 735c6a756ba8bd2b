"""Offline runs: a release scored on a frozen test-set version, by generating and grading answers,
by grading the answers production served, or by importing scores computed elsewhere.

A run is a core.jobs.Job. Items are scored in chunks; each chunk's scores are written before the
next starts, so a run that stops (budget, an unavailable LLM, a killed worker) keeps what it paid
for and a resumed run scores only the items still missing.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from core import stats
from core.jobs import job_claim, job_fail, job_finish, job_held, job_progress, job_release
from llm import client as llm
from production.models import Turn
from releases.models import Release
from releases.selectors import release_get, release_turns
from testsets.models import TestItem, TestSetVersion
from testsets.selectors import TestSetError, version_get

from ..grader import VERDICT_SCORES, candidate_messages, grader_messages, parse_grade
from ..importers import Row, read_rows
from ..models import OfflineRun, OfflineScore

logger = logging.getLogger(__name__)


class OfflineError(Exception):
    """The run cannot be made as asked (unknown release, test set or version; a draft version; a
    file that matches no item). The message names the argument."""


# --- what is scored --------------------------------------------------------------------------------

def resolve(*, release: str, testset: str, version: int) -> tuple[Release, TestSetVersion]:
    rel = release_get(name=release)
    if rel is None:
        raise OfflineError(f"release: no release named {release!r} (create it with release_add)")
    try:
        ver = version_get(name=testset, number=version)
    except TestSetError as e:
        raise OfflineError(str(e)) from None
    if ver.status != TestSetVersion.Status.FROZEN:
        raise OfflineError(f"version: {testset} v{version} is a draft; offline scores are pinned to frozen "
                           f"versions (freeze_testset {testset})")
    return rel, ver


def grader_endpoint() -> llm.Endpoint:
    return llm.endpoint("GRADER")


def candidate_endpoint(release: Release) -> llm.Endpoint:
    return llm.endpoint_for(role=f"release:{release.name}", base_url=release.base_url,
                            api_key_env=release.api_key_env, model=release.model)


def _check_configured(run_mode: str, release: Release) -> None:
    grader = grader_endpoint()
    if grader.missing():
        raise llm.LLMNotConfigured(llm.not_configured_message(grader, " — the grader compares answers with the "
                                                                      "reference answers"))
    if run_mode == OfflineRun.Mode.GENERATE:
        cand = candidate_endpoint(release)
        if cand.missing():
            raise llm.LLMNotConfigured(
                f"release {release.name}: no endpoint to ask (set its base_url and api_key_env with release_add "
                f"--update, or OPENAI_BASE_URL and OPENAI_API_KEY)")


def offline_run_create(*, release: str, testset: str, version: int, mode: str = OfflineRun.Mode.GENERATE,
                       max_usd: float | None = None, user: str = "") -> OfflineRun:
    """A pending run (generate or served). Raises OfflineError, llm.LLMNotConfigured."""
    if mode not in (OfflineRun.Mode.GENERATE, OfflineRun.Mode.SERVED):
        raise OfflineError(f"mode: generate or served, not {mode!r} (imports use offline_import)")
    rel, ver = resolve(release=release, testset=testset, version=version)
    _check_configured(mode, rel)
    budget = settings.OFFLINE_MAX_USD if max_usd is None else max_usd
    return OfflineRun.objects.create(
        release=rel, version=ver, mode=mode, grader_model=grader_endpoint().model,
        candidate_model=rel.model if mode == OfflineRun.Mode.GENERATE else "",
        budget_usd=Decimal(str(budget)) if budget is not None else None, created_by=user)


# --- items and the turns they came from ------------------------------------------------------------

ITEM_COLUMNS = ("id", "key", "source", "query", "response", "reference_answer", "contexts", "conversation",
                "provenance")


def _turn_ids(items: list[dict]) -> dict[str, int]:
    """key -> production Turn id, for items that came from a production turn that is still held."""
    wanted: dict[tuple[str, str], str] = {}
    for it in items:
        prov = it.get("provenance") or {}
        if it.get("source") != "generated" and prov.get("turn_id") and prov.get("source"):
            wanted[(prov["source"], str(prov["turn_id"]))] = it["key"]
    out: dict[str, int] = {}
    pairs = list(wanted)
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start:start + 1000]
        cond = Q()
        for source, ext in chunk:
            cond |= Q(source__name=source, external_id=ext)
        for tid, source, ext in Turn.objects.filter(cond).values_list("id", "source__name", "external_id"):
            out[wanted[(source, ext)]] = tid
    return out


def _history(turn_ids: list[int]) -> dict[int, list[dict]]:
    """The conversation before each turn (up to LABELLING_CONVERSATION_TURNS turns), for items that
    carry none: a follow-up question means nothing without what came before."""
    keep = settings.LABELLING_CONVERSATION_TURNS
    out: dict[int, list[dict]] = {}
    for t in Turn.objects.filter(id__in=turn_ids).only("id", "session_id", "timestamp", "position"):
        earlier = Turn.objects.filter(session_id=t.session_id).exclude(id=t.id)
        if t.timestamp is not None:
            earlier = earlier.filter(timestamp__lt=t.timestamp).order_by("-timestamp", "-id")
        elif t.position is not None:
            earlier = earlier.filter(position__lt=t.position).order_by("-position", "-id")
        else:
            continue
        msgs = []
        for q, r in reversed(list(earlier.values_list("query", "response")[:keep])):
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": r}]
        out[t.id] = msgs
    return out


# --- scoring one item ----------------------------------------------------------------------------

@dataclass
class _Job:
    key: str
    item_id: int
    turn_id: int | None
    query: str
    reference: str
    answer: str | None  # served: the answer production gave; generate: None (the release answers)
    contexts: list
    conversation: list


@dataclass
class _Result:
    answer: str
    verdict: str
    rationale: str
    usage: llm.Usage


def _score_one(job: _Job, *, release: Release, generate: bool, budget: llm.Budget,
               spend: Callable[[str], llm.Spend]) -> _Result:
    usage = llm.Usage()
    answer = job.answer or ""
    try:
        if generate:
            reply = llm.chat_text(candidate_endpoint(release),
                                  candidate_messages(system_prompt=release.system_prompt, query=job.query,
                                                     contexts=job.contexts, conversation=job.conversation),
                                  usage=usage, budget=budget, spend=spend(f"{job.key}:answer"))
            answer = reply.content
        grade, _ = llm.chat_json(grader_endpoint(), grader_messages(query=job.query, reference=job.reference,
                                                                    answer=answer, conversation=job.conversation),
                                 parse_grade, usage=usage, budget=budget, spend=spend(f"{job.key}:grade"))
    except Exception as e:
        e.usage = usage  # what the item cost before it failed still counts,
        e.answer = answer  # and an answer that was paid for is kept with the failure
        raise
    return _Result(answer=answer, verdict=grade.verdict, rationale=grade.rationale, usage=usage)


def _plan(run: OfflineRun) -> tuple[list[_Job], int]:
    """The items still to score, and how many the mode does not apply to."""
    done = set(run.scores.values_list("key", flat=True))
    items = list(TestItem.objects.filter(version=run.version).order_by("key").values(*ITEM_COLUMNS))
    turn_of = _turn_ids(items)
    served_by_release: set[int] = set()
    if run.mode == OfflineRun.Mode.SERVED:
        ids = list(turn_of.values())
        for start in range(0, len(ids), 5000):
            served_by_release.update(release_turns(run.release).filter(id__in=ids[start:start + 5000])
                                     .values_list("id", flat=True))
    jobs, skipped = [], 0
    for it in items:
        tid = turn_of.get(it["key"])
        if not (it["reference_answer"] or "").strip():
            skipped += 1  # nothing to grade against
            continue
        if run.mode == OfflineRun.Mode.SERVED and (tid is None or tid not in served_by_release):
            skipped += 1  # not from production, or served by another release: not this release's answer
            continue
        if it["key"] in done:
            continue
        jobs.append(_Job(key=it["key"], item_id=it["id"], turn_id=tid, query=it["query"],
                         reference=it["reference_answer"],
                         answer=it["response"] if run.mode == OfflineRun.Mode.SERVED else None,
                         contexts=list(it["contexts"] or []), conversation=list(it["conversation"] or [])))
    return jobs, skipped


def _add_history(jobs: list[_Job]) -> None:
    need = [j.turn_id for j in jobs if not j.conversation and j.turn_id]
    history = _history(need) if need else {}
    for j in jobs:
        if not j.conversation and j.turn_id in history:
            j.conversation = history[j.turn_id]


def _record_usage(run_id: int, total: llm.Usage, **fields) -> None:
    job_progress(OfflineRun, run_id, prompt_tokens=total.prompt_tokens, completion_tokens=total.completion_tokens,
                 llm_requests=total.attempts, cost_usd=total.cost_usd, **fields)


def offline_run_execute(*, run_id: int, progress: Callable[[int, int], None] | None = None) -> OfflineRun:
    """Score the run's items that are still missing, then summarise. Safe to call twice.

    An LLM that stays unavailable leaves the run pending (raises llm.LLMUnavailable: retry later);
    the budget running out fails the run with what it reached (resume with a larger budget);
    an item whose answer or grade cannot be had is recorded as failed, with the reason.
    """
    with job_held(OfflineRun, run_id, statuses=(OfflineRun.Status.PENDING,)) as mine:
        if not mine:
            return OfflineRun.objects.get(pk=run_id)
        run = OfflineRun.objects.select_related("release", "version__testset").get(pk=run_id)
        total = llm.Usage(prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
                          attempts=run.llm_requests, cost_usd=run.cost_usd)
        budget = llm.Budget(run.budget_usd, spent=run.cost_usd)
        label = llm.job_label(OfflineRun, run_id)

        def spend(key: str) -> llm.Spend:
            # Keyed per run and item: a run re-executed after its worker died never asks twice.
            return llm.Spend(purpose="grader", job=label, key=f"offline-run:{run_id}:{key}",
                             beat=lambda: job_progress(OfflineRun, run_id))
        try:
            jobs, skipped = _plan(run)
            job_progress(OfflineRun, run_id, skipped=skipped)
            generate = run.mode == OfflineRun.Mode.GENERATE
            chunk = max(1, int(settings.OFFLINE_CONCURRENCY)) * 8
            done = 0
            for start in range(0, len(jobs), chunk):
                part = jobs[start:start + chunk]
                _add_history(part)
                results = llm.map_concurrent(lambda j: _score_one(j, release=run.release, generate=generate,
                                                                  budget=budget, spend=spend),
                                             part, concurrency=settings.OFFLINE_CONCURRENCY)
                rows, stop = [], None
                for job, res in zip(part, results):
                    usage = res.usage if isinstance(res, _Result) else getattr(res, "usage", None)
                    if usage is not None:
                        _merge(total, usage)
                    if isinstance(res, (llm.BudgetExceeded, llm.LLMUnavailable)):
                        stop = stop or res  # not the item's fault: it stays unscored, to be resumed
                        continue
                    if isinstance(res, BaseException):
                        rows.append(OfflineScore(run_id=run_id, key=job.key, item_id=job.item_id, turn_id=job.turn_id,
                                                 answer=getattr(res, "answer", job.answer or ""),
                                                 error=_item_error(res),
                                                 cost_usd=usage.cost_usd if usage else 0))
                        continue
                    rows.append(OfflineScore(run_id=run_id, key=job.key, item_id=job.item_id, turn_id=job.turn_id,
                                             score=VERDICT_SCORES[res.verdict], verdict=res.verdict,
                                             rationale=res.rationale, answer=res.answer, cost_usd=res.usage.cost_usd))
                with transaction.atomic():
                    OfflineScore.objects.bulk_create(rows, ignore_conflicts=True)
                    _record_usage(run_id, total)
                done += len(rows)
                if progress:
                    progress(done, len(jobs))
                if isinstance(stop, llm.BudgetExceeded):
                    scored = run.scores.count()
                    job_fail(OfflineRun, run_id, f"{stop}: {scored} items scored, {len(jobs) - done} left; resume "
                                                 f"with a larger budget (offline_run --resume {run_id} --max-usd N)")
                    return OfflineRun.objects.get(pk=run_id)
                if stop is not None:
                    raise stop
        except llm.LLMUnavailable as e:
            _record_usage(run_id, total)
            job_release(OfflineRun, run_id, e)
            raise
        except Exception as e:
            _record_usage(run_id, total)
            job_fail(OfflineRun, run_id, e)
            raise
        _finish(run_id, cost=total)
    return OfflineRun.objects.get(pk=run_id)


def _merge(total: llm.Usage, usage: llm.Usage) -> None:
    total.prompt_tokens += usage.prompt_tokens
    total.completion_tokens += usage.completion_tokens
    total.attempts += usage.attempts
    total.cost_usd += usage.cost_usd


def _item_error(e: BaseException) -> str:
    if isinstance(e, llm.LLMOutputInvalid):
        return f"grader output invalid: {e}"[:500]
    return f"{type(e).__name__}: {e}"[:500]


# --- summary -----------------------------------------------------------------------------------------

def score_summary(scores: list[float], clusters: list) -> tuple[float | None, float | None, float | None]:
    """Mean item score with a 95 % bootstrap interval that resamples whole conversations (items of
    one conversation are correlated). (None, None, None) with no items; no interval with one
    conversation."""
    if not scores:
        return None, None, None
    mean = float(sum(scores) / len(scores))
    try:
        est = stats.cluster_bootstrap_mean(scores, clusters)
    except stats.InsufficientData:
        return mean, None, None
    return est.value, est.lo, est.hi


def _finish(run_id: int, *, cost: llm.Usage | None = None, **fields) -> None:
    # Conversations as the item's provenance names them (source + session), so the interval does
    # not depend on the turns still being held in production.
    rows = list(OfflineScore.objects.filter(run_id=run_id)
                .values_list("score", "item__provenance__source", "item__provenance__session_id", "key"))
    scored = [(s, f"s:{src}:{sess}" if sess else f"item:{k}") for s, src, sess, k in rows if s is not None]
    score, lo, hi = score_summary([s for s, _ in scored], [c for _, c in scored])
    if cost is not None:
        fields.update(prompt_tokens=cost.prompt_tokens, completion_tokens=cost.completion_tokens,
                      llm_requests=cost.attempts, cost_usd=cost.cost_usd)
    job_finish(OfflineRun, run_id, items=len(scored), failed=len(rows) - len(scored), score=score, ci_low=lo,
               ci_high=hi, **fields)


def run_summary(run: OfflineRun) -> dict:
    """The line both commands end with (exact keys)."""
    return {"release": run.release.name, "testset": run.version.testset.name, "version": run.version.number,
            "items": run.items, "score": run.score, "ci_low": run.ci_low, "ci_high": run.ci_high}


def offline_run_resume(*, run_id: int, max_usd: float | None = None) -> OfflineRun:
    """Put a stopped run (failed on its budget, or left pending) back to pending, optionally with a
    new budget; its scored items are kept."""
    run = OfflineRun.objects.filter(pk=run_id).first()
    if run is None:
        raise OfflineError(f"--resume: no offline run {run_id}")
    if run.mode == OfflineRun.Mode.IMPORT:
        raise OfflineError(f"--resume: run {run_id} is an import; import the file again")
    fields = {"status": OfflineRun.Status.PENDING, "finished_at": None}
    if max_usd is not None:
        fields["budget_usd"] = Decimal(str(max_usd))
    OfflineRun.objects.filter(pk=run_id, status__in=(OfflineRun.Status.FAILED, OfflineRun.Status.PENDING)).update(
        **fields)
    return OfflineRun.objects.get(pk=run_id)


# --- import --------------------------------------------------------------------------------------------

@dataclass
class ImportResult:
    run: OfflineRun
    unknown: list[str]  # keys (or "row N: …" for rows without a key) that are not items of the version
    missing: int        # items of the version with no row in the file
    failed: list[str]   # "key: reason" of rows whose score the tool could not give


def _match_by_content(rows: list[Row], items: list[dict], matched: set[str]) -> tuple[dict[int, str], list[str]]:
    """Rows without a key (a RAGAS table) -> item keys by (query, reference); equal contents in order."""
    by_content: dict[tuple[str, str], list[str]] = {}
    for it in items:
        if it["key"] in matched:
            continue
        by_content.setdefault((it["query"], (it["reference_answer"] or "").strip()), []).append(it["key"])
    out, unknown = {}, []
    for row in rows:
        keys = by_content.get((row.query or "", (row.reference or "").strip()))
        if keys:
            out[row.position] = keys.pop(0)
        else:
            unknown.append(f"line {row.position}: no item with this user_input and reference "
                           f"({(row.query or '')[:60]!r})")
    return out, unknown


def offline_import(*, path: str | Path, release: str, testset: str, version: int, fmt: str,
                   metric: str | None = None, user: str = "") -> ImportResult:
    """Store per-item scores computed by another tool as a finished run of mode import.

    Rows whose key is not an item of the version are reported (and kept on the run), never dropped
    silently; a file that matches no item at all is refused. Raises OfflineError, ImportFormatError.
    """
    rel, ver = resolve(release=release, testset=testset, version=version)
    rows, metric_used = read_rows(path, fmt, metric)
    if not rows:
        raise OfflineError(f"{path}: no scores in the file")
    items = list(TestItem.objects.filter(version=ver).order_by("key").values(*ITEM_COLUMNS))
    by_key = {it["key"]: it for it in items}
    keyed = [r for r in rows if r.key is not None]
    unknown = [r.key for r in keyed if r.key not in by_key]
    pairs = [(r, r.key) for r in keyed if r.key in by_key]
    loose = [r for r in rows if r.key is None]
    if loose:
        found, lost = _match_by_content(loose, items, {k for _, k in pairs})
        pairs += [(r, found[r.position]) for r in loose if r.position in found]
        unknown += lost
    if not pairs:
        raise OfflineError(f"none of the {len(rows)} rows of {path} is an item of {testset} v{version} "
                           f"(first: {unknown[0] if unknown else '?'}): was the file made from this version's export?")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    turn_of = _turn_ids([by_key[k] for _, k in pairs])
    run = OfflineRun.objects.create(release=rel, version=ver, mode=OfflineRun.Mode.IMPORT, format=fmt,
                                    metric=metric_used, origin=str(path)[:500], origin_sha256=digest,
                                    unknown_keys=unknown, missing=len(items) - len(pairs), created_by=user)
    job_claim(OfflineRun, run.pk)
    failed = []
    with transaction.atomic():
        OfflineScore.objects.bulk_create([
            OfflineScore(run=run, key=key, item_id=by_key[key]["id"], turn_id=turn_of.get(key), score=r.score,
                         error=r.error if r.score is None else "", answer=r.answer, rationale=r.rationale[:5000])
            for r, key in pairs], batch_size=2000)
        failed = [f"{key}: {r.error}" for r, key in pairs if r.score is None]
        _finish(run.pk)
    run.refresh_from_db()
    return ImportResult(run=run, unknown=unknown, missing=run.missing, failed=failed)
