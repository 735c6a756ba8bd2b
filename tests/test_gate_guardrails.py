"""Guardrails on latency and cost: candidate vs served on the shadow window's pairs, judged against
the policy's largest ratios. A breach blocks with the numbers; a cheaper candidate at equal quality
ships and says so first; the numbers come with n and intervals."""
import numpy as np
import pytest

from gate.guardrails import paired_ratio, quantile_interval
from gate.models import GateDecision
from tests import gate_helpers
from tests.gate_helpers import decide_under, pair_costs, policy_file, shadow_days

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored():
    return gate_helpers.scored(81, 80)[:2]


def decide(tmp_path, **policy):
    return decide_under(policy_file(tmp_path, **policy), "--candidate", "cand", "--baseline", "base")


def metric(out, name):
    return next(m for m in out["evidence"]["guardrails"]["metrics"] if m["name"] == name)


def test_a_candidate_twice_as_slow_at_p95_is_blocked_whatever_its_win_rate(scored, tmp_path):
    # given: a better candidate (70 % wins) whose answers take twice as long
    cand, _ = scored
    shadow_days(cand, 3, wins=70, losses=30)
    pair_costs(cand, cand_latency=2000, served_latency=1000, cand_cost=0.002, served_cost=0.002)

    # when
    code, out = decide(tmp_path, max_latency_p95_ratio=1.5)

    # then: blocked, the breach first, with the numbers, n and the interval
    assert (code, out["decision"]) == (1, "block")
    p95 = metric(out, "latency_p95")
    assert p95["verdict"] == "worse" and p95["pairs"] == 300 and p95["limit"] == 1.5
    assert p95["ratio"] == pytest.approx(2.0) and p95["ci_low"] > 1.5
    assert p95["candidate"]["n"] == 300 and p95["candidate"]["ci_low"] <= p95["candidate"]["value"]
    assert out["reasons"][0].startswith("guardrail breach — p95 latency 2400 ms on the candidate vs 1200 ms served "
                                        "over 300 pairs, ratio 2.00")
    assert "above 1.50 (max_latency_p95_ratio)" in out["reasons"][0]
    assert metric(out, "cost_mean")["verdict"] == "pass", metric(out, "cost_mean")["reason"]
    assert GateDecision.objects.get().decision == "block"
    # the same candidate under a limit it meets ships
    code, out = decide(tmp_path, max_latency_p95_ratio=2.5)
    assert (code, out["decision"]) == (0, "ship")


def test_a_cheaper_candidate_at_equal_quality_ships_with_that_reason_first(scored, tmp_path):
    # given: a candidate no better and no worse (50:50 over 1,200 pairs: the anytime-valid interval
    # needs about a thousand to show 50:50 within the 0.05 margin) at 40 % of the cost per answer
    cand, _ = scored
    shadow_days(cand, 12, wins=50, losses=50)
    pair_costs(cand, cand_latency=900, served_latency=1000, cand_cost=0.0004, served_cost=0.001)

    # when
    code, out = decide(tmp_path)

    # then
    assert (code, out["decision"]) == (0, "ship")
    assert out["evidence"]["shadow"]["verdict"] == "pass"
    cost = metric(out, "cost_mean")
    assert cost["ratio"] == pytest.approx(0.4) and cost["ci_high"] < 1 and cost["pairs"] == 1200
    assert out["reasons"][0].startswith("ship: cheaper at equal quality — mean cost per answer $0.00040 vs "
                                        "$0.00100 served over 1200 pairs, ratio 0.40")
    assert "saving 60% per answer" in out["reasons"][0]


def test_without_latency_or_cost_on_the_pairs_the_guardrails_say_so_and_do_not_hold_the_decision(scored, tmp_path):
    cand, _ = scored
    shadow_days(cand, 3, wins=70, losses=30)
    code, out = decide(tmp_path)
    assert (code, out["decision"]) == (0, "ship")
    cost = metric(out, "cost_mean")
    assert cost["verdict"] == "missing" and cost["ratio"] is None
    assert "log the served turn's metadata.cost_usd" in cost["reason"]
    assert not any(r.startswith("ship: cheaper") for r in out["reasons"])
    # recorded on only 10 pairs: said, no ratio invented, and the decision is not held on it
    from shadow.models import ShadowPair
    ShadowPair.objects.filter(pk__in=list(ShadowPair.objects.filter(release=cand).values_list("pk", flat=True)[:10])) \
        .update(cost_usd=0.01)
    for p in ShadowPair.objects.filter(release=cand).exclude(cost_usd=None).select_related("turn"):
        p.turn.metadata = {"cost_usd": 0.001}
        p.turn.save(update_fields=["metadata"])
    code, out = decide(tmp_path)
    cost = metric(out, "cost_mean")
    assert (cost["verdict"], cost["pairs"], cost["ratio"]) == ("insufficient_data", 10, None)
    assert "insufficient data for a ratio (fewer than 20 pairs" in cost["reason"]
    assert (code, out["decision"]) == (0, "ship")


def test_an_estimate_above_the_limit_but_not_shown_holds_the_ship(scored, tmp_path):
    # 1.6x the cost, limit 1.5: above it, but over 25 pairs with this spread the interval reaches below.
    # The win rate is shown over 250 pairs (200:50), the cost recorded on 25 of them: the guardrail holds.
    cand, _ = scored
    shadow_days(cand, 1, wins=200, losses=50)
    from shadow.models import ShadowPair
    rng = np.random.default_rng(3)
    pairs = list(ShadowPair.objects.filter(release=cand).select_related("turn").order_by("id")[:25])
    for p in pairs:
        p.cost_usd = round(float(rng.uniform(0.0002, 0.003)), 6)
        p.turn.metadata = {"cost_usd": round(float(rng.uniform(0.0002, 0.003)) / 1.6, 6)}
        p.turn.save(update_fields=["metadata"])
    ShadowPair.objects.bulk_update(pairs, ["cost_usd"])
    code, out = decide(tmp_path, min_shadow_days=1)
    assert out["evidence"]["shadow"]["verdict"] == "pass"
    cost = metric(out, "cost_mean")
    assert cost["ratio"] > 1.5 and cost["ci_low"] < 1.5
    assert cost["verdict"] == "inconclusive"
    assert (code, out["decision"]) == (3, "insufficient_evidence")
    assert out["reasons"][0] == cost["reason"] and "not shown within the limit" in cost["reason"]


def test_the_quantile_interval_is_the_order_statistics_and_refuses_too_few_values():
    x = np.arange(1, 1001, dtype=float)
    est = quantile_interval(x, 0.95)
    assert est.value == pytest.approx(np.quantile(x, 0.95))
    # binomial(1000, 0.95) ranks 936..963 hold the p95 with >= 95 % probability
    assert (est.lo, est.hi) == (936.0, 964.0)
    assert quantile_interval(np.arange(30.0), 0.95) is None  # 30 values cannot bound a p95 from above


def test_the_ratio_interval_covers_the_true_ratio_in_repeated_samples():
    # candidate latency = 1.3 x served, lognormal, 300 pairs: the 95 % interval of the p95 ratio
    rng = np.random.default_rng(11)
    covered = 0
    for k in range(60):
        served = rng.lognormal(7, 0.5, 300)
        cand = 1.3 * rng.lognormal(7, 0.5, 300)
        est = paired_ratio(cand, served, np.arange(300), 0.95, resamples=400, seed=k)
        covered += est.lo <= 1.3 <= est.hi
    assert covered >= 52  # ~95 % of 60, with room for Monte Carlo error (binomial 2.5 % tail: 53)
