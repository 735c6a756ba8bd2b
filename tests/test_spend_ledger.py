"""The spend ledger (issue #19 item 2) and LLM jobs run once (item 3): every LLM request reserved
in the database before it is sent and settled with the usage the server reported; concurrent runs
share one cap; a re-executed run keeps what it spent; a live run is never run twice; mirrored
answers only from allowed sources. Only the LLM is faked, at its HTTP boundary."""
import io
import json
import threading
import uuid
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from core.jobs import jobs_sweep
from llm import client as llm
from llm.models import SpendDay, SpendEntry
from production.models import MirroredAnswer, RejectedLine
from shadow.models import ShadowPair, ShadowRun
from shadow.services.replay import replay_key, shadow_run_create, shadow_run_execute
from tests.fake_openai import FakeOpenAI
from tests.shadow_helpers import day_log, ingest_turns, release

DAY = date(2026, 10, 5)
postgres_only = pytest.mark.skipif("postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
                                   reason="concurrent connections and advisory locks: PostgreSQL (make test)")
USAGE = {"prompt_tokens": 10, "completion_tokens": 20}  # $0.03 at $1/1k: well under any worst case


@pytest.fixture
def cand():
    server = FakeOpenAI()
    server.answered = []  # (model, query) of every request answered (200), in order

    def answering(body):
        with server._lock:
            server.answered.append((body["model"], body["messages"][-1]["content"]))
        return ("ok", f"candidate answer to: {body['messages'][-1]['content']}", USAGE)

    server.answering = server.responder = answering
    # The candidates are served at the shared OPENAI_BASE_URL: a release at a base URL of its own
    # would get only the key its api_key_env names, never OPENAI_API_KEY.
    with server, override_settings(
            OPENAI_BASE_URL=server.url, OPENAI_API_KEY="sk-served", LLM_BACKOFF_SECONDS=0.01, LLM_MAX_RETRIES=2,
            LLM_TIMEOUT_SECONDS=5, SHADOW_CONCURRENCY=4, SHADOW_SAMPLE_SALT="test-salt", LLM_MAX_TOKENS=100,
            SHADOW_PRICE_PER_1K_PROMPT_TOKENS=1.0, SHADOW_PRICE_PER_1K_COMPLETION_TOKENS=1.0):
        yield server


def answered_per_turn(server) -> Counter:
    """Requests the server answered, per query asked: a turn asked twice counts 2."""
    return Counter(server.answered)


def server_cost(server) -> Decimal:
    """What the server reported, at the test's prices ($1/1k tokens either way)."""
    return Decimal(USAGE["prompt_tokens"] + USAGE["completion_tokens"]) * len(server.answered) / 1000


def ledger_day(purpose="replay") -> SpendDay:
    return SpendDay.objects.get(purpose=purpose, day=timezone.now().date())


# --- the client: reserve, settle, release ---------------------------------------------------------

@pytest.mark.django_db
def test_settle_releases_the_unused_reservation(cand):
    ep = llm.endpoint_for(role="release:c", base_url=cand.url, api_key_env="", model="m", price_in=1, price_out=1)
    messages = [{"role": "user", "content": "x" * 400}]
    reply = llm.chat_text(ep, messages, spend=llm.Spend(purpose="replay", job="t:1", key="k1"))
    entry = SpendEntry.objects.get(key="k1")
    # reserved at its worst case: 400 bytes + framing, and 100 answer tokens, at $1/1k each
    assert entry.reserved_usd == Decimal(400 + 4 + 4 + 8 + 100) / 1000
    assert entry.status == "settled" and entry.cost_usd == reply.cost_usd == Decimal("0.03")
    day = ledger_day()
    assert (day.reserved_usd, day.spent_usd, day.requests) == (0, Decimal("0.03"), 1)
    assert cand.requests[0]["body"]["max_tokens"] == 100


@pytest.mark.django_db
def test_a_refused_request_is_released_and_a_retried_one_settles_once(cand, settings):
    ep = llm.endpoint_for(role="release:c", base_url=cand.url, api_key_env="", model="m", price_in=1, price_out=1)
    cand.responder = None
    cand.script = [("status", 429), ("ok", "fine", USAGE), ("status", 400)]
    llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="replay", key="retried"))
    with pytest.raises(llm.LLMError):
        llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="replay", key="refused"))
    retried, refused = SpendEntry.objects.get(key="retried"), SpendEntry.objects.get(key="refused")
    assert (retried.status, retried.attempts, retried.cost_usd) == ("settled", 2, Decimal("0.03"))
    assert (refused.status, refused.cost_usd) == ("released", 0)
    day = ledger_day()
    assert (day.reserved_usd, day.spent_usd) == (0, Decimal("0.03"))
    # a refused key may be asked again; an answered one never
    cand.script = [("ok", "again", USAGE)]
    llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="replay", key="refused"))
    with pytest.raises(llm.AlreadyAsked):
        llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="replay", key="retried"))
    assert len(cand.requests) == 4


@pytest.mark.django_db
def test_the_cap_refuses_a_request_whose_worst_case_does_not_fit_and_names_the_setting(cand, settings):
    settings.JUDGE_MAX_USD_PER_DAY = 0.1
    ep = llm.endpoint_for(role="JUDGE", base_url=cand.url, api_key_env="", model="m", price_in=1, price_out=1)
    with pytest.raises(llm.CapReached) as stop:
        llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="judge"))
    assert "JUDGE_MAX_USD_PER_DAY of $0.1 reached: $0.100000 left today" in str(stop.value)
    assert not cand.requests and not SpendEntry.objects.exists()
    settings.JUDGE_MAX_USD_PER_DAY = None  # empty: no cap
    llm.chat_text(ep, [{"role": "user", "content": "q"}], spend=llm.Spend(purpose="judge"))
    assert len(cand.requests) == 1


# --- shadow replay on the ledger -----------------------------------------------------------------

@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_never_exceed_the_cap_and_ask_no_turn_twice(cand, settings):
    # given: two releases, 20 turns each to ask, a cap that pays for a few answers only
    settings.REPLAY_MAX_USD_PER_DAY = 0.7
    ingest_turns(day_log(DAY, sessions=10))
    runs = []
    for name in ("cand-a", "cand-b"):
        release(name=name, url=cand.url, model=name)
        runs.append(shadow_run_create(release=name, day=DAY, sample=20).pk)
    barrier = threading.Barrier(len(runs))

    def execute(run_id):
        try:
            barrier.wait()
            shadow_run_execute(run_id=run_id)
        finally:
            connections.close_all()

    # when: both run at once, each on its own connection, four requests in flight each
    threads = [threading.Thread(target=execute, args=(pk,)) for pk in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then: the day's spend never passed the cap, every answer the server gave is in the ledger
    day = ledger_day()
    assert day.spent_usd <= Decimal("0.7") and day.reserved_usd == 0
    assert day.spent_usd == server_cost(cand) == sum(r.cost_usd for r in ShadowRun.objects.all())
    assert SpendEntry.objects.filter(status="settled").count() == len(cand.requests) == len(cand.answered) > 0
    assert max(answered_per_turn(cand).values()) == 1
    for run in ShadowRun.objects.all():
        assert run.status == "done" and run.budget_stopped and run.not_sent > 0
        assert f"REPLAY_MAX_USD_PER_DAY of $0.7 reached" in run.budget_reason
        assert f"{run.not_sent} of 20 sampled turns not asked" in run.budget_reason
    assert ShadowPair.objects.filter(error="").count() == len(cand.requests)


@pytest.mark.django_db
def test_a_re_executed_run_keeps_what_it_spent_and_never_asks_a_turn_twice(cand, settings):
    # given: a run stopped by the cap after some answers
    settings.SHADOW_CONCURRENCY = 1
    ingest_turns(day_log(DAY, sessions=5))
    release(url=cand.url)
    run = shadow_run_create(release="cand-1", day=DAY, sample=10)
    settings.REPLAY_MAX_USD_PER_DAY = 0.5
    shadow_run_execute(run_id=run.pk)
    first = ShadowRun.objects.get(pk=run.pk)
    assert first.budget_stopped and 0 < first.answered < 10
    # and a worker that died in the middle of asking one more turn (its reservation is left)
    todo = ShadowPair.objects.filter(run=run).values_list("turn_id", flat=True)
    from production.models import Turn

    lost = Turn.objects.exclude(pk__in=list(todo)).filter(timestamp__date=DAY).order_by("id").first()
    SpendEntry.objects.create(purpose="replay", day=timezone.now().date(), job=llm.job_label(ShadowRun, run.pk),
                              key=replay_key(run.pk, lost.pk), reserved_usd=Decimal("0.2"))
    SpendDay.objects.filter(purpose="replay").update(reserved_usd=Decimal("0.2"))
    # when: the cap is raised and the run executed again (a redelivery after the crash)
    settings.REPLAY_MAX_USD_PER_DAY = None
    ShadowRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now() - timedelta(hours=1))
    shadow_run_execute(run_id=run.pk)
    # then: its cost is both executions' and the dead worker's reservation, from the ledger
    again = ShadowRun.objects.get(pk=run.pk)
    assert again.status == "done" and again.answered == 9 and again.failed == 1
    assert again.cost_usd == server_cost(cand) + Decimal("0.2") > first.cost_usd > 0
    assert again.requests == len(cand.requests) == 9
    assert max(answered_per_turn(cand).values()) == 1
    assert lost.query not in {query for _, query in cand.answered}
    assert "asked before" in ShadowPair.objects.get(turn=lost).error


# --- LLM jobs once: a live job is never re-queued --------------------------------------------------

@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_run_stalled_by_429s_keeps_its_claim_and_a_second_worker_does_nothing(cand, settings):
    """The heartbeat moves per attempt, and the holder's advisory lock tells the sweeper it is alive,
    however old the heartbeat: the sweeper leaves it, a second execution returns at once."""
    settings.SHADOW_CONCURRENCY = 1
    settings.LLM_MAX_RETRIES = 50
    ingest_turns(day_log(DAY, sessions=1, turns_per_session=2))
    release(url=cand.url)
    run = shadow_run_create(release="cand-1", day=DAY, sample=2)
    stalled, go = threading.Event(), threading.Event()

    def responder(body):
        if not go.is_set():
            stalled.set()
            return ("status", 429)
        return cand.answering(body)

    cand.responder = responder
    box = {}

    def execute():
        try:
            box["run"] = shadow_run_execute(run_id=run.pk)
        finally:
            connections.close_all()

    holder = threading.Thread(target=execute)
    holder.start()
    assert stalled.wait(30)
    beats = set()
    for _ in range(3):
        beats.add(ShadowRun.objects.get(pk=run.pk).heartbeat_at)
        # every heartbeat counted as stale: a job without a live holder would be re-queued
        sent = []
        assert jobs_sweep(stale_seconds=0, enqueue=lambda name, pk: sent.append(pk))["shadow.ShadowRun"][
                   "requeued"] == 0 and not sent
        assert shadow_run_execute(run_id=run.pk).status == "running"  # a second worker: nothing done
        while ShadowRun.objects.get(pk=run.pk).heartbeat_at in beats:
            threading.Event().wait(0.02)
    go.set()
    holder.join(60)
    done = ShadowRun.objects.get(pk=run.pk)
    assert done.status == "done" and done.answered == 2 and done.attempts == 1
    assert max(answered_per_turn(cand).values()) == 1
    assert SpendEntry.objects.filter(status="settled").count() == 2


# --- mirrored answers ------------------------------------------------------------------------------

def _ingest(tmp_path, source, lines):
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in lines))
    out = io.StringIO()
    call_command("ingest", str(path), "--source", source, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _shadow(turn, rel="cand-a"):
    return {"type": "shadow", "turn_id": turn, "release": rel, "response": f"mirrored {turn}"}


@pytest.mark.django_db
def test_mirror_lines_from_a_source_not_allowed_are_rejected_with_the_reason(tmp_path, settings):
    settings.SHADOW_MIRROR_SOURCES = ["gateway"]
    turn = {"id": "t-1", "session_id": "s", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "r"}
    out = _ingest(tmp_path, "app-logs", [turn, _shadow("t-1")])
    assert out["created"] == 1 and out["rejected"] == 1 and not MirroredAnswer.objects.exists()
    reject = RejectedLine.objects.get()
    assert reject.line_no == 2 and "source 'app-logs' is not allowed to mirror" in reject.reason
    assert "SHADOW_MIRROR_SOURCES" in reject.reason
    out = _ingest(tmp_path, "gateway", [_shadow("t-1")])
    assert out["rejected"] == 0 and MirroredAnswer.objects.count() == 1


@pytest.mark.django_db
def test_mirror_lines_past_the_daily_cap_of_their_release_are_rejected(tmp_path, settings):
    settings.SHADOW_MIRROR_SOURCES = ["gw-1", "gw-2"]
    settings.SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY = 3
    _ingest(tmp_path, "gw-1", [_shadow("t-1"), _shadow("t-2"), _shadow("t-1", "cand-b")])
    # the cap counts every source's lines of the release today
    out = _ingest(tmp_path, "gw-2", [_shadow("t-3"), _shadow("t-4"), _shadow("t-5", "cand-b")])
    assert out["rejected"] == 1 and out["shadow"] == 2
    assert MirroredAnswer.objects.filter(release="cand-a").count() == 3
    reject = RejectedLine.objects.get()
    assert reject.line_no == 2 and "release 'cand-a' has 3 mirrored answers today" in reject.reason


# --- the real Celery worker, killed mid-run -------------------------------------------------------

@pytest.mark.worker
@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_resumes_without_asking_twice_or_losing_spend(cand, tmp_path):
    """kill -9 of the worker's child while it replays: the task comes back (acks late), the run is
    taken over at once (its advisory lock died with the child) and finishes; the server answered
    each turn at most once and the ledger holds every answer it gave."""
    import os
    import signal

    from evalgap.celery import app as celery_app
    from tests.test_exactly_once import _children, _start_worker, _wait

    ingest_turns(day_log(DAY, sessions=10, turns_per_session=3))
    # the worker is its own process: the candidate's key reaches it as an environment variable its
    # release names (a release at a base URL of its own never gets OPENAI_API_KEY)
    release(url=cand.url, api_key_env="CAND_API_KEY")
    run = shadow_run_create(release="cand-1", day=DAY, sample=30)
    slow = cand.answering

    def answering(body):
        threading.Event().wait(0.1)  # answers take a moment: the kill lands mid-run
        return slow(body)

    cand.responder = answering
    queue = f"spend-{uuid.uuid4().hex[:8]}"
    env = {"OPENAI_API_KEY": "sk-test", "CAND_API_KEY": "sk-test", "SHADOW_PRICE_PER_1K_PROMPT_TOKENS": "1",
           "LLM_MAX_TOKENS": "100",
           "SHADOW_PRICE_PER_1K_COMPLETION_TOKENS": "1", "REPLAY_MAX_USD_PER_DAY": "", "SHADOW_CONCURRENCY": "2"}
    worker = _start_worker(queue, tmp_path, **env)
    try:
        celery_app.send_task("shadow.tasks.shadow_run_execute", args=[run.pk], queue=queue)
        _wait(lambda: ShadowPair.objects.filter(run=run).count() >= 6, what="some answers")
        child = _wait(lambda: _children(worker.pid), what="a child")[0]
        os.kill(child, signal.SIGKILL)
        _wait(lambda: ShadowRun.objects.filter(pk=run.pk, status="done").exists(), timeout=180, what="the resumed run")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    done = ShadowRun.objects.get(pk=run.pk)
    assert done.attempts == 2 and done.sampled == 30 and done.answered + done.failed == 30
    assert max(answered_per_turn(cand).values()) == 1
    # a turn whose request was in flight at the kill is not asked again, and says so
    assert all("asked before" in e for e in ShadowPair.objects.filter(run=run).exclude(error="")
               .values_list("error", flat=True))
    entries = SpendEntry.objects.filter(job=llm.job_label(ShadowRun, run.pk))
    settled = entries.filter(status="settled")
    assert sum(e.cost_usd for e in settled) == server_cost(cand) - Decimal("0.03") * (
        len(cand.answered) - settled.count())
    assert all(e.reserved_usd >= Decimal("0.03") for e in entries.filter(status="reserved"))
    assert done.cost_usd == sum(e.cost_usd for e in settled) + sum(e.reserved_usd for e in entries.filter(
        status="reserved")) >= server_cost(cand)
