"""llm.client against a local OpenAI-compatible server: JSON validation and re-asking, transient
retries, no tools, PII redacted before it leaves, budget, concurrency bound, cost."""
import json
import threading
import time
from decimal import Decimal

import pytest
from django.test import override_settings

from llm import client as llm
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake():
    with FakeOpenAI() as server, override_settings(
            OPENAI_BASE_URL=server.url, OPENAI_API_KEY="sk-test", JUDGE_MODEL="judge-x", LLM_BACKOFF_SECONDS=0.01,
            LLM_MAX_RETRIES=2, LLM_MAX_INVALID=1, JUDGE_PRICE_PER_1K_PROMPT_TOKENS=1.0,
            JUDGE_PRICE_PER_1K_COMPLETION_TOKENS=2.0, LLM_TIMEOUT_SECONDS=0.5):
        yield server


def parse_verdict(content):
    data = llm.loads_json_object(content)
    if data.get("verdict") not in ("A", "B", "tie"):
        raise ValueError('"verdict": expected "A", "B" or "tie"')
    return data["verdict"]


def test_json_answer_is_parsed_and_its_cost_counted(fake):
    fake.script = [("ok", json.dumps({"rationale": "r", "verdict": "A"}))]
    usage = llm.Usage()
    verdict, reply = llm.chat_json(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], parse_verdict, usage=usage)
    assert verdict == "A" and reply.cost_usd == Decimal("1.4")  # 1000 * 1/1k + 200 * 2/1k
    assert (usage.attempts, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (1, 1000, 200, Decimal("1.4"))
    body = fake.requests[0]["body"]
    assert body["model"] == "judge-x" and body["temperature"] == 0 and "tools" not in body
    assert body["response_format"] == {"type": "json_object"}


def test_malformed_output_is_asked_again_then_given_up(fake):
    fake.script = [("ok", "not json"), ("ok", json.dumps({"verdict": "maybe"}))]
    usage = llm.Usage()
    with pytest.raises(llm.LLMOutputInvalid, match="verdict"):
        llm.chat_json(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], parse_verdict, usage=usage)
    assert usage.attempts == 2 and len(usage.errors) == 2
    assert "That was not valid" in fake.requests[1]["body"]["messages"][-1]["content"]


def test_rate_limits_are_retried_and_then_reported_unavailable(fake):
    fake.script = [("status", 429), ("ok", json.dumps({"verdict": "tie"}))]
    assert llm.chat_json(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], parse_verdict)[0] == "tie"
    fake.requests.clear()
    fake.script = [("status", 503)]
    with pytest.raises(llm.LLMUnavailable):
        llm.chat_json(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], parse_verdict)
    assert len(fake.requests) == 3  # first try + LLM_MAX_RETRIES


def test_personal_data_is_redacted_before_it_leaves(fake):
    fake.script = [("ok", "fine")]
    llm.chat_text(llm.endpoint("JUDGE"), [{"role": "user", "content": "mail me at jane.doe@example.com"}])
    sent = fake.requests[0]["body"]["messages"][0]["content"]
    assert "jane.doe@example.com" not in sent and "[EMAIL]" in sent


def test_the_budget_stops_requests_once_reached(fake):
    fake.script = [("ok", "an answer")]
    budget = llm.Budget(max_usd=2.0)
    llm.chat_text(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], budget=budget)
    llm.chat_text(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], budget=budget)
    with pytest.raises(llm.BudgetExceeded):
        llm.chat_text(llm.endpoint("JUDGE"), [{"role": "user", "content": "q"}], budget=budget)
    assert len(fake.requests) == 2 and budget.stopped and budget.spent == Decimal("2.8")


def test_map_concurrent_bounds_requests_in_flight_and_keeps_failures_in_place(fake):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def responder(body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        if body["messages"][0]["content"] == "bad":
            return ("status", 400)
        return ("ok", body["messages"][0]["content"].upper())

    fake.responder = responder
    items = ["a", "b", "bad", "c", "d", "e", "f", "g"]
    out = llm.map_concurrent(lambda q: llm.chat_text(llm.endpoint("JUDGE"), [{"role": "user", "content": q}]).content,
                             items, concurrency=3)
    assert out[:2] == ["A", "B"] and isinstance(out[2], llm.LLMError) and out[3:] == ["C", "D", "E", "F", "G"]
    assert 2 <= peak[0] <= 3


def test_an_endpoint_without_settings_names_what_to_set():
    with override_settings(OPENAI_BASE_URL="", OPENAI_API_KEY="", JUDGE_MODEL=""):
        ep = llm.endpoint("JUDGE")
        assert ep.missing() == ["OPENAI_BASE_URL", "OPENAI_API_KEY", "JUDGE_MODEL"]
        with pytest.raises(llm.LLMNotConfigured, match="set OPENAI_BASE_URL and OPENAI_API_KEY and JUDGE_MODEL"):
            llm.chat_text(ep, [{"role": "user", "content": "q"}])
