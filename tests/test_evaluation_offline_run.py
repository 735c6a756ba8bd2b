"""offline_run: the release answers each item, the grader grades it against the reference — both
on local OpenAI-compatible servers (tests/fake_openai.py); --served grades production's answers."""
import io
import json
import re
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from evaluation.models import OfflineRun, OfflineScore
from evaluation.services import offline
from llm.client import LLMUnavailable
from tests.evaluation_helpers import frozen_version, item_for, release, turns
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db
SUMMARY_KEYS = {"release", "testset", "version", "items", "score", "ci_low", "ci_high"}


def verdict_json(verdict: str) -> str:
    return json.dumps({"rationale": f"the answer is {verdict}", "verdict": verdict})


class Grader:
    """Grades by what the answer says; counts requests in flight (to check the concurrency bound)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.malformed_for = set()  # queries the grader always answers with junk
        self.malformed_once = set()

    def __call__(self, body):
        text = body["messages"][1]["content"]  # the question, reference and answer (re-asks come after)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            import time

            time.sleep(0.02)  # overlap requests so that the bound, not luck, limits them
            if any(q in text for q in self.malformed_for):
                return "I think it is fine."
            for q in list(self.malformed_once):
                if q in text and len(body["messages"]) == 2:
                    return '{"verdict": "great"}'
            if "GOOD" in text:
                return verdict_json("correct")
            if "PARTIAL" in text:
                return verdict_json("partially_correct")
            return verdict_json("incorrect")
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def servers(monkeypatch):
    grader, candidate = FakeOpenAI(), FakeOpenAI()
    grader.responder = Grader()
    # The candidate answers GOOD to even questions, PARTIAL to multiples of 3, else BAD.
    candidate.responder = lambda body: ("GOOD answer" if "even" in body["messages"][-1]["content"] else
                                        "PARTIAL answer" if "third" in body["messages"][-1]["content"] else "BAD answer")
    # The release names its key's variable; settings read such variables once, at start.
    with override_settings(RELEASE_API_KEYS={"CANDIDATE_KEY": "sk-candidate"}, GRADER_BASE_URL=grader.url, GRADER_API_KEY="sk-grader", GRADER_MODEL="grader-model",
                           OPENAI_BASE_URL="", OPENAI_API_KEY="", LLM_TIMEOUT_SECONDS=5, LLM_BACKOFF_SECONDS=0.01,
                           LLM_MAX_RETRIES=1, LLM_MAX_INVALID=2, OFFLINE_CONCURRENCY=3, OFFLINE_MAX_USD=100,
                           GRADER_PRICE_PER_1K_PROMPT_TOKENS=0.001, GRADER_PRICE_PER_1K_COMPLETION_TOKENS=0.002):
        yield grader, candidate
    grader.close()
    candidate.close()


def questions(n: int) -> list[dict]:
    words = {0: "even", 1: "odd", 2: "even", 3: "third", 4: "even", 5: "odd"}
    return [{"key": f"q:{i:02d}", "source": "generated", "query": f"question {i} ({words[i % 6]})",
             "reference_answer": f"reference {i}", "contexts": [f"passage {i}"]} for i in range(n)]


@pytest.fixture
def setup(servers):
    grader, candidate = servers
    release("cand", model="cand-model", base_url=candidate.url, api_key_env="CANDIDATE_KEY",
            system_prompt="You are the support bot.")
    frozen_version("offline-set", questions(12))
    return grader, candidate


def run_command(*extra) -> dict:
    out = io.StringIO()
    call_command("offline_run", "--release", "cand", "--testset", "offline-set", "--version", "1", *extra, "--json",
                 stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def test_generate_answers_grades_and_records_cost_with_bounded_concurrency(setup):
    grader, candidate = setup
    result = run_command()
    assert set(result) == SUMMARY_KEYS and result["items"] == 12
    run = OfflineRun.objects.get()
    scores = {s.key: (s.score, s.verdict, s.answer) for s in run.scores.all()}
    # 6 even -> correct (1), 2 "third" -> partially (0.5), 4 odd -> incorrect (0)
    assert sorted(s for s, _, _ in scores.values()) == [0.0] * 4 + [0.5] * 2 + [1.0] * 6
    assert scores["q:00"] == (1.0, "correct", "GOOD answer") and scores["q:03"][1] == "partially_correct"
    assert result["score"] == pytest.approx((6 + 1) / 12)
    assert result["ci_low"] < result["score"] < result["ci_high"]
    # the candidate got the release's system prompt, the item's passages and the query; temperature 0
    first = candidate.requests[0]["body"]
    assert first["model"] == "cand-model" and first["temperature"] == 0
    assert first["messages"][0]["role"] == "system" and "You are the support bot." in first["messages"][0]["content"]
    # the passages travel as user content, never in a system message
    assert "passage" not in first["messages"][0]["content"]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "user"]
    assert first["messages"][1]["content"].startswith("Answer using these retrieved passages:\n[1] passage")
    assert candidate.requests[0]["headers"]["authorization"] == "Bearer sk-candidate"
    g = grader.requests[0]["body"]
    assert g["model"] == "grader-model" and g["temperature"] == 0 and g["response_format"] == {"type": "json_object"}
    slot = r"<<<BEGIN ([A-Z]{20}) REFERENCE ANSWER>>>\nreference \d+\n<<<END \1 REFERENCE ANSWER>>>"
    assert re.search(slot, g["messages"][1]["content"])
    assert grader.responder.max_in_flight <= 3
    # cost: 12 grader calls of 1000 + 200 tokens at 0.001 / 0.002 per 1k; the candidate has no price
    assert run.llm_requests == 24 and run.prompt_tokens == 24000
    assert float(run.cost_usd) == pytest.approx(12 * (0.001 + 0.0004))
    assert float(sum(s.cost_usd for s in run.scores.all())) == pytest.approx(float(run.cost_usd))
    assert run.status == OfflineRun.Status.DONE and run.grader_model == "grader-model"


def test_malformed_grader_output_is_asked_again_then_the_item_is_recorded_failed(setup):
    grader, _ = setup
    grader.responder.malformed_once.add("question 0 ")
    grader.responder.malformed_for.add("question 1 ")
    result = run_command()
    run = OfflineRun.objects.get()
    assert run.scores.get(key="q:00").score == 1.0  # second try was valid
    failed = run.scores.get(key="q:01")
    assert failed.score is None and "grader output invalid" in failed.error and failed.answer == "BAD answer"
    assert result["items"] == 11 and run.failed == 1 and run.status == OfflineRun.Status.DONE
    asked = [r for r in grader.requests if "question 1 " in r["body"]["messages"][1]["content"]]
    assert len(asked) == 3  # LLM_MAX_INVALID = 2 re-asks


def test_the_budget_stops_the_run_and_a_resume_finishes_it_without_paying_twice(setup):
    grader, candidate = setup
    with override_settings(OFFLINE_CONCURRENCY=1):
        with pytest.raises(CommandError, match="budget of \\$0.005(0*) reached"):
            run_command("--max-usd", "0.005")  # 1.4 thousandths a grade: 4 items
        run = OfflineRun.objects.get()
        assert run.status == OfflineRun.Status.FAILED and run.scores.count() == 4
        assert float(run.cost_usd) == pytest.approx(4 * 0.0014)
        graded_before = len(grader.requests)
        result = run_command("--resume", str(run.pk), "--max-usd", "1")
    run.refresh_from_db()
    assert result["items"] == 12 and run.status == OfflineRun.Status.DONE and run.attempts == 2
    assert len(grader.requests) - graded_before == 8  # only the items still missing
    assert OfflineScore.objects.count() == 12


def test_an_llm_that_stays_unavailable_keeps_the_run_pending_for_a_retry(setup):
    grader, _ = setup
    grader.responder = lambda body: ("status", 503)
    run = offline.offline_run_create(release="cand", testset="offline-set", version=1)
    with pytest.raises(LLMUnavailable):
        offline.offline_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == OfflineRun.Status.PENDING and "503" in run.error and run.scores.count() == 0


def test_served_grades_the_answers_the_release_served_without_generating(setup):
    grader, candidate = setup
    ours = turns(model="cand-model", n=3, src="prod")
    theirs = turns(model="other-model", n=1, src="prod")
    ours[0].response = "GOOD served answer"
    ours[0].save()
    items = [item_for(t) for t in ours + theirs] + questions(1)  # a generated case: nothing was served
    frozen_version("served-set", items)
    out = io.StringIO()
    call_command("offline_run", "--release", "cand", "--testset", "served-set", "--version", "1", "--served",
                 "--json", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    run = OfflineRun.objects.get(mode=OfflineRun.Mode.SERVED)
    assert result["items"] == 3 and run.skipped == 2 and not candidate.requests
    by_key = {s.key: s for s in run.scores.all()}
    first = by_key[f"turn:prod:{ours[0].external_id}"]
    assert (first.score, first.answer, first.turn_id) == (1.0, "GOOD served answer", ours[0].pk)


def test_without_a_grader_the_command_says_what_to_set(setup):
    with override_settings(GRADER_MODEL=""):
        with pytest.raises(CommandError, match="GRADER_MODEL"):
            run_command()
    with pytest.raises(CommandError, match="draft|no version 7") as e:
        call_command("offline_run", "--release", "cand", "--testset", "offline-set", "--version", "7",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert e.value.returncode == 2
    assert not OfflineRun.objects.exists()
