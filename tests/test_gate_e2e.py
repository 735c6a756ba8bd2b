"""The gate end to end with the real shadow judge (the `openai` client against a local
OpenAI-compatible judge): unjudged pairs -> shadow_judge -> release_gate. A fair judge that sees a
better candidate lets it ship; a judge that always picks the first answer never does."""
import pytest
from django.test import override_settings

from gate.models import GateDecision
from shadow.models import ShadowPair
from tests.fake_openai import FakeOpenAI
from tests.gate_helpers import decide_under, offline_run, policy_file, releases, shadow_days, testset
from tests.shadow_helpers import GOOD, fair_judge, first_picker, run_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge():
    with FakeOpenAI() as server, override_settings(
            JUDGE_BASE_URL=server.url, JUDGE_API_KEY="sk-judge", JUDGE_MODEL="judge-x", OPENAI_BASE_URL="",
            OPENAI_API_KEY="", LLM_BACKOFF_SECONDS=0.01, LLM_MAX_RETRIES=2, LLM_MAX_INVALID=1,
            LLM_TIMEOUT_SECONDS=5, JUDGE_CONCURRENCY=8):
        yield server


@pytest.fixture
def candidate_better(tmp_path):
    """cand and base scored alike offline; 2 days x 30 unjudged pairs whose candidate answer is the
    better one (the fair judge can tell)."""
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 81)
    offline_run(base, v1, 80)
    shadow_days(cand, 2, wins=30, losses=0)
    ShadowPair.objects.filter(release=cand).update(outcome="", candidate_answer=f"the candidate's answer {GOOD}")
    return policy_file(tmp_path, min_shadow_pairs=60, min_shadow_days=2)


def test_a_fair_judge_on_a_better_candidate_ships(judge, candidate_better):
    judge.responder = fair_judge
    judged = run_json("shadow_judge", "--release", "cand")
    assert (judged["judged"], judged["candidate_wins"], judged["inconsistent"]) == (60, 60, 0)
    assert len(judge.requests) == 120  # both orders of every pair

    code, out = decide_under(candidate_better, "--candidate", "cand", "--baseline", "base")

    assert (code, out["decision"]) == (0, "ship")
    shadow = out["evidence"]["shadow"]
    assert (shadow["pairs"], shadow["win_rate"], shadow["inconsistent_rate"]) == (60, 1.0, 0.0)
    # the fair judge flagged hallucinations on the losing (served) answers only: no critical regression
    h = next(m for m in out["evidence"]["critical_modes"] if m["code"] == "FAITHFULNESS.HALLUCINATION")
    assert (h["candidate"]["flagged"], h["baseline"]["flagged"], h["verdict"]) == (0, 60, "pass")
    assert GateDecision.objects.get().decision == "ship"


def test_a_judge_that_always_picks_the_first_answer_is_never_a_ship(judge, candidate_better):
    judge.responder = first_picker
    judged = run_json("shadow_judge", "--release", "cand")
    assert (judged["judged"], judged["inconsistent"], judged["candidate_wins"]) == (60, 60, 0)

    code, out = decide_under(candidate_better, "--candidate", "cand", "--baseline", "base")

    assert out["decision"] != "ship"
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    shadow = out["evidence"]["shadow"]
    assert (shadow["verdict"], shadow["inconsistent_rate"]) == ("inconclusive", 1.0)
    assert "contradicted itself when the answers were swapped on 100.0% of the pairs, above 30.0% " \
           "(max_inconsistent_rate)" in shadow["reason"]
    assert any("offline alone is never enough to ship" in r for r in out["reasons"])
