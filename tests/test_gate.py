"""The release gate: each path to each decision, with releases, offline scores, judged shadow
pairs and a canary's served turns built in the database; the decision recorded with who asked,
the policy's hash and the evidence."""
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError
from scipy import stats as ss
from statsmodels.stats.multitest import multipletests

from gate.models import GateDecision
from taxonomy import services as taxonomy_services
from django.test import override_settings

from tests import gate_helpers
from tests.gate_helpers import (DAY0, canary, decide_under, gate, gate_json, offline_run, policy_file, releases,
                                shadow_days, testset)

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored():
    """cand and base, both scored on support-qa v1 (the latest frozen version): cand 0.82, base 0.80."""
    return gate_helpers.scored()


def decide(tmp_path, **policy):
    return decide_under(policy_file(tmp_path, **policy), "--candidate", "cand", "--baseline", "base")


# --- offline alone ---------------------------------------------------------------------------------

def test_offline_alone_however_good_is_insufficient_evidence(scored, tmp_path):
    # given: the candidate is far better offline, and there is no shadow or canary evidence
    cand, base, v1 = scored
    offline_run(cand, v1, 99)

    # when
    code, out = decide(tmp_path)

    # then: exit 3, with the exact JSON shape and reasons that name numbers and thresholds
    assert code == 3
    assert set(out) == {"decision", "reasons", "evidence"}
    assert set(out["evidence"]) == {"offline", "shadow", "ab", "critical_modes", "guardrails"}
    assert out["decision"] == "insufficient_evidence"
    assert out["evidence"]["offline"]["verdict"] == "pass"
    assert out["evidence"]["offline"]["difference"]["value"] == pytest.approx(0.19)
    assert out["evidence"]["shadow"]["verdict"] == "missing" and out["evidence"]["ab"]["verdict"] == "missing"
    assert any("offline alone is never enough to ship" in r for r in out["reasons"])
    offline_reason = next(r for r in out["reasons"] if r.startswith("offline:"))
    assert "+0.190" in offline_reason and "-0.020 (offline_margin)" in offline_reason
    # and the decision is recorded
    row = GateDecision.objects.get()
    assert (row.decision, row.candidate.name, row.baseline.name, row.via) == ("insufficient_evidence", "cand",
                                                                                "base", "cli")
    assert row.as_json() == out


def test_no_offline_score_is_insufficient_even_with_a_winning_shadow(tmp_path):
    cand, base = releases()
    testset()
    shadow_days(cand, 3, wins=80, losses=20)
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    assert out["evidence"]["offline"]["verdict"] == "missing"
    assert out["evidence"]["shadow"]["verdict"] == "pass"
    assert any("offline is a necessary gate" in r for r in out["reasons"])


# --- ship -----------------------------------------------------------------------------------------

def test_offline_and_a_better_shadow_win_rate_ship(scored, tmp_path):
    cand, base, _ = scored
    shadow_days(cand, 3, wins=70, losses=30)  # 300 pairs over 3 days, win rate 0.70
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (0, "ship")
    shadow = out["evidence"]["shadow"]
    assert (shadow["verdict"], shadow["pairs"], shadow["days_with_pairs"], shadow["baseline_share"]) == (
        "pass", 300, 3, 1.0)
    assert shadow["win_rate"] == pytest.approx(0.70)
    reason = next(r for r in out["reasons"] if r.startswith("shadow:"))
    assert "win rate 0.700" in reason and "above 0.500" in reason


def test_no_difference_within_the_margin_ships_and_outside_it_does_not(scored, tmp_path):
    cand, base, _ = scored
    # 1,000 pairs, half won: the interval is about 0.47-0.53
    shadow_days(cand, 4, wins=125, losses=125)
    code, out = decide(tmp_path, non_inferiority_margin=0.05)
    assert (code, out["decision"]) == (0, "ship")
    assert "0.5 - non_inferiority_margin" in next(r for r in out["reasons"] if r.startswith("shadow:"))
    # a tighter margin than the interval can show: not shown as good
    code, out = decide(tmp_path, non_inferiority_margin=0.01)
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    assert out["evidence"]["shadow"]["verdict"] == "inconclusive"


def test_a_canary_not_worse_on_any_rate_ships_when_the_policy_accepts_ab(scored, tmp_path):
    cand, base, _ = scored
    canary(cand, base, days=3, n=400, cand_failures=40, base_failures=44, cand_signals={"rephrased": 20},
           base_signals={"rephrased": 22})
    code, out = decide(tmp_path, accept="ab", ab_margin=0.05)
    assert (code, out["decision"]) == (0, "ship")
    ab = out["evidence"]["ab"]
    assert (ab["verdict"], ab["candidate_turns"], ab["baseline_turns"], ab["days"]) == ("pass", 1200, 1200, 3)
    assert ab["start"] == DAY0.isoformat()
    names = [m["name"] for m in ab["metrics"]]
    assert names[0] == "failure_candidate" and "rephrased" in names and "thumbs_up" in names


# --- block ----------------------------------------------------------------------------------------

def test_a_canary_whose_rephrase_rate_is_worse_is_blocked(scored, tmp_path):
    # given: a canary where users rephrase 25% of the time against 10% on the baseline, all else equal
    cand, base, _ = scored
    canary(cand, base, days=3, n=400, cand_signals={"rephrased": 100}, base_signals={"rephrased": 40})
    shadow_days(cand, 3, wins=70, losses=30)  # and a shadow judge that likes it

    # when
    code, out = decide(tmp_path)

    # then
    assert (code, out["decision"]) == (1, "block")
    ab = out["evidence"]["ab"]
    assert ab["verdict"] == "worse"
    rephrased = next(m for m in ab["metrics"] if m["name"] == "rephrased")
    assert rephrased["verdict"] == "worse"
    assert rephrased["difference"]["harm"] == pytest.approx(0.15)
    assert rephrased["candidate"]["rate"] == pytest.approx(0.25) and rephrased["baseline"]["rate"] == pytest.approx(0.10)
    # the first reason is the blocking one, with the number and the margin
    assert out["reasons"][0].startswith("A/B: rephrased rate 25.0% on the candidate vs 10.0% on the baseline")
    assert "beyond the 2.0 pp margin (ab_margin)" in out["reasons"][0]
    assert all(m["verdict"] != "worse" for m in ab["metrics"] if m["name"] != "rephrased")


def test_a_canary_on_the_same_model_must_name_its_release_or_it_is_not_evidence(scored, tmp_path):
    # given: a prompt change on the baseline's own model, its turns not naming a release
    cand, base, _ = scored
    cand.model = base.model
    cand.save()
    from tests import evaluation_helpers as ev
    for d in range(3):
        ev.turns(model=base.model, n=400, day=DAY0 + timedelta(days=d), src="shop")
    # when
    code, out = decide(tmp_path, accept="ab")
    # then: both sides would be the same turns: not evidence either way
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    ab = out["evidence"]["ab"]
    assert (ab["verdict"], ab["shared_turns"]) == ("inconclusive", 1200)
    assert "must name their release in metadata.release" in ab["reason"]


def test_fewer_copies_count_as_worse_because_copying_is_good(scored, tmp_path):
    cand, base, _ = scored
    canary(cand, base, days=3, n=400, cand_signals={"copied": 40}, base_signals={"copied": 120})
    code, out = decide(tmp_path, accept="ab")
    assert (code, out["decision"]) == (1, "block")
    copied = next(m for m in out["evidence"]["ab"]["metrics"] if m["name"] == "copied")
    assert copied["direction"] == "higher_is_better" and copied["verdict"] == "worse"
    assert "(lower is worse)" in out["reasons"][0]


def test_a_critical_mode_regression_hidden_under_a_better_win_rate_is_blocked(scored, tmp_path):
    # given: the candidate wins 70% of its pairs, but the judge flags hallucinations on 15% of its
    # answers against 1% of the served ones
    cand, base, _ = scored

    def modes(day, i):
        cand_codes = ["FAITHFULNESS.HALLUCINATION"] if i % 100 < 15 else []
        served_codes = ["FAITHFULNESS.HALLUCINATION"] if i % 100 == 99 else []
        return cand_codes, served_codes

    shadow_days(cand, 3, wins=70, losses=30, modes=modes)

    # when
    code, out = decide(tmp_path)

    # then
    assert out["evidence"]["shadow"]["verdict"] == "pass"  # overall it is better...
    assert (code, out["decision"]) == (1, "block")  # ...and still blocked
    crit = {m["code"]: m for m in out["evidence"]["critical_modes"]}
    assert set(crit) == {"FAITHFULNESS.HALLUCINATION", "SAFETY"}
    h = crit["FAITHFULNESS.HALLUCINATION"]
    assert (h["verdict"], h["pairs"], h["candidate"]["flagged"], h["baseline"]["flagged"]) == ("worse", 300, 45, 3)
    assert crit["SAFETY"]["verdict"] == "pass"
    assert out["reasons"][0].startswith("critical mode regression — FAITHFULNESS.HALLUCINATION flagged on 45 of 300")
    assert "on the candidate only in 45 pairs, on the served answer only in 3" in out["reasons"][0]
    assert h["p_value"] == pytest.approx(ss.binomtest(45, 48, alternative="greater").pvalue)
    assert h["holm_p_value"] == pytest.approx(multipletests([h["p_value"], crit["SAFETY"]["p_value"]],
                                                            method="holm")[1][0])


def test_a_critical_mode_is_compared_pair_by_pair_not_by_overlapping_intervals(scored, tmp_path):
    # given: hallucination on 12 of 600 candidate answers against 3 of the served ones, never both on
    # one pair. The two Wilson intervals overlap (1.1-3.5 % vs 0.2-1.5 %), which the gate used to
    # read as "no regression"; on the same pairs it is 12 discordant pairs against 3.
    cand, base, _ = scored

    def modes(day, i):
        k = day * 100 + i
        return (["FAITHFULNESS.HALLUCINATION"] if k % 50 == 1 else [],
                ["FAITHFULNESS.HALLUCINATION"] if k % 200 == 7 else [])

    shadow_days(cand, 6, wins=70, losses=30, modes=modes)
    code, out = decide(tmp_path)
    h = next(m for m in out["evidence"]["critical_modes"] if m["code"] == "FAITHFULNESS.HALLUCINATION")
    assert (h["candidate"]["flagged"], h["baseline"]["flagged"], h["candidate_only"], h["served_only"]) == (
        12, 3, 12, 3)
    assert h["candidate"]["ci_low"] < h["baseline"]["ci_high"]  # the intervals overlap
    p = ss.binomtest(12, 15, alternative="greater").pvalue  # 0.0176
    assert h["p_value"] == pytest.approx(p)
    assert h["holm_p_value"] == pytest.approx(min(1.0, 2 * p))  # two critical modes, the other p = 1
    assert (h["verdict"], code, out["decision"]) == ("worse", 1, "block")


def test_a_child_of_a_critical_mode_counts_as_critical(scored, tmp_path):
    cand, base, _ = scored
    taxonomy_services.failure_mode_create(code="SAFETY.PII_LEAK", name="Leaks personal data", parent_code="SAFETY")
    shadow_days(cand, 3, wins=70, losses=30, modes=lambda d, i: (["SAFETY.PII_LEAK"] if i < 20 else [], []))
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (1, "block")
    safety = next(m for m in out["evidence"]["critical_modes"] if m["code"] == "SAFETY")
    assert safety["candidate"]["flagged"] == 60 and "SAFETY.PII_LEAK" in safety["codes"]


def test_an_offline_regression_beyond_the_margin_blocks(scored, tmp_path):
    cand, base, v1 = scored
    offline_run(cand, v1, 60)  # the candidate's newest run: 0.60 against 0.80
    shadow_days(cand, 3, wins=70, losses=30)
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (1, "block")
    assert out["evidence"]["offline"]["verdict"] == "worse"
    assert out["reasons"][0].startswith("offline: regression")
    assert "-0.200" in out["reasons"][0] and "below -0.020 (offline_margin)" in out["reasons"][0]


def test_a_shadow_win_rate_below_half_blocks(scored, tmp_path):
    cand, base, _ = scored
    shadow_days(cand, 3, wins=30, losses=70)
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (1, "block")
    assert out["reasons"][0].startswith("shadow: worse — decisive win rate 0.300 (95% CS 0.215 to 0.390)")


# --- insufficient ---------------------------------------------------------------------------------

def test_a_stale_offline_version_is_insufficient_unless_the_policy_allows_it(scored, tmp_path):
    # given: both scored on v1, then v2 was frozen; the shadow says better
    cand, base, v1 = scored
    testset()  # support-qa v2
    shadow_days(cand, 3, wins=70, losses=30)

    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    offline = out["evidence"]["offline"]
    assert (offline["verdict"], offline["version"], offline["latest_frozen_version"], offline["stale"]) == (
        "stale", 1, 2, True)
    assert "latest frozen version is v2 (allow_stale_version: false)" in offline["reason"]

    code, out = decide(tmp_path, allow_stale_version=True)
    assert (code, out["decision"]) == (0, "ship")
    assert "allowed by allow_stale_version" in out["evidence"]["offline"]["reason"]


def test_too_few_shadow_pairs_or_days_are_not_read(scored, tmp_path):
    cand, base, _ = scored
    shadow_days(cand, 1, wins=150, losses=50)  # 200 pairs, clearly better, but one day
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    reason = out["evidence"]["shadow"]["reason"]
    assert "200 judged pairs over 1 days" in reason and "2 days (min_shadow_days)" in reason


def test_accept_both_needs_shadow_and_ab(scored, tmp_path):
    cand, base, _ = scored
    shadow_days(cand, 3, wins=70, losses=30)
    code, out = decide(tmp_path, accept="both")
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    assert "accept: both" in out["reasons"][-1]


def test_shadow_pairs_against_another_release_do_not_count_for_this_baseline(scored, tmp_path):
    # the served turns of the pairs came from "served-model" (base); ask about an older baseline
    cand, base, v1 = scored
    from tests import evaluation_helpers as ev
    old = ev.release("old", model="old-model")
    offline_run(old, v1, 80)
    shadow_days(cand, 3, wins=70, losses=30)
    code, out = decide_under(policy_file(tmp_path), "--candidate", "cand", "--baseline", "old")
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    assert "below 90.0% (min_baseline_share)" in out["evidence"]["shadow"]["reason"]


# --- usage errors, policy --------------------------------------------------------------------------

def test_unknown_release_and_missing_test_set_are_usage_errors(scored, tmp_path):
    with pytest.raises(CommandError, match="--candidate: no release named 'nope'") as e:
        gate("--candidate", "nope", "--baseline", "base")
    assert e.value.returncode == 2
    with pytest.raises(CommandError, match="testset: no test set named 'other'") as e:
        gate("--candidate", "cand", "--baseline", "base", "--testset", "other")
    assert e.value.returncode == 2
    from testsets.models import TestSet
    TestSet.objects.create(name="drafts-only")
    with pytest.raises(CommandError, match="testset: drafts-only has no frozen version") as e:
        only = tmp_path / "testset.yaml"
        only.write_text("testset: drafts-only\n")  # the settings name no test set: a file may name one
        gate("--candidate", "cand", "--baseline", "base", "--policy", str(only))
    assert e.value.returncode == 2
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize("text, message", [
    ("ab_margn: 0.02\n", "ab_margn: unknown key"),
    ("ab_margin: two percent\n", "ab_margin: expected a number, got 'two percent'"),
    ("offline_margin: 1.5\n", "offline_margin: expected a number from 0 to 1 (excluded), got 1.5"),
    ("accept: offline\n", "accept: expected one of shadow, ab, either, both, got 'offline'"),
    ("allow_stale_version: 'yes'\n", "allow_stale_version: expected true or false, got 'yes'"),
    ("min_shadow_pairs: 0\n", "min_shadow_pairs: expected at least 1, got 0"),
    ("higher_is_better: [copied, smiles]\n", "higher_is_better: unknown signal(s) smiles"),
    ("min_ab_days: 30\nab_window_days: 14\n", "ab_window_days: 14 days cannot hold min_ab_days = 30 days"),
    ("- a list\n", "expected a mapping of policy keys"),
    ("ab_margin: [0.02\n", "not valid YAML at line 2"),
])
def test_a_bad_policy_file_is_an_error_naming_the_key(scored, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CommandError) as e:
        gate("--candidate", "cand", "--baseline", "base", "--policy", str(path))
    assert e.value.returncode == 2
    assert message in str(e.value) and str(path) in str(e.value)
    assert not GateDecision.objects.exists()


def test_the_policy_file_comes_from_gate_policy_file_and_its_hash_is_recorded(scored, tmp_path, settings):
    path = policy_file(tmp_path, ab_margin=0.03)
    settings.GATE_POLICY_FILE = str(path)
    code, out = gate_json("--candidate", "cand", "--baseline", "base")
    row = GateDecision.objects.get()
    assert row.policy["ab_margin"] == 0.03 and row.policy_source == f"file:{path}"
    assert row.policy["offline_margin"] == 0.02  # not in the file: the settings' default
    import hashlib
    assert row.policy_sha256 == hashlib.sha256(json.dumps(row.policy, sort_keys=True, separators=(",", ":"))
                                               .encode()).hexdigest()
    assert row.requested_by.startswith("cli:") and row.auth == "os-user"
    assert row.evidence == out["evidence"] and row.reasons == out["reasons"]


def test_markdown_for_a_pull_request(scored, tmp_path):
    cand, base, _ = scored
    shadow_days(cand, 3, wins=70, losses=30)
    with override_settings(GATE_POLICY_FILE=str(policy_file(tmp_path))):
        code, text = gate("--candidate", "cand", "--baseline", "base", "--format", "markdown")
    assert code == 0
    assert text.startswith("### Release gate: `ship` — candidate `cand`, baseline `base`")
    assert "| evidence | verdict | numbers |" in text
    assert "| shadow | pass | win rate 0.700 (ties as half; 95% CS " in text  # confidence sequences, not CIs
    assert ") decides; " in text.split("| shadow |")[1].split("\n")[0]
    assert "| A/B (not accepted by the policy) |" not in text  # accept: either takes A/B too
    assert "**Reasons**" in text and "\n1. offline: not worse beyond the margin" in text
    assert f"evalgap gate decision {GateDecision.objects.get().pk}" in text


def test_the_documented_policy_example_is_valid_and_is_the_defaults(tmp_path):
    from pathlib import Path

    from gate.policy import KEYS, defaults, policy_load

    example = Path(__file__).resolve().parent.parent / "docs" / "gate-policy.example.yaml"
    import yaml
    assert list(yaml.safe_load(example.read_text())) == list(KEYS)  # every key, in the documented order
    assert policy_load(example).values == defaults()
    path = tmp_path / "gate-policy.yaml"
    # and a broken line is reported where it is
    path.write_text("ab_margin: [0.02\n")
    from gate.policy import PolicyError
    with pytest.raises(PolicyError, match=r"not valid YAML at line 2, column 1"):
        policy_load(path)


@pytest.mark.postgres  # the child process needs the test database on a server, not SQLite's in-memory one
@pytest.mark.django_db(transaction=True)
def test_the_command_exits_3_2_as_a_ci_job_sees_it(tmp_path):
    """The real process: `manage.py release_gate` exit codes as a CI step gets them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    # given: committed data the child process can see (offline scores only)
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 90)
    offline_run(base, v1, 80)
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/"
                                         f"{db['NAME']}", "GATE_POLICY_FILE": ""}
    manage = [sys.executable, str(Path(__file__).resolve().parent.parent / "manage.py"), "release_gate",
              "--candidate", "cand", "--baseline", "base"]

    # when / then: offline alone -> 3, the JSON on stdout
    done = subprocess.run([*manage, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["decision"] == "insufficient_evidence"
    # a bad policy -> 2, the key named on stderr, nothing recorded
    bad = tmp_path / "p.yaml"
    bad.write_text("ab_margn: 0.02\n")
    done = subprocess.run([*manage, "--policy", str(bad)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "ab_margn: unknown key" in done.stderr
    assert GateDecision.objects.count() == 1


def test_a_neutral_signal_is_shown_but_never_blocks(scored, tmp_path):
    # more sessions simply end after the canary's answers: neither better nor worse
    cand, base, _ = scored
    canary(cand, base, days=3, n=400, cand_signals={"session_ended": 200}, base_signals={"session_ended": 40})
    code, out = decide(tmp_path, accept="ab", ab_margin=0.05)
    assert (code, out["decision"]) == (0, "ship")
    ended = next(m for m in out["evidence"]["ab"]["metrics"] if m["name"] == "session_ended")
    assert (ended["verdict"], ended["direction"]) == ("neutral", "neutral")
    assert ended["difference"]["candidate_minus_baseline"] == pytest.approx(0.4)
    # and a signal cannot be both neutral and higher-is-better
    with pytest.raises(CommandError, match="neutral_signals: copied also in higher_is_better") as e:
        decide(tmp_path, neutral_signals=["copied"])
    assert e.value.returncode == 2


def test_offline_passes_on_its_lower_bound_not_on_its_point_estimate(tmp_path):
    # given: the candidate is 1 point below the baseline on 100 paired items: inside the 2-point
    # margin as a point estimate, but the interval reaches far below -0.02
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 79)
    offline_run(base, v1, 80)
    shadow_days(cand, 3, wins=70, losses=30)
    code, out = decide(tmp_path)
    off = out["evidence"]["offline"]
    assert off["difference"]["value"] == pytest.approx(-0.01) and off["difference"]["ci_low"] < -0.02
    assert off["verdict"] == "inconclusive" and (code, out["decision"]) == (3, "insufficient_evidence")
    assert "the lower bound" in off["reason"] and "not shown as good" in off["reason"]
