"""The pairwise judge against local OpenAI-compatible judges: fair, always-first, malformed, 429,
timeout; what it is sent, what each verdict records; and judge_calibrate on human preferences."""
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core import stats
from shadow import selectors
from shadow.models import JudgeCalibration, JudgeRun, ShadowPair, ShadowVerdict
from shadow.services.judging import load_prompt
from tests.fake_openai import FakeOpenAI
from tests.shadow_helpers import (GOOD, answers_in, day_log, fair_judge, first_picker, ingest_turns, judgement,
                                  release, run_json, taxonomy)

pytestmark = pytest.mark.django_db
DAY = date(2026, 10, 5)
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "judge_prefs_small.jsonl"


@pytest.fixture
def judge():
    with FakeOpenAI() as server, override_settings(
            JUDGE_BASE_URL=server.url, JUDGE_API_KEY="sk-judge", JUDGE_MODEL="judge-x", OPENAI_BASE_URL="",
            OPENAI_API_KEY="", LLM_BACKOFF_SECONDS=0.01, LLM_MAX_RETRIES=2, LLM_MAX_INVALID=1,
            LLM_TIMEOUT_SECONDS=0.5, JUDGE_CONCURRENCY=4, JUDGE_PRICE_PER_1K_PROMPT_TOKENS=0.001,
            JUDGE_PRICE_PER_1K_COMPLETION_TOKENS=0.002):
        yield server


def pairs(n_sessions=4, candidate=lambda i, served: f"candidate {i}"):
    """Replayed pairs for a release, made the way replay stores them (one per served turn)."""
    taxonomy()
    ingest_turns(day_log(DAY, sessions=n_sessions))
    rel = release()
    from production.models import Turn

    made = []
    for i, turn in enumerate(Turn.objects.order_by("id")):
        made.append(ShadowPair.objects.create(turn=turn, release=rel, origin="replay", session=turn.session, day=DAY,
                                              candidate_answer=candidate(i, turn.response)))
    return rel, made


def test_a_fair_judge_sees_both_orders_and_its_verdicts_are_recorded(judge):
    # given: the candidate is better on even pairs, worse on odd ones
    rel, made = pairs(candidate=lambda i, served: f"candidate {i} {GOOD}" if i % 2 == 0 else f"candidate {i}")
    from production.models import Turn
    for p in made[1::2]:  # the served answer is the good one on odd pairs
        Turn.objects.filter(pk=p.turn_id).update(response=p.turn.response + " " + GOOD)
    judge.responder = fair_judge

    # when
    line = run_json("shadow_judge", "--release", "cand-1")

    # then: the exact --json keys and counts
    assert set(line) == {"judged", "candidate_wins", "served_wins", "ties", "inconsistent", "failed", "cost_usd"}
    assert (line["judged"], line["candidate_wins"], line["served_wins"], line["ties"], line["inconsistent"],
            line["failed"]) == (8, 4, 4, 0, 0, 0)
    assert line["cost_usd"] == pytest.approx(16 * (1000 * 0.001 + 200 * 0.002) / 1000)
    # two requests per pair, at temperature 0, JSON mode, the answers swapped between them
    assert len(judge.requests) == 16
    bodies = [r["body"] for r in judge.requests]
    assert all(b["temperature"] == 0 and b["model"] == "judge-x" and "tools" not in b for b in bodies)
    assert all(b["response_format"] == {"type": "json_object"} for b in bodies)
    first = made[0]
    seen = [answers_in(b) for b in bodies if first.candidate_answer in b["messages"][-1]["content"]]
    assert sorted((s["A"] == first.candidate_answer, s["B"] == first.candidate_answer) for s in seen) == [
        (False, True), (True, False)]
    # the prompt carries the conversation, the contexts, the query and the active failure modes
    text = bodies[0]["messages"][0]["content"] + bodies[0]["messages"][1]["content"]
    assert "FAITHFULNESS.HALLUCINATION: Hallucinated content" in text and "policy: returns within 30 days" in text
    second_turn = next(b for b in bodies if "question 1 of s1005-0" in b["messages"][1]["content"])
    assert "User: question 0 of s1005-0" in second_turn["messages"][1]["content"]
    assert "Assistant: served answer 0 for s1005-0" in second_turn["messages"][1]["content"]
    # pairs and verdicts in the database
    outcomes = dict(ShadowPair.objects.values_list("id", "outcome"))
    assert [outcomes[p.pk] for p in made] == ["candidate_win", "served_win"] * 4
    v = ShadowVerdict.objects.filter(pair=made[0]).order_by("order")
    assert [x.order for x in v] == ["candidate_first", "served_first"]
    assert [x.verdict for x in v] == ["A", "B"] and [x.winner for x in v] == ["candidate", "candidate"]
    assert all(x.judge_model == "judge-x" and x.prompt_version == "judge-v2" for x in v)
    assert json.loads(v[0].raw_answer)["verdict"] == "A" and v[0].rationale == "the marked answer is right"
    loser = ShadowPair.objects.get(pk=made[0].pk)
    assert loser.served_failure_modes == ["FAITHFULNESS.HALLUCINATION"] and loser.candidate_failure_modes == []
    run = JudgeRun.objects.get()
    assert (run.status, run.judged, run.requests) == ("done", 8, 16)
    # nothing left to judge
    assert run_json("shadow_judge")["judged"] == 0 and len(judge.requests) == 16


def test_a_judge_that_always_picks_the_first_answer_never_makes_a_win(judge):
    rel, made = pairs(candidate=lambda i, served: f"candidate {i} {GOOD}")
    judge.responder = first_picker
    line = run_json("shadow_judge")
    assert (line["judged"], line["candidate_wins"], line["served_wins"], line["inconsistent"]) == (8, 0, 0, 8)
    with override_settings(SHADOW_MIN_PAIRS=1, SHADOW_MIN_DAYS=1):
        report = run_json("shadow_report", "--release", "cand-1")
    assert report["inconsistent_rate"] == 1.0 and report["win_rate"] == 0.5 and report["tie_rate"] == 0.0
    assert report["decision"] == "no_difference" and report["decisive_win_rate"] is None


def test_unknown_codes_are_dropped_and_counted(judge):
    pairs(n_sessions=1)
    judge.responder = lambda body: judgement("tie", modes_a=["FORMAT", "MADE.UP", "format"], modes_b=["NOPE"])
    run_json("shadow_judge")
    assert JudgeRun.objects.get().dropped_codes == 2 * 2 * 2  # two unknown codes per order, two orders, two pairs
    v = ShadowVerdict.objects.first()
    assert v.failure_modes_a == ["FORMAT"] and v.dropped_codes == 2
    assert ShadowPair.objects.first().outcome == "tie"


def test_malformed_output_is_asked_again_then_the_pair_is_unjudged_with_the_reason(judge):
    pairs(n_sessions=1)
    judge.responder = lambda body: "I think A is better."  # never JSON
    line = run_json("shadow_judge")
    assert (line["judged"], line["failed"]) == (0, 2)
    assert len(judge.requests) == 2 * 2 * 2  # 2 pairs x 2 orders x (first try + LLM_MAX_INVALID re-asks)
    assert "That was not valid" in judge.requests[-1]["body"]["messages"][-1]["content"]
    p = ShadowPair.objects.first()
    assert p.outcome == "unjudged" and "malformed judge output" in p.outcome_reason and "2 attempts" in p.outcome_reason
    v = ShadowVerdict.objects.filter(pair=p).first()
    assert v.verdict == "" and v.raw_answer == "I think A is better." and v.attempts == 2
    # an unjudged pair is not asked again, and is left out of the report
    assert run_json("shadow_judge")["judged"] == 0
    assert selectors.shadow_report("cand-1")["unjudged"] == 2


def test_a_malformed_first_answer_then_valid_json_is_judged(judge):
    pairs(n_sessions=1)
    judge.script = [("ok", '{"verdict": "maybe"}'), ("ok", judgement("tie"))]
    with override_settings(JUDGE_CONCURRENCY=1):
        line = run_json("shadow_judge")
    assert (line["judged"], line["ties"], line["failed"]) == (2, 2, 0)
    assert ShadowVerdict.objects.filter(attempts=2).count() == 1


def test_rate_limits_are_retried_and_a_lasting_outage_leaves_pairs_pending(judge):
    pairs(n_sessions=1)
    judge.script = [("status", 429), ("ok", judgement("tie"))]
    with override_settings(JUDGE_CONCURRENCY=1):
        assert run_json("shadow_judge")["ties"] == 2  # the 429 was retried inside the client

    ShadowPair.objects.update(outcome="", judged_at=None)
    ShadowVerdict.objects.all().delete()
    judge.requests.clear()
    judge.script = [("ok", judgement("A")), ("status", 429)]  # one order answers, then the judge is down
    with override_settings(JUDGE_CONCURRENCY=1):
        line = run_json("shadow_judge")
    assert (line["judged"], line["failed"]) == (0, 2)
    p = ShadowPair.objects.get(turn__external_id="s1005-0-0")
    assert p.outcome == "" and "judge unavailable" in p.outcome_reason and "RateLimitError" in p.outcome_reason
    # the next pass asks only the order that is missing, and replaces the failed row
    judge.requests.clear()
    judge.script = [("ok", judgement("B"))]
    with override_settings(JUDGE_CONCURRENCY=1):
        line = run_json("shadow_judge")
    assert line["judged"] == 2 and len(judge.requests) == 3  # 1 + 2 orders
    assert ShadowVerdict.objects.filter(pair=p).count() == 2 and not ShadowVerdict.objects.filter(verdict="").exists()
    p.refresh_from_db()
    # candidate first: "A" (the candidate); served first: "B" (the candidate again): a candidate win
    assert p.outcome == "candidate_win" and p.outcome_reason == ""


def test_a_timeout_is_retried(judge):
    pairs(n_sessions=1)
    judge.script = [("slow", 2.0, judgement("tie")), ("ok", judgement("tie"))]
    with override_settings(JUDGE_CONCURRENCY=1):
        line = run_json("shadow_judge")
    assert (line["judged"], line["failed"]) == (2, 0)
    assert len(judge.requests) == 5  # the first timed out (0.5 s) and was sent again


def test_without_a_judge_the_command_names_the_settings():
    pairs(n_sessions=1)
    with override_settings(JUDGE_BASE_URL="", JUDGE_API_KEY="", JUDGE_MODEL="", OPENAI_BASE_URL="", OPENAI_API_KEY=""):
        with pytest.raises(CommandError, match="JUDGE_MODEL"):
            call_command("shadow_judge", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_prompt_is_a_versioned_file():
    prompt = load_prompt("judge-v2")
    assert prompt.version == "judge-v2" and "{answer_a}" in prompt.user and "rationale" in prompt.system
    assert prompt.system.index('"rationale"') < prompt.system.index('"verdict"')
    # the JSON the judge answers with is a contract: the same line in every version
    contract = [line for line in load_prompt("judge-v1").system.splitlines() if line.startswith('{"rationale"')]
    assert len(contract) == 1 and contract[0] in prompt.system.splitlines()


# --- judge_calibrate -----------------------------------------------------------------------------

def longer_judge(body):
    a = answers_in(body)
    la, lb = len(a["A"]), len(a["B"])
    return judgement("A" if la > lb else "B" if lb > la else "tie")


def test_judge_calibrate_reports_the_issue_keys_against_core_stats(judge):
    taxonomy()
    judge.responder = longer_judge
    line = run_json("judge_calibrate", str(FIXTURE))
    assert set(line) == {"pairs", "agreement", "agreement_decisive", "cohen_kappa", "swap_consistency",
                         "first_position_rate", "longer_preferred_rate", "human_longer_preferred_rate"}
    rows = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    longer = ["a" if len(r["response_a"]) > len(r["response_b"]) else "b" if len(r["response_b"]) > len(r["response_a"])
              else "tie" for r in rows]
    expected = stats.pairwise_calibration(longer, [r["human"] for r in rows], [len(r["response_a"]) for r in rows],
                                          [len(r["response_b"]) for r in rows], judge_swapped=longer)
    assert line == {k: expected[k] for k in line}
    assert line["pairs"] == 40 and line["swap_consistency"] == 1.0 and line["longer_preferred_rate"] == 1.0
    row = JudgeCalibration.objects.get()
    assert row.judge_model == "judge-x" and row.pairs == 40 and row.result["n"]["agreement"] == 40
    assert len(judge.requests) == 80


def test_judge_calibrate_shows_position_bias(judge):
    taxonomy()
    judge.responder = first_picker
    line = run_json("judge_calibrate", str(FIXTURE), "--limit", "10")
    assert line["pairs"] == 10 and line["swap_consistency"] == 0.0 and line["first_position_rate"] == 1.0


def test_judge_calibrate_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "response_a": "a", "response_b": "b", "human": "maybe"}\n')
    with pytest.raises(CommandError, match="bad.jsonl:1: 'human'"):
        call_command("judge_calibrate", str(bad), stdout=io.StringIO())


def test_costs_are_summed_per_verdict(judge):
    pairs(n_sessions=1)
    judge.responder = lambda body: judgement("tie")
    run_json("shadow_judge")
    assert sum(v.cost_usd for v in ShadowVerdict.objects.all()) == JudgeRun.objects.get().cost_usd == Decimal("0.0056")


def test_a_pass_whose_worker_died_is_requeued_and_finishes_only_what_is_missing(judge):
    from datetime import timedelta

    from django.utils import timezone

    from core.jobs import jobs_sweep
    from shadow.services import judge as judge_service

    # given: a pass that answered one order of one pair, then lost its worker
    _, made = pairs(n_sessions=1)
    judge.responder = lambda body: judgement("tie")
    run = judge_service.judge_run_create()
    ShadowVerdict.objects.create(pair=made[0], run=run, order="candidate_first", judge_model="judge-x",
                                 prompt_version="judge-v2", verdict="tie", winner="tie", rationale="r")
    long_ago = timezone.now() - timedelta(hours=2)
    JudgeRun.objects.filter(pk=run.pk).update(status="running", attempts=1, started_at=long_ago, heartbeat_at=long_ago)

    # when: the sweeper finds it and its task runs again
    sent = []
    jobs_sweep(enqueue=lambda name, pk: sent.append((name, pk)))
    assert (("shadow.tasks.shadow_judge_execute", run.pk)) in sent
    from shadow.tasks import shadow_judge_execute
    summary = shadow_judge_execute(run.pk)

    # then: three orders asked (not four), both pairs judged
    assert summary["judged"] == 2 and len(judge.requests) == 3
    assert JudgeRun.objects.get(pk=run.pk).status == "done"
