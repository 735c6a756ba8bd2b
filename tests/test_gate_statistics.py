"""The ship decision's statistics with the real commands (shadow_judge, release_gate) and the real
openai client against a local OpenAI-compatible judge: a judge that prefers longer answers cannot
ship a worse-but-longer candidate; the report and the gate show one interval; an A/B split off the
declared share is not read; A/B intervals are clustered by user."""
import pytest
from django.test import override_settings

from shadow import selectors as shadow
from shadow.models import ShadowPair
from tests.gate_helpers import DAY0, canary, decide_under, offline_run, policy_file, releases, shadow_days, testset
from tests.shadow_helpers import GOOD, answers_in, judgement, run_json
from tests.test_gate_e2e import judge  # noqa: F401  (the local judge server fixture)

pytestmark = pytest.mark.django_db


def longer_loving_judge(body: dict) -> str:
    """Picks the longer answer when it is more than 1.8 times the other, else the one marked GOOD
    (the same verdict in both orders: it is consistent, only biased)."""
    a = answers_in(body)
    la, lb = len(a.get("A", "")), len(a.get("B", ""))
    if max(la, lb) > 1.8 * min(la, lb):
        return judgement("A" if la > lb else "B", "the longer answer is more complete")
    good_a, good_b = GOOD in a.get("A", ""), GOOD in a.get("B", "")
    return judgement("A" if good_a and not good_b else "B" if good_b and not good_a else "tie", "the marked one")


@pytest.fixture
def worse_but_longer(tmp_path):
    """300 unjudged pairs over 3 days: the candidate's answer is the better one on 45 % of them and
    1.1 to 3 times as long as the served one, always."""
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 90)
    offline_run(base, v1, 80)
    shadow_days(cand, 3, wins=100, losses=0)
    for i, pair in enumerate(ShadowPair.objects.filter(release=cand).select_related("turn").order_by("id")):
        served_len = 60 + (i % 7) * 20
        cand_len = int(served_len * (1.1 + 0.2 * (i % 10)))
        good = (i * 37) % 100 < 45  # the candidate is better on 45 % of the pairs, spread over lengths
        served = ("s" * (served_len - len(GOOD))) + ("" if good else GOOD)
        pair.turn.response = served if not good else "s" * served_len
        pair.turn.save(update_fields=["response"])
        pair.candidate_answer = ("c" * (cand_len - len(GOOD)) + GOOD) if good else "c" * cand_len
        pair.outcome = ""
        pair.save(update_fields=["candidate_answer", "outcome"])
    return policy_file(tmp_path, min_shadow_pairs=300, min_shadow_days=3)


def test_a_judge_that_prefers_longer_answers_never_ships_a_worse_but_longer_candidate(judge, worse_but_longer):
    judge.responder = longer_loving_judge
    judged = run_json("shadow_judge", "--release", "cand")
    assert judged["judged"] == 300 and judged["inconsistent"] == 0
    assert judged["candidate_wins"] > 200  # the judge's raw verdicts: a clear "better"

    code, out = decide_under(worse_but_longer, "--candidate", "cand", "--baseline", "base")

    assert out["decision"] != "ship" and (code, out["decision"]) == (3, "insufficient_evidence")
    sh = out["evidence"]["shadow"]
    assert sh["judge_decisive"]["ci_low"] > 0.5  # raw: better, with an anytime-valid interval
    assert sh["length_controlled"]["ci_low"] < 0.45  # at equal lengths: not shown as good
    assert sh["verdict"] == "inconclusive" and "the win rests on longer answers" in sh["reason"]
    # the report shows the same intervals the gate decided on
    report = shadow.shadow_report("cand", 14)
    assert report["intervals"]["decisive_win_rate"] == {"value": sh["judge_decisive"]["value"],
                                                        "ci_low": sh["judge_decisive"]["ci_low"],
                                                        "ci_high": sh["judge_decisive"]["ci_high"]}
    assert report["intervals"]["length_controlled_win_rate"]["ci_low"] == sh["length_controlled"]["ci_low"]
    with override_settings(SHADOW_MIN_PAIRS=300, SHADOW_MIN_DAYS=3):
        report = shadow.shadow_report("cand", 14)
    assert report["decision"] == "no_difference" and "rests on longer answers" in report["decision_reason"]


def test_the_report_and_the_gate_show_one_interval_for_the_same_pairs(tmp_path):
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 82)
    offline_run(base, v1, 80)
    shadow_days(cand, 3, wins=60, losses=30, ties=10)
    code, out = decide_under(policy_file(tmp_path), "--candidate", "cand", "--baseline", "base")
    report = run_json("shadow_report", "--release", "cand", "--days", "14")
    full = shadow.shadow_report("cand", 14)
    sh = out["evidence"]["shadow"]
    assert (sh["win_rate"], sh["ci_low"], sh["ci_high"]) == (report["win_rate"], report["ci_low"], report["ci_high"])
    assert sh["decision_interval"] == full["intervals"]["decisive_win_rate"]
    assert sh["decisive_win_rate"] == report["decisive_win_rate"] == pytest.approx(60 / 90)
    assert (code, out["decision"]) == (0, "ship")
    assert "no audited pair has a human pick yet: the judge's bias is unmeasured" in sh["reason"]


def test_an_ab_split_off_the_declared_share_is_not_read(tmp_path):
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 82)
    offline_run(base, v1, 80)
    # the canary was declared 50 %, but it got 400 conversations' worth of turns a day against 600
    canary(cand, base, days=3, n=600, base_n=900)
    code, out = decide_under(policy_file(tmp_path, accept="ab"), "--candidate", "cand", "--baseline", "base")
    ab = out["evidence"]["ab"]
    assert (ab["candidate_units"], ab["baseline_units"]) == (600, 900)
    assert ab["srm"]["observed_share"] == pytest.approx(0.4) and ab["srm"]["p_value"] < 1e-9
    assert ab["verdict"] == "inconclusive" and "sample-ratio mismatch" in ab["reason"]
    assert "(ab_expected_share)" in ab["reason"]
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    # declared as 40 % it is read, and the same turns pass
    code, out = decide_under(policy_file(tmp_path, accept="ab", ab_expected_share=0.4),
                             "--candidate", "cand", "--baseline", "base")
    assert out["evidence"]["ab"]["verdict"] == "pass" and (code, out["decision"]) == (0, "ship")


def test_ab_intervals_are_clustered_by_user_when_user_id_is_logged(tmp_path):
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 82)
    offline_run(base, v1, 80)
    canary(cand, base, days=3, n=600, cand_failures=60, base_failures=60, users=30)
    code, out = decide_under(policy_file(tmp_path, accept="ab"), "--candidate", "cand", "--baseline", "base")
    ab = out["evidence"]["ab"]
    assert ab["unit"] == "user" and (ab["candidate_units"], ab["baseline_units"]) == (30, 30)
    by_user = next(m for m in ab["metrics"] if m["name"] == "failure_candidate")["difference"]
    # the same turns in conversations of 3 without user ids: many more units, a narrower interval
    cand2, base2 = (type(cand).objects.create(name="cand2", model="cand2-model"),
                    type(base).objects.create(name="base2", model="base2-model"))
    canary(cand2, base2, days=3, n=600, cand_failures=60, base_failures=60, start=DAY0)
    code, out2 = decide_under(policy_file(tmp_path, accept="ab"), "--candidate", "cand2", "--baseline", "base2")
    by_session = next(m for m in out2["evidence"]["ab"]["metrics"] if m["name"] == "failure_candidate")["difference"]
    assert out2["evidence"]["ab"]["unit"] == "session"
    assert by_user["ci_high"] - by_user["ci_low"] > by_session["ci_high"] - by_session["ci_low"]


def _people_pick(audit, says_candidate_better) -> int:
    """People's picks on the audit's tasks, as labelling stores them after a pull (Label Studio is
    not the subject here): 'a'/'b' on the side each task showed the candidate."""
    from labelling.models import LabelStudioProject, PairwiseAnnotation, PairwiseTask

    project = LabelStudioProject.objects.create(title=audit.project_title, kind="pairwise", ls_project_id=991)
    n = 0
    for k, item in enumerate(audit.items.select_related("pair").order_by("id")):
        task = PairwiseTask.objects.create(project=project, key=item.task_key, ls_task_id=5000 + k)
        cand_better = says_candidate_better(item.pair, k)
        pick = item.candidate_side if cand_better else ("b" if item.candidate_side == "a" else "a")
        PairwiseAnnotation.objects.create(ls_annotation_id=7000 + k, task=task, annotator="ann@x", pick=pick)
        n += 1
    return n


def test_the_human_audit_corrects_a_judge_that_favours_the_candidate(tmp_path):
    from shadow.services.audit import audit_create

    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 82)
    offline_run(base, v1, 80)
    shadow_days(cand, 4, wins=70, losses=30)  # the judge: 70 % for the candidate
    audit = audit_create(month="2026-10", release="cand", sample=160, seed=3)
    # people: the served answer was better on every pair the judge lost, and on 3 in 4 it won
    picked = _people_pick(audit, lambda pair, k: pair.outcome == "candidate_win" and k % 4 == 0)
    assert picked == 160

    # judge-only while the audit holds fewer than min_audited_pairs: it ships, its bias named
    code, out = decide_under(policy_file(tmp_path, min_audited_pairs=500),
                             "--candidate", "cand", "--baseline", "base")
    sh = out["evidence"]["shadow"]
    assert (sh["decides_on"], sh["audited_pairs"]) == ("judge", 160)
    bias = sh["judge_bias"]
    assert bias["difference"] > 0.3 and (code, out["decision"]) == (0, "ship")
    assert "judge-only: the audit holds 160 human-picked pairs (min_audited_pairs 500)" in sh["reason"]
    assert f"(judge bias {bias['difference']:+.3f})" in sh["reason"]
    # calibrated from 100 audited pairs on: the people's rate decides, and it is not a ship
    code, out = decide_under(policy_file(tmp_path, min_audited_pairs=100),
                             "--candidate", "cand", "--baseline", "base")
    sh = out["evidence"]["shadow"]
    assert sh["decides_on"] == "calibrated" and sh["decision_interval"] == sh["calibrated_decisive"]
    assert sh["judge_decisive"]["ci_low"] > 0.5 > sh["calibrated_decisive"]["ci_high"]
    assert sh["verdict"] == "worse" and (code, out["decision"]) == (1, "block")
    assert sh["reason"].startswith("shadow: worse — human-calibrated decisive win rate")
    # as of the last shadow day, before the people picked (on the 10th): the judge decided then
    from datetime import datetime, timezone

    from labelling.models import PairwiseAnnotation
    PairwiseAnnotation.objects.update(ls_updated_at=datetime(2026, 10, 10, 12, tzinfo=timezone.utc))
    code, out = decide_under(policy_file(tmp_path, min_audited_pairs=100),
                             "--candidate", "cand", "--baseline", "base", "--as-of", "2026-10-04")
    sh = out["evidence"]["shadow"]
    assert (sh["as_of"], sh["pairs"], sh["audited_pairs"], sh["decides_on"]) == ("2026-10-04", 400, 0, "judge")
