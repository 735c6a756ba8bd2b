"""The server owns the gate's policy: GATE_POLICY_FILE (or the settings) is the floor, and a
`--policy` file or a request's `policy` may only tighten it. The table of what "tighter" means is
checked for every key, both ways."""
import pytest
from django.core.management import CommandError

from gate.models import GateDecision
from gate.policy import KEYS, TIGHTER, PolicyLooser, defaults, looser_keys, policy_load
from tests.gate_helpers import gate, gate_json, offline_run, policy_file, releases, shadow_days, testset

# key -> (floor, a tighter value, a looser value); None where no value can be tighter (fixed keys).
CASES = {
    "testset": ("support-qa", None, "easy-set"),
    "offline_margin": (0.02, 0.01, 0.05),
    "allow_stale_version": (False, None, True),
    "accept": ("either", "both", None),
    "non_inferiority_margin": (0.05, 0.02, 0.1),
    "min_shadow_pairs": (200, 400, 100),
    "min_shadow_days": (2, 3, 1),
    "shadow_window_days": (7, None, 14),
    "max_inconsistent_rate": (0.3, 0.1, 0.5),
    "min_baseline_share": (0.9, 0.95, 0.5),
    "ab_margin": (0.02, 0.01, 0.05),
    "min_ab_turns": (300, 500, 100),
    "min_ab_days": (2, 3, 1),
    "ab_window_days": (14, None, 30),
    "higher_is_better": (["copied", "thumbs_up"], None, ["copied"]),
    "neutral_signals": (["session_ended"], None, []),
    "max_latency_p50_ratio": (1.2, 1.1, None),
    "max_latency_p95_ratio": (1.5, 1.2, 2.0),
    "max_cost_ratio": (1.5, 1.0, None),
    "shadow_decides_on": ("auto", None, "judge"),
    "min_audited_pairs": (100, None, 50),
    "ab_expected_share": (0.5, None, 0.3),
    "ab_srm_alpha": (0.001, 0.01, 0.0001),
}


def test_every_policy_key_says_what_tighter_means():
    # a key added to the policy without a rule would be loosenable by any caller
    assert set(TIGHTER) == set(KEYS) == set(CASES)


@pytest.mark.parametrize("key", list(CASES))
def test_each_key_refuses_a_looser_value_and_takes_its_own_and_a_tighter_one(key):
    floor, tighter, looser = CASES[key]
    values = {**{k: None for k in KEYS}, key: floor}
    assert looser_keys(values, {key: floor}) == []
    if tighter is not None:
        assert looser_keys(values, {key: tighter}) == []
    if looser is not None:
        assert looser_keys(values, {key: looser}) == [key]


def test_accept_either_is_the_loosest_and_both_the_tightest():
    rule = TIGHTER["accept"][0]
    assert all(rule("either", v) for v in ("either", "shadow", "ab", "both"))
    assert (rule("shadow", "ab"), rule("ab", "shadow"), rule("shadow", "both"), rule("both", "shadow")) == \
        (False, False, True, False)
    # no limit is looser than any limit; an open test set may be named
    assert TIGHTER["max_cost_ratio"][0](None, 3.0) and not TIGHTER["max_cost_ratio"][0](1.0, None)
    assert TIGHTER["testset"][0](None, "support-qa")


@pytest.mark.django_db
def test_a_looser_policy_file_exits_2_naming_the_key_and_a_tighter_one_decides(tmp_path, settings):
    # given: the server's policy file, and evidence enough for its horizon
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, 82)
    offline_run(base, v1, 80)
    shadow_days(cand, 3, wins=70, losses=30)
    floor = policy_file(tmp_path / "..", min_shadow_pairs=200)
    settings.GATE_POLICY_FILE = str(floor)
    (tmp_path / "pr").mkdir()

    # when: the pull request's own file asks for fewer pairs than the server's floor
    lax = policy_file(tmp_path / "pr", min_shadow_pairs=50, offline_margin=0.1)
    with pytest.raises(CommandError) as e:
        gate("--candidate", "cand", "--baseline", "base", "--policy", str(lax))

    # then: exit 2, the first looser key named with the floor's value, the others listed; nothing recorded
    assert e.value.returncode == 2
    assert f"policy file {lax}: offline_margin: 0.1 is looser than the server's policy (0.02, file:{floor})" \
        in str(e.value)
    assert "(also looser: min_shadow_pairs)" in str(e.value)
    assert not GateDecision.objects.exists()

    # a tighter file is applied and recorded as the server's policy tightened by it
    strict = policy_file(tmp_path / "pr", min_shadow_pairs=400)
    code, out = gate_json("--candidate", "cand", "--baseline", "base", "--policy", str(strict))
    assert (code, out["decision"]) == (3, "insufficient_evidence")  # 300 pairs < 400
    row = GateDecision.objects.get()
    assert row.policy["min_shadow_pairs"] == 400
    assert row.policy_source == f"file:{floor} + file:{strict}: min_shadow_pairs"
    # and --testset cannot swap the test set the server's policy names
    named = policy_file(tmp_path / "..", min_shadow_pairs=200, testset="support-qa")
    settings.GATE_POLICY_FILE = str(named)
    with pytest.raises(CommandError, match="testset: 'other' is not the policy's test set") as e:
        gate("--candidate", "cand", "--baseline", "base", "--testset", "other")
    assert e.value.returncode == 2


@pytest.mark.django_db
def test_without_a_server_file_the_settings_are_the_floor(tmp_path, settings):
    settings.GATE_POLICY_FILE = ""
    path = policy_file(tmp_path)  # the tests' small horizons: looser than the settings' 1,000 pairs
    with pytest.raises(PolicyLooser, match=r"min_shadow_pairs: 200 is looser than the server's policy \(1000, "
                                           r"settings\)"):
        policy_load(path)
    same = tmp_path / "same.yaml"
    same.write_text("min_shadow_pairs: 1000\n")
    assert policy_load(same).values == defaults()
