"""Writes: create a generation run, execute it (LLM or offline rules, then de-duplication), send
its cases for review, and record what the reviewers decided.

A run is claimed with a conditional UPDATE, and each stage recomputes what is missing, so the
task that runs it is safe to run twice. Cases are stored in one transaction with the run's
counts: a run never holds half its cases.
"""
from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.jobs import job_held, job_progress
from labelling.services import review
from rephrase import RephraseDetector
from taxonomy.models import FailureMode
from testsets.selectors import testset_queries

from llm import client as llm

from . import offline, prompting
from .models import GeneratedCase, GenerationRun
from .selectors import RealFailure, cases_review_outcomes, real_failures

PROMPT_VERSION = "gen-v1"
OFFLINE_VERSION = "offline-v1"
logger = logging.getLogger(__name__)


class GenerationError(Exception):
    """The run cannot be made as asked (unknown mode, nothing to seed from, no endpoint)."""


# --- the prompt ---------------------------------------------------------------------------------

SYSTEM = ("You write evaluation cases for a question-answering assistant. Each case is a user query that is "
          "likely to make the assistant fail in one specific, named way. Answer with one JSON object only.")


def build_messages(*, mode: FailureMode, seeds: list[RealFailure], n: int) -> list[dict]:
    examples = "\n\n".join(
        f"Example {i + 1}\nQuery: {s.query}\nServed answer: {s.response or '(empty)'}\n"
        f"Reference answer: {s.reference_answer or '(none given)'}\nAnnotator notes: {s.notes or '(none)'}"
        for i, s in enumerate(seeds)) or "(no labelled examples yet: rely on the description)"
    user = (
        f"Failure mode {mode.code}: {mode.name}\nDescription: {mode.description or '(none)'}\n\n"
        f"Real answers that annotators labelled with this failure:\n\n{examples}\n\n"
        f"Write {n} NEW user queries that would trigger the same failure. Vary topic and wording; do not copy or "
        f"lightly rephrase the examples. For each, give the correct reference answer where one can be given "
        f"(else null), and one sentence on why it would trigger the failure.\n"
        f'Return exactly: {{"cases": [{{"query": "...", "reference_answer": "..." or null, "rationale": "..."}}]}}'
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# --- runs ---------------------------------------------------------------------------------------

def generation_run_create(*, failure_mode: str, n: int | None = None, model: str | None = None,
                          offline: bool = False, temperature: float | None = None,
                          user: str = "") -> GenerationRun:
    mode = FailureMode.objects.filter(code=failure_mode).first()
    if mode is None:
        raise GenerationError(f"failure mode {failure_mode!r} does not exist")
    n = n or settings.GENERATION_DEFAULT_N
    if n < 1:
        raise GenerationError("n: must be at least 1")
    if not offline and prompting.missing_settings():
        raise llm.LLMNotConfigured(prompting.not_configured_message())
    seeds = real_failures(code=mode.code, limit=settings.GENERATION_SEED_EXAMPLES)
    if offline and not seeds:
        raise GenerationError(f"{mode.code} has no labelled failures yet: the offline generator varies real "
                              f"failures, so label some first")
    return GenerationRun.objects.create(
        failure_mode=mode.code, n=n, offline=offline, model="" if offline else (model or settings.GENERATION_MODEL),
        prompt_version=OFFLINE_VERSION if offline else PROMPT_VERSION,
        temperature=0.0 if offline else (temperature if temperature is not None
                                         else settings.GENERATION_TEMPERATURE),
        seed_item_ids=sorted(s.item_id for s in seeds), created_by=user)


def _candidates(run: GenerationRun, usage: llm.Usage) -> list[dict]:
    mode = FailureMode.objects.get(code=run.failure_mode)
    seeds = [s for s in real_failures(code=run.failure_mode) if s.item_id in set(run.seed_item_ids)]
    if run.offline:
        return offline.generate(seeds=[offline.Seed(s.item_id, s.query, s.reference_answer) for s in seeds],
                                n=run.n, seed=run.pk)
    cases = prompting.complete_cases(messages=build_messages(mode=mode, seeds=seeds, n=run.n), model=run.model,
                               temperature=run.temperature, usage=usage,
                               spend=llm.Spend(purpose="generation", job=llm.job_label(GenerationRun, run.pk),
                                               key=f"generation-run:{run.pk}",
                                               beat=lambda: job_progress(GenerationRun, run.pk)))
    # The model saw all the seeds; each case is attributed to all of them.
    return [{**c, "technique": "llm", "seed_item_ids": list(run.seed_item_ids)} for c in cases[:run.n]]


def dedup(queries: list[str], existing: list[str], *, threshold: float | None = None) -> list[tuple[str, float] | None]:
    """For each query, what it duplicates ("testset:<query>" or "case:<index>") and the score, or None.

    The rephrase detector is directional (it reads the second text as the next turn), so a pair
    counts as duplicate when either direction scores over the threshold. Earlier queries win.
    """
    if not queries:
        return []
    threshold = threshold if threshold is not None else settings.GENERATION_DEDUP_THRESHOLD
    pairs = [(q, e) for q in queries for e in existing] + [
        (queries[i], queries[j]) for i in range(len(queries)) for j in range(i)]
    both = pairs + [(b, a) for a, b in pairs]
    try:
        detector = RephraseDetector(threshold=threshold, semantic=settings.GENERATION_DEDUP_SEMANTIC)
        scores = detector.score_pairs(both)
    except RuntimeError as e:
        # The encoder's packages are missing: the lexical stage alone still catches close rewordings.
        logger.warning("semantic de-duplication unavailable, lexical only: %s", e)
        scores = RephraseDetector(threshold=threshold, semantic=False).score_pairs(both)
    best = {p: max(scores[k].score, scores[k + len(pairs)].score) for k, p in enumerate(pairs)}
    out: list[tuple[str, float] | None] = []
    for i, q in enumerate(queries):
        hit = None
        for e in existing:
            if best[(q, e)] >= threshold and (hit is None or best[(q, e)] > hit[1]):
                hit = (f"testset:{e}", best[(q, e)])
        for j in range(i):
            if hit is None and out[j] is None and best[(q, queries[j])] >= threshold:
                hit = (f"case:{j}", best[(q, queries[j])])
        out.append(hit)
    return out


def _record_usage(run_id: int, usage: llm.Usage, **extra) -> None:
    GenerationRun.objects.filter(pk=run_id).update(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        llm_requests=usage.attempts, cost_usd=usage.cost_usd, **extra)


def generation_run_execute(*, run_id: int) -> GenerationRun:
    """Generate, de-duplicate and store the run's cases, then send them for review.

    A transient LLM failure (rate limit, timeout, connection) that outlasts the retries leaves the
    run pending for a later retry and raises llm.LLMUnavailable; malformed output or a permanent
    API error fails the run with the reason and raises.
    """
    # Held like ingest (job_held): a second delivery, or the sweeper, never runs it alongside a live holder.
    with job_held(GenerationRun, run_id) as mine:
        if not mine:
            return GenerationRun.objects.get(pk=run_id)  # finished, or running elsewhere: a second delivery
        run = GenerationRun.objects.get(pk=run_id)
        if not run.cases.exists():
            usage = llm.Usage(prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
                              attempts=run.llm_requests, cost_usd=run.cost_usd)
            try:
                candidates = _candidates(run, usage)
            except llm.LLMUnavailable as e:
                _record_usage(run_id, usage, status=GenerationRun.Status.PENDING, error=str(e)[:2000])
                raise
            except (llm.LLMError, llm.BudgetExceeded, llm.AlreadyAsked, GenerationError) as e:
                _record_usage(run_id, usage, status=GenerationRun.Status.FAILED, error=str(e)[:2000],
                              finished_at=timezone.now())
                raise
            dups = dedup([c["query"] for c in candidates], testset_queries(name=settings.GENERATION_TESTSET))
            with transaction.atomic():
                GeneratedCase.objects.bulk_create([
                    GeneratedCase(run=run, position=i, query=c["query"], reference_answer=c["reference_answer"],
                                  rationale=c["rationale"], technique=c["technique"], seed_item_ids=c["seed_item_ids"],
                                  status=GeneratedCase.Status.DUPLICATE if d else GeneratedCase.Status.GENERATED,
                                  duplicate_of=_dup_ref(d[0], run) if d else "", duplicate_score=d[1] if d else None)
                    for i, (c, d) in enumerate(zip(candidates, dups))])
                _record_usage(run_id, usage, generated=len(candidates), duplicates_dropped=sum(bool(d) for d in dups))
        cases_send_for_review(run_id=run_id)
        GenerationRun.objects.filter(pk=run_id).update(status=GenerationRun.Status.DONE, finished_at=timezone.now())
    return GenerationRun.objects.get(pk=run_id)


def _dup_ref(ref: str, run: GenerationRun) -> str:
    # "case:<index>" of this batch of candidates becomes the case's turn-style id, readable in the admin.
    return f"case:gen-{run.pk}-{ref[5:]}" if ref.startswith("case:") else ref


# --- review -------------------------------------------------------------------------------------

def _provenance(case: GeneratedCase, run: GenerationRun) -> dict:
    return {"run_id": run.pk, "failure_mode": run.failure_mode, "technique": case.technique,
            "seed_item_ids": case.seed_item_ids, "model": run.model, "offline": run.offline,
            "prompt_version": run.prompt_version, "temperature": run.temperature,
            "reference_answer": case.reference_answer, "rationale": case.rationale}


def cases_send_for_review(*, run_id: int) -> int | None:
    """Hand the run's accepted cases to labelling for review (each becomes a turn of source
    "generated" in the run's review batch, pushed by the caller). Re-running adds only what is
    missing. Returns the batch id."""
    run = GenerationRun.objects.get(pk=run_id)
    cases = list(run.cases.exclude(status=GeneratedCase.Status.DUPLICATE).order_by("position"))
    if not cases:
        return run.review_batch_id
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run_id)
        if run.review_batch_id is None:  # one review batch per run, however often this runs
            run.review_batch_id = review.review_batch_create(project_title=settings_review_title())
            run.save(update_fields=["review_batch_id"])
    turn_ids = review.review_cases_add(batch_id=run.review_batch_id, cases=[
        review.ReviewCase(key=c.external_id, query=c.query, model=run.model or "offline",
                          metadata={"generation": _provenance(c, run)}) for c in cases])
    with transaction.atomic():
        for c in cases:
            GeneratedCase.objects.filter(pk=c.pk, status=GeneratedCase.Status.GENERATED).update(
                turn_id=turn_ids[c.external_id], status=GeneratedCase.Status.SENT_FOR_REVIEW)
    return run.review_batch_id


def settings_review_title() -> str:
    return settings.GENERATION_REVIEW_PROJECT_TITLE


def generated_cases_review_sync() -> dict:
    """Store each reviewed case's outcome (approved / rejected with the reason / still in review)."""
    cases = list(GeneratedCase.objects.exclude(status__in=[GeneratedCase.Status.DUPLICATE,
                                                           GeneratedCase.Status.GENERATED]))
    changed = 0
    for case_id, (status, reason) in cases_review_outcomes(cases).items():
        changed += GeneratedCase.objects.filter(pk=case_id).exclude(status=status, review_reason=reason).update(
            status=status, review_reason=reason)
    return {"cases": len(cases), "changed": changed}


def summary(run: GenerationRun) -> dict:
    """The command's --json line."""
    return {"failure_mode": run.failure_mode, "generated": run.generated, "duplicates_dropped": run.duplicates_dropped,
            "sent_for_review": run.cases.filter(turn_id__isnull=False).count()}


def summary_json(run: GenerationRun) -> str:
    return json.dumps(summary(run))
