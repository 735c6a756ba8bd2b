"""The LLM jobs' scenarios (issue #19 item 3): a shadow replay run against a local OpenAI-compatible
server (tests/fake_openai.py, the real openai client in the worker), broken three ways:

- stalled by 429s past the stale limit, with the sweeper sweeping (every heartbeat counted stale)
  and a second delivery of its task while it waits;
- two workers given the same job at once;
- kill -9 of the worker (child, or parent and child) at a seeded moment mid-run.

Invariants, on top of every run's own (no job left running):
- the run ends done, each sampled turn answered or named as asked before by a worker that died;
- no request is sent twice: the server answered each (release, turn) at most once;
- no spend is lost: every answer the server gave is in the ledger, settled at the usage the server
  reported, or still reserved at its worst case (its holder was killed before the answer came
  back); the settled total equals the server's total for those answers; nothing is in the
  ledger that the server did not answer, but those reservations.
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from . import services as svc

USAGE = {"prompt_tokens": 10, "completion_tokens": 20}
PRICE = Decimal(1) / 1000  # per token, prompt and completion alike (the worker's SHADOW_PRICE_* = 1 per 1k)
# What the workers of the suite get (faults/__main__.py adds it to their environment).
# The candidates' key is named by their release (api_key_env): a release at a base URL of its own never
# receives OPENAI_API_KEY.
CANDIDATE_KEY_ENV = "FAULTS_CANDIDATE_KEY"
WORKER_ENV = {"OPENAI_API_KEY": "sk-faults", CANDIDATE_KEY_ENV: "sk-faults", "SHADOW_PRICE_PER_1K_PROMPT_TOKENS": "1",
              "SHADOW_PRICE_PER_1K_COMPLETION_TOKENS": "1", "LLM_MAX_TOKENS": "100", "REPLAY_MAX_USD_PER_DAY": "",
              "SHADOW_CONCURRENCY": "4", "LLM_BACKOFF_SECONDS": "0.05", "LLM_BACKOFF_MAX_SECONDS": "0.2",
              "LLM_MAX_RETRIES": "10000", "LLM_TIMEOUT_SECONDS": "30"}


class Server:
    """The fake LLM, counting what it answered per (model, query) and what usage it reported."""

    def __init__(self):
        from tests.fake_openai import FakeOpenAI

        self.fake = FakeOpenAI(self.respond)
        self.lock = threading.Lock()
        self.reset()

    def reset(self, *, limited_until: float = 0.0, latency: tuple[float, float] = (0.0, 0.0), seed: int = 0):
        with self.lock:
            self.answered: Counter = Counter()
            self.limited = 0
            self.limited_until = limited_until
            self.latency = latency
            self.rng = random.Random(seed)

    def respond(self, body: dict):
        with self.lock:
            if time.monotonic() < self.limited_until:
                self.limited += 1
                return ("status", 429)
            delay = self.rng.uniform(*self.latency)
        time.sleep(delay)
        with self.lock:
            self.answered[(body["model"], body["messages"][-1]["content"])] += 1
        return ("ok", f"candidate: {body['messages'][-1]['content']}", USAGE)


_server: Server | None = None


def server() -> Server:
    global _server
    if _server is None:
        _server = Server()
    return _server


def make_run(rng: random.Random, tag: str, n: int = 24) -> int:
    """A release at the fake server and a replay run of `n` turns on a day of its own."""
    from production.services.ingest import source_get_or_create, turns_ingest_body
    from releases.models import Release
    from shadow.services.replay import shadow_run_create

    day = date(2100, 1, 1) + timedelta(days=random.SystemRandom().randrange(0, 2_500_000))
    start = datetime(day.year, day.month, day.day, 8, tzinfo=timezone.utc)
    lines = [json.dumps({"id": f"{tag}-{i}", "session_id": f"{tag}-s{i // 3}", "query": f"{tag} question {i}",
                         "response": f"served {i}", "model": "served",
                         "timestamp": (start + timedelta(minutes=i)).isoformat()}).encode() for i in range(n)]
    turns_ingest_body(source=source_get_or_create(name=f"llm-{tag}"), body=b"\n".join(lines) + b"\n")
    Release.objects.create(name=f"llm-{tag}", model=f"m-{tag}", base_url=server().fake.url,
                           api_key_env=CANDIDATE_KEY_ENV)
    return shadow_run_create(release=f"llm-{tag}", day=day, sample=n).pk


def send(run_id: int) -> None:
    from shadow.tasks import shadow_run_execute

    shadow_run_execute.delay(run_id)


def answered(run_id: int) -> int:
    from shadow.models import ShadowPair

    return ShadowPair.objects.filter(run_id=run_id, error="").count()


def check(run_id: int) -> list[str]:
    from llm.models import SpendEntry
    from production.models import Turn
    from shadow.models import ShadowPair, ShadowRun
    from shadow.services.replay import replay_key

    out = []
    run = ShadowRun.objects.select_related("release").get(pk=run_id)
    if run.status != "done":
        out.append(f"shadow run {run.pk} ended {run.status}: {run.error}")
    srv = server()
    mine = {q: n for (model, q), n in srv.answered.items() if model == run.release.model}
    twice = {q: n for q, n in mine.items() if n > 1}
    if twice:
        out.append(f"{len(twice)} turn(s) asked twice, e.g. {next(iter(twice))!r} x{next(iter(twice.values()))}")
    pairs = dict(ShadowPair.objects.filter(run=run).values_list("turn_id", "error"))
    turns = dict(Turn.objects.filter(pk__in=list(pairs) or [0]).values_list("pk", "query"))
    unexplained = [t for t, e in pairs.items() if e and "asked before" not in e]
    if len(pairs) != run.sampled or unexplained:
        out.append(f"{run.sampled} sampled, {len(pairs)} pairs, {len(unexplained)} failed for another reason: "
                   f"{pairs.get(unexplained[0]) if unexplained else ''}")
    entries = {e.key: e for e in SpendEntry.objects.filter(job=f"shadow.ShadowRun:{run.pk}")}
    each = (USAGE["prompt_tokens"] + USAGE["completion_tokens"]) * PRICE
    settled_answers = 0
    for turn_id, query in turns.items():
        e = entries.get(replay_key(run.pk, turn_id))
        got = mine.get(query, 0)
        if got and e is None:
            out.append(f"turn {turn_id}: answered by the server, not in the ledger")
        elif e is not None and e.status == "settled":
            settled_answers += 1
            if not got or e.cost_usd != each:
                out.append(f"turn {turn_id}: ledger {e.cost_usd} settled, the server answered {got}x at {each}")
        elif e is not None and e.status == "reserved" and e.reserved_usd < each * got:
            out.append(f"turn {turn_id}: reserved {e.reserved_usd} < the {each} the server reported")
        elif e is not None and e.status not in ("settled", "reserved"):
            out.append(f"turn {turn_id}: ledger entry {e.status}")
    settled = sum((e.cost_usd for e in entries.values() if e.status == "settled"), Decimal(0))
    if settled != each * settled_answers:
        out.append(f"ledger settled ${settled} != ${each * settled_answers} the server reported for those answers")
    spent = run.cost_usd
    ledger_total = settled + sum((e.reserved_usd for e in entries.values() if e.status == "reserved"), Decimal(0))
    if spent != ledger_total or ledger_total < each * sum(mine.values()):
        out.append(f"run cost ${spent}, ledger ${ledger_total}, server ${each * sum(mine.values())}: spend lost")
    return out


def stalled_by_429(ctx, rng: random.Random, tag: str) -> list[str]:
    """429s for a few seconds, from the first request on: the sweeper sweeps (every heartbeat stale)
    and a second delivery arrives, while the holder backs off. Neither may start the run again."""
    from core.jobs import jobs_sweep
    from shadow.models import ShadowRun

    from .scenarios import db, job_status, wait_finished

    run = make_run(rng, tag)
    server().reset(limited_until=time.monotonic() + 3600, seed=rng.randint(0, 10**9))
    send(run)
    svc.wait_for(lambda: server().limited > 0, 120, "the run to meet 429s")
    out = []
    beats = set()
    stall = time.monotonic() + rng.uniform(1.0, 3.0)
    second = False
    while time.monotonic() < stall:
        sent = []
        swept = db(jobs_sweep, stale_seconds=0, enqueue=lambda name, pk: sent.append(pk))
        if swept["shadow.ShadowRun"]["requeued"] or run in sent:
            out.append("the sweeper re-queued a run whose holder was alive (backing off on 429s)")
        beats.add(db(lambda: ShadowRun.objects.values_list("heartbeat_at", flat=True).get(pk=run)))
        if not second:
            send(run)  # a second delivery: it waits for the worker's one slot, then finds the run held or done
            second = True
        time.sleep(0.2)
    ctx.landed = job_status(ShadowRun, run) == "running"
    if len(beats) < 2:
        out.append("the heartbeat did not move while the run backed off on 429s")
    with server().lock:
        server().limited_until = 0.0
    wait_finished(ShadowRun, run)
    attempts = db(lambda: ShadowRun.objects.values_list("attempts", flat=True).get(pk=run))
    if attempts != 1:
        out.append(f"the run was claimed {attempts} times")
    return out + check(run)


def two_workers(ctx, rng: random.Random, tag: str) -> list[str]:
    """Two workers, the same job sent to both at once."""
    from shadow.models import ShadowRun

    from .scenarios import reap, wait_finished

    run = make_run(rng, tag)
    server().reset(latency=(0.01, 0.08), seed=rng.randint(0, 10**9))
    ctx.new_worker()
    send(run)
    send(run)
    ctx.landed = True
    wait_finished(ShadowRun, run)
    reap(ctx)
    return check(run)


def kill_mid_run(ctx, rng: random.Random, tag: str, *, parent: bool) -> list[str]:
    from shadow.models import ShadowRun

    from .scenarios import job_status, kill, reap, recover, wait_progress

    n = 24
    run = make_run(rng, tag, n)
    server().reset(latency=(0.02, 0.15), seed=rng.randint(0, 10**9))
    send(run)
    # Once the run is claimed: a worker killed with the task still in its prefetch has it back only
    # after the broker's visibility timeout (the suite's 240 s), which is the broker's matter, not this.
    moment = rng.randint(1, n - 2)
    wait_progress(lambda: (answered(run) >= moment and ShadowRun.objects.filter(pk=run, status="running").exists())
                  or ShadowRun.objects.filter(pk=run, status="done").exists())
    kill(ctx, parent)
    ctx.landed = job_status(ShadowRun, run) == "running"
    recover(ShadowRun, run)
    reap(ctx)
    return check(run)


SCENARIOS = {
    "LLM run stalled by 429s past the stale limit": stalled_by_429,
    "two workers on one LLM run": two_workers,
    "kill -9 worker child mid-LLM-run": lambda c, r, t: kill_mid_run(c, r, t, parent=False),
    "kill -9 worker parent mid-LLM-run": lambda c, r, t: kill_mid_run(c, r, t, parent=True),
}
