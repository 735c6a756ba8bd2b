"""Replay sees what production saw: the release's data boundary (raw or redacted input, and the
report and the gate say which) and recorded tool calls replayed to the candidate (a matching call
gets the recorded result; any other ends the pair `diverged`). The real commands, the real openai
client, the local OpenAI-compatible server as the candidate and the judge."""
import io
import json
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from releases.models import Release
from shadow import selectors
from shadow.models import ShadowPair
from tests.fake_openai import FakeOpenAI
from tests.gate_helpers import decide_under, offline_run, policy_file, releases, shadow_days, testset
from tests.shadow_helpers import ingest_turns, judgement, run_json, taxonomy

pytestmark = pytest.mark.django_db
DAY = "2026-10-05"
EMAIL = "jane.doe@example.com"


@pytest.fixture
def server():
    with FakeOpenAI() as fake, override_settings(
            OPENAI_BASE_URL=fake.url, OPENAI_API_KEY="sk-test", JUDGE_MODEL="judge-x", LLM_BACKOFF_SECONDS=0.01,
            LLM_MAX_RETRIES=1, LLM_MAX_INVALID=0, LLM_TIMEOUT_SECONDS=5, SHADOW_MAX_USD_PER_DAY=None,
            SHADOW_CONCURRENCY=2, JUDGE_CONCURRENCY=2, SHADOW_MIN_PAIRS=1, SHADOW_MIN_DAYS=1):
        yield fake


def turn(**extra) -> dict:
    return {"id": "t-1", "session_id": "s-1", "timestamp": f"{DAY}T09:00:00Z", "model": "served-model",
            "query": f"I am {EMAIL}, where is my order?", "response": "It shipped yesterday.",
            "contexts": [f"order A1 of {EMAIL}: shipped"], **extra}


def add_release(*flags) -> dict:
    out = io.StringIO()
    call_command("release_add", "cand-1", "--model", "cand-model", *flags, "--json", stdout=out)
    return json.loads(out.getvalue())


def candidate_and_judge(body: dict) -> str:
    """The candidate answers in text; the judge (JSON mode) calls it a tie."""
    if body.get("response_format"):
        return judgement("tie")
    return "Your order shipped yesterday."


def test_data_boundary_same_sends_the_served_models_input_raw(server):
    ingest_turns([turn()])
    assert add_release("--data-boundary", "same")["data_boundary"] == "same"
    server.responder = candidate_and_judge
    assert run_json("shadow_run", "--release", "cand-1", "--day", DAY)["answered"] == 1
    sent = json.dumps(server.requests[0]["body"]["messages"])
    assert sent.count(EMAIL) == 2 and "[EMAIL]" not in sent  # the query and the context, as production logged them
    assert ShadowPair.objects.get().candidate_input == "raw"
    run_json("shadow_judge")
    report = selectors.shadow_report("cand-1")
    assert (report["pairs"], report["input"], report["input_note"]) == (1, "raw", "")
    # the judge still gets redacted text whatever the candidate's boundary
    assert all(EMAIL not in json.dumps(r["body"]["messages"]) for r in server.requests[1:])


def test_data_boundary_redacted_is_the_default_and_the_report_says_so(server):
    ingest_turns([turn()])
    assert add_release()["data_boundary"] == "redacted"
    server.responder = candidate_and_judge
    run_json("shadow_run", "--release", "cand-1", "--day", DAY)
    sent = json.dumps(server.requests[0]["body"]["messages"])
    assert EMAIL not in sent and sent.count("[EMAIL]") == 2
    assert ShadowPair.objects.get().candidate_input == "redacted"
    run_json("shadow_judge")
    report = selectors.shadow_report("cand-1")
    assert report["input"] == "redacted" and report["input_counts"] == {"redacted": 1}
    assert report["input_note"].startswith("the comparison is on redacted input: on 1 of 1 judged pairs")
    out = io.StringIO()
    call_command("shadow_report", "--release", "cand-1", stdout=out)
    assert "input: the comparison is on redacted input" in out.getvalue()


def test_a_bad_data_boundary_is_refused_naming_the_field(server, admin_client):
    with pytest.raises(CommandError, match="--data-boundary"):
        call_command("release_add", "cand-1", "--model", "m", "--data-boundary", "raw", stdout=io.StringIO(),
                     stderr=io.StringIO())
    r = admin_client.post("/api/releases/", {"name": "cand-2", "model": "m", "data_boundary": "raw"},
                          content_type="application/json")
    assert r.status_code == 400 and "data_boundary" in r.json()
    assert not Release.objects.exists()
    r = admin_client.post("/api/releases/", {"name": "cand-2", "model": "m", "data_boundary": "same"},
                          content_type="application/json")
    assert r.status_code == 201 and Release.objects.get().data_boundary == "same"


def test_the_gate_says_the_comparison_is_on_redacted_input(tmp_path):
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 81)
    offline_run(base, v1, 80)
    shadow_days(cand, 2, wins=30, losses=0)
    ShadowPair.objects.filter(release=cand).update(candidate_input="redacted")
    code, out = decide_under(policy_file(tmp_path, min_shadow_pairs=60, min_shadow_days=2),
                             "--candidate", "cand", "--baseline", "base")
    note = [r for r in out["reasons"] if "redacted input" in r]
    assert len(note) == 1 and note[0].startswith("shadow: the comparison is on redacted input: on 60 of 60")
    assert out["evidence"]["shadow"]["input"] == "redacted"


# --- recorded tool calls --------------------------------------------------------------------------

TOOL_TURN = turn(metadata={"tool_calls": [
    {"name": "lookup_order", "arguments": {"order_id": "A1"}, "result": {"status": "shipped", "eta": "Friday"}}]})


def tool_candidate(order_id: str):
    def respond(body: dict):
        if body.get("response_format"):
            return judgement("tie")
        if not body.get("tools"):
            return "Your order shipped yesterday."
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            return ("tools", [{"name": "lookup_order", "arguments": json.dumps({"order_id": order_id})}])
        return f"Your order arrives {json.loads(tool_results[0]['content'])['eta']}."
    return respond


def test_a_recorded_tool_call_gets_its_recorded_result(server):
    taxonomy()
    ingest_turns([TOOL_TURN])
    add_release()
    server.responder = tool_candidate("A1")
    run_json("shadow_run", "--release", "cand-1", "--day", DAY)
    first, second = (r["body"] for r in server.requests)
    assert first["tools"][0]["function"]["name"] == "lookup_order"
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    tool = second["messages"][-1]
    assert (tool["role"], tool["tool_call_id"]) == ("tool", "call_1_0")
    assert json.loads(tool["content"]) == {"status": "shipped", "eta": "Friday"}  # PostgreSQL's JSON orders keys
    pair = ShadowPair.objects.get()
    assert (pair.candidate_answer, pair.outcome, pair.prompt_tokens) == ("Your order arrives Friday.", "", 2000)
    run_json("shadow_judge")
    pair.refresh_from_db()
    assert pair.outcome == "tie"


def test_a_tool_call_production_did_not_make_ends_the_pair_diverged(server):
    taxonomy()
    ingest_turns([TOOL_TURN, {**turn(), "id": "t-2", "session_id": "s-2"}])
    add_release()
    server.responder = tool_candidate("B2")  # not the recorded arguments
    line = run_json("shadow_run", "--release", "cand-1", "--day", DAY)
    assert (line["answered"], line["failed"]) == (2, 0)
    pair = ShadowPair.objects.get(turn__external_id="t-1")
    assert pair.outcome == "diverged" and 'lookup_order({"order_id": "B2"})' in pair.outcome_reason
    plain = ShadowPair.objects.get(turn__external_id="t-2")  # no recorded calls: no tools sent, a text answer
    assert (plain.outcome, plain.candidate_answer) == ("", "Your order shipped yesterday.")
    asked = len(server.requests)
    # the judge never sees it: not judged, not a loss; counted apart in the report
    judged = run_json("shadow_judge")
    assert judged["judged"] == 1 and len(server.requests) == asked + 2
    report = selectors.shadow_report("cand-1")
    assert (report["pairs"], report["diverged"], report["served_wins"]) == (1, 1, 0)
