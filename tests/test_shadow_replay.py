"""Replay: the real openai client against a local candidate server; what is sent, what is stored,
deterministic whole-conversation sampling, the daily budget, re-runs, the beat rows."""
import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from shadow.models import ShadowPair, ShadowRun
from shadow.services import replay
from tests.fake_openai import FakeOpenAI
from tests.shadow_helpers import day_log, ingest_turns, release, run_json

pytestmark = pytest.mark.django_db
DAY = date(2026, 10, 5)


def candidate(body):
    return f"candidate answer to: {body['messages'][-1]['content']}"


@pytest.fixture
def cand():
    # The releases below are served at the shared OPENAI_BASE_URL, so the shared key is theirs (a
    # release at a base URL of its own gets only the key it names: tests/test_releases.py).
    with FakeOpenAI(candidate) as server, override_settings(
            OPENAI_BASE_URL=server.url, OPENAI_API_KEY="sk-served", LLM_BACKOFF_SECONDS=0.01, LLM_MAX_RETRIES=2,
            LLM_TIMEOUT_SECONDS=2, SHADOW_MAX_USD_PER_DAY=None, SHADOW_CONCURRENCY=4,
            SHADOW_SAMPLE_SALT="test-salt"):
        yield server


def test_replay_sends_history_contexts_and_query_without_tools_and_stores_the_pairs(cand, settings):
    # given a day of conversations (2 turns each) and a candidate release with its own key variable
    ingest_turns(day_log(DAY, sessions=3) + day_log(date(2026, 10, 6), sessions=2))
    settings.RELEASE_API_KEYS = {"CAND_KEY": "sk-candidate"}  # as settings read CAND_KEY=sk-candidate
    release(url=cand.url, api_key_env="CAND_KEY", system_prompt="Answer in one sentence.")

    # when
    with override_settings(SHADOW_PRICE_PER_1K_PROMPT_TOKENS=0.5, SHADOW_PRICE_PER_1K_COMPLETION_TOKENS=1.0):
        line = run_json("shadow_run", "--release", "cand-1", "--day", "2026-10-05", "--sample", "150")

    # then: the exact --json keys; every turn of the day answered (6 turns < 150)
    assert line == {"release": "cand-1", "day": "2026-10-05", "sampled": 6, "answered": 6, "failed": 0,
                    "cost_usd": 4.2}  # 6 x (1000 x 0.5 + 200 x 1.0) / 1000
    assert len(cand.requests) == 6
    second_turn = next(r["body"] for r in cand.requests if r["body"]["messages"][-1]["content"] == "question 1 of s1005-0")
    assert cand.requests[0]["headers"]["authorization"] == "Bearer sk-candidate"
    assert second_turn["model"] == "cand-model" and "tools" not in second_turn and "tool_choice" not in second_turn
    roles = [m["role"] for m in second_turn["messages"]]
    assert roles == ["system", "user", "assistant", "user", "user"]  # contexts as user content, never system
    msgs = second_turn["messages"]
    assert msgs[0]["content"] == "Answer in one sentence."
    assert (msgs[1]["content"], msgs[2]["content"]) == ("question 0 of s1005-0", "served answer 0 for s1005-0")
    assert "doc about" not in msgs[0]["content"]
    assert "[1] doc about s1005-0" in msgs[3]["content"] and "[2] policy: returns within 30 days" in msgs[3]["content"]
    pairs = ShadowPair.objects.filter(release__name="cand-1").select_related("turn")
    assert pairs.count() == 6 and {p.day for p in pairs} == {DAY} and {p.origin for p in pairs} == {"replay"}
    p = pairs.get(turn__external_id="s1005-0-1")
    assert p.candidate_answer == "candidate answer to: question 1 of s1005-0"
    assert (p.prompt_tokens, p.completion_tokens, p.cost_usd) == (1000, 200, Decimal("0.7"))
    assert p.latency_ms > 0 and p.error == "" and p.outcome == "" and p.session_id == p.turn.session_id
    run = ShadowRun.objects.get()
    assert (run.status, run.sampled, run.answered, run.requests, run.budget_stopped) == ("done", 6, 6, 6, False)


def test_sampling_is_deterministic_and_keeps_whole_conversations(cand):
    ingest_turns(day_log(DAY, sessions=40, turns_per_session=3))
    rel = release(url=cand.url)
    first = replay.sample_turn_ids(release=rel, day=DAY, n=20, salt="salt-a")
    again = replay.sample_turn_ids(release=rel, day=DAY, n=20, salt="salt-a")
    other = replay.sample_turn_ids(release=rel, day=DAY, n=20, salt="salt-b")
    assert first == again and first != other
    # whole conversations: 3 turns each, so 20 asked -> 7 conversations (21 turns), each complete
    from production.models import Turn
    sessions = {}
    for t in Turn.objects.filter(pk__in=first):
        sessions.setdefault(t.session_id, []).append(t.pk)
    assert len(first) == 21 and all(len(v) == 3 for v in sessions.values())
    # a bigger sample contains the smaller one (the same conversations come first)
    assert set(first) <= set(replay.sample_turn_ids(release=rel, day=DAY, n=60, salt="salt-a"))
    # turns the candidate served itself are not compared with themselves
    ingest_turns([{**r, "id": "own-" + r["id"], "session_id": "own", "metadata": {"release": "cand-1"}}
                  for r in day_log(DAY, sessions=1)])
    own = set(Turn.objects.filter(external_id__startswith="own-").values_list("pk", flat=True))
    assert not own & set(replay.sample_turn_ids(release=rel, day=DAY, n=1000, salt="salt-a"))


def test_the_daily_budget_stops_the_run_and_says_so(cand):
    ingest_turns(day_log(DAY, sessions=5))
    release(url=cand.url)
    cand.responder = lambda body: ("ok", candidate(body), {"prompt_tokens": 100, "completion_tokens": 200})
    err = io.StringIO()
    # Each answer costs $0.5 and is reserved at its worst case first: its prompt's bytes at $1/1k plus
    # 500 answer tokens at $2/1k (a little over $1). A cap of $2: $0 + 1.1 and $0.5 + 1.1 fit, $1 + 1.1 does not.
    with override_settings(SHADOW_PRICE_PER_1K_PROMPT_TOKENS=1.0, SHADOW_PRICE_PER_1K_COMPLETION_TOKENS=2.0,
                           REPLAY_MAX_USD_PER_DAY=2.0, LLM_MAX_TOKENS=500, SHADOW_CONCURRENCY=1):
        line = run_json("shadow_run", "--release", "cand-1", "--day", "2026-10-05", stderr=err)
        assert line["sampled"] == 10 and line["answered"] == 2 and line["failed"] == 0
        assert line["cost_usd"] == pytest.approx(1.0)
        run = ShadowRun.objects.get()
        assert run.budget_stopped and run.not_sent == 8 and run.budget_usd == Decimal("2")
        assert "REPLAY_MAX_USD_PER_DAY of $2" in run.budget_reason
        assert "8 of 10 sampled turns not asked" in run.budget_reason
        assert "budget stop:" in err.getvalue()
        # the same day again: what is left cannot pay for a request, nothing is sent
        assert run_json("shadow_run", "--release", "cand-1", "--day", "2026-10-05")["answered"] == 2
    assert len(cand.requests) == 2 and ShadowPair.objects.count() == 2
    assert all(r["body"]["max_tokens"] == 500 for r in cand.requests)


def test_a_second_run_asks_only_what_is_missing_and_retries_failures(cand):
    ingest_turns(day_log(DAY, sessions=2))
    release(url=cand.url)
    cand.responder = None
    cand.script = [("ok", "a1"), ("status", 400), ("ok", "a3"), ("ok", "a4")]
    with override_settings(SHADOW_CONCURRENCY=1):
        first = run_json("shadow_run", "--release", "cand-1", "--day", "2026-10-05")
        assert (first["answered"], first["failed"]) == (3, 1)
        failed = ShadowPair.objects.get(error__startswith="LLMError")
        assert failed.candidate_answer == "" and "400" in failed.error
        cand.script = [("ok", "fixed")]
        second = run_json("shadow_run", "--release", "cand-1", "--day", "2026-10-05")
    assert (second["sampled"], second["answered"], second["failed"]) == (4, 4, 0)
    assert len(cand.requests) == 5  # 4, then only the failed one
    failed.refresh_from_db()
    assert (failed.candidate_answer, failed.error) == ("fixed", "")


def test_usage_errors_are_clear():
    with pytest.raises(CommandError, match="no release named 'nope'"):
        call_command("shadow_run", "--release", "nope", stdout=io.StringIO())
    release()
    with pytest.raises(CommandError, match="--day: expected YYYY-MM-DD"):
        call_command("shadow_run", "--release", "cand-1", "--day", "05/10/2026", stdout=io.StringIO())


def test_no_endpoint_fails_the_run_with_the_settings_to_set():
    ingest_turns(day_log(DAY, sessions=1))
    release()
    with override_settings(OPENAI_BASE_URL="", OPENAI_API_KEY=""), \
            pytest.raises(CommandError, match="OPENAI_BASE_URL"):
        call_command("shadow_run", "--release", "cand-1", "--day", "2026-10-05", stdout=io.StringIO())
    run = ShadowRun.objects.get()
    assert run.status == "failed" and "OPENAI_BASE_URL" in run.error


def test_beat_rows_run_replay_judge_mirror_and_audit():
    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    # (a transactional test elsewhere may have flushed the migration's rows: apply it again)
    __import__("importlib").import_module("shadow.migrations.0002_beat_schedules").schedules(apps, None)
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"shadow.tasks.shadow_runs_daily", "shadow.tasks.shadow_judge_daily", "shadow.tasks.mirror_pairs_sync",
            "shadow.tasks.monthly_audit"} <= tasks


def test_the_daily_task_replays_only_releases_marked_for_shadowing(cand):
    from shadow import tasks

    release(name="on", url=cand.url, shadow_enabled=True)
    release(name="off", url=cand.url)
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        ids = tasks.shadow_runs_daily()
    assert [r.release.name for r in ShadowRun.objects.filter(pk__in=ids)] == ["on"]
