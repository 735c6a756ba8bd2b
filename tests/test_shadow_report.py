"""The shadow report's numbers and decision, from judged pairs built in the database."""
import io
from datetime import date, timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core import stats
from shadow import selectors
from tests.shadow_helpers import make_pairs, release, run_json

pytestmark = pytest.mark.django_db
START = date(2026, 9, 1)
W, L, T, INC = "candidate_win", "served_win", "tie", "inconsistent"


def week(per_day: list[str], days: int = 7) -> dict:
    return {START + timedelta(days=d): list(per_day) for d in range(days)}


def test_report_keys_are_exactly_the_issues():
    rel = release()
    make_pairs(rel, week([W, L, T, INC]))
    line = run_json("shadow_report", "--release", "cand-1")
    assert list(line) == ["release", "pairs", "win_rate", "ci_low", "ci_high", "decisive_win_rate", "tie_rate",
                          "inconsistent_rate", "length_controlled_win_rate", "decision", "by_failure_mode"]
    assert line["pairs"] == 28 and line["win_rate"] == 0.5 and line["tie_rate"] == 0.25
    assert line["inconsistent_rate"] == 0.25 and line["decisive_win_rate"] == 0.5


def test_better_needs_the_interval_above_half_and_enough_pairs_over_enough_days():
    rel = release()
    # 150 a day for 7 days, 65 % wins, 25 % losses, 10 % ties: one pair per conversation (Wilson)
    make_pairs(rel, week([W] * 97 + [L] * 38 + [T] * 15))
    r = selectors.shadow_report("cand-1")
    assert r["pairs"] == 1050 and r["days_with_pairs"] == 7 and r["interval_method"].startswith("confidence sequence")
    scores = np.array(([1.0] * 97 + [0.0] * 38 + [0.5] * 15) * 7)
    expected = stats.mean_sequence(scores, np.arange(1050))
    assert (r["win_rate"], r["ci_low"], r["ci_high"]) == pytest.approx(tuple(expected))
    # the decision reads the decisive rate (ties apart): 97 : 38 a day
    decisive = stats.decisive_sequence(scores, np.arange(1050))
    assert r["decisive_win_rate"] == pytest.approx(97 / 135)
    assert (r["intervals"]["decisive_win_rate"]["ci_low"], r["intervals"]["decisive_win_rate"]["ci_high"]) == (
        pytest.approx(decisive.lo), pytest.approx(decisive.hi))
    assert r["decision"] == "better" and r["ci_low"] > 0.5
    # the same pairs, but the decision waits for the horizon: 1,100 pairs or 8 days are not there
    with override_settings(SHADOW_MIN_PAIRS=1100):
        assert selectors.shadow_report("cand-1")["decision"] == "insufficient_data"
    with override_settings(SHADOW_MIN_DAYS=8):
        r = selectors.shadow_report("cand-1")
        assert r["decision"] == "insufficient_data" and "at least 8 days" in r["decision_reason"]
    # a window of 3 days holds 450 pairs: not enough
    assert selectors.shadow_report("cand-1", 3)["pairs"] == 450
    assert run_json("shadow_report", "--release", "cand-1", "--days", "3")["decision"] == "insufficient_data"


def test_worse_and_no_difference():
    make_pairs(release("worse"), week([W] * 55 + [L] * 85 + [T] * 10))
    make_pairs(release("same"), week([W] * 70 + [L] * 70 + [T] * 10), source="same-src")
    assert selectors.shadow_report("worse")["decision"] == "worse"
    same = selectors.shadow_report("same")
    assert same["decision"] == "no_difference" and same["ci_low"] < 0.5 < same["ci_high"]


def test_the_interval_resamples_whole_conversations():
    rel = release()
    pairs = make_pairs(rel, week([W, W, W, L, L, T] * 4), per_session=3)
    r = selectors.shadow_report("cand-1")
    assert "clustered by conversation" in r["interval_method"] and r["conversations"] == len(pairs) // 3
    scores = np.array([selectors.SCORES[p.outcome] for p in pairs])
    sessions = np.array([p.session_id for p in pairs])
    est = stats.mean_sequence(scores, sessions)
    assert (r["win_rate"], r["ci_low"], r["ci_high"]) == pytest.approx(tuple(est))
    # wider than if the 3 pairs of a conversation were independent
    assert r["ci_high"] - r["ci_low"] > stats.mean_sequence(scores).hi - stats.mean_sequence(scores).lo


def test_per_failure_mode_rows_carry_benjamini_hochberg_q_values():
    rel = release()
    outcomes = [W] * 30 + [L] * 30
    # FORMAT flagged on the served answer where the candidate won; SAFETY on the candidate where it lost
    modes = {i: ((), ("FORMAT",)) for i in range(0, 25)}
    modes.update({i: (("SAFETY",), ()) for i in range(30, 40)})
    modes.update({i: (("FORMAT",), ()) for i in range(40, 42)})
    make_pairs(rel, {START: outcomes}, modes=modes)
    rows = {r["code"]: r for r in selectors.shadow_report("cand-1")["by_failure_mode"]}
    assert set(rows) == {"FORMAT", "SAFETY"}
    assert rows["FORMAT"]["pairs"] == 27 and rows["SAFETY"]["pairs"] == 10
    assert rows["SAFETY"]["win_rate"] == 0.0 and rows["FORMAT"]["win_rate"] == pytest.approx(25 / 27)
    p = [stats.win_rate_pvalue(np.array([1.0] * 25 + [0.0] * 2)), stats.win_rate_pvalue(np.zeros(10))]
    q = stats.benjamini_hochberg(p)
    assert (rows["FORMAT"]["q_value"], rows["SAFETY"]["q_value"]) == pytest.approx(tuple(q))
    assert rows["SAFETY"]["candidate_flagged"] == 10 and rows["SAFETY"]["served_flagged"] == 0
    line = run_json("shadow_report", "--release", "cand-1")
    assert set(line["by_failure_mode"][0]) == {"code", "pairs", "win_rate", "ci_low", "ci_high", "q_value"}


def test_the_length_controlled_rate_discounts_wins_that_are_only_longer_answers():
    rel = release()
    # the candidate wins exactly when its answer is longer, and loses when it is shorter
    make_pairs(rel, {START: [W] * 60}, cand_len=400, served_len=100)
    make_pairs(rel, {START + timedelta(days=1): [L] * 40}, cand_len=50, served_len=100, source="short")
    make_pairs(rel, {START + timedelta(days=2): [W] * 20 + [L] * 20}, cand_len=100, served_len=100, source="even")
    r = selectors.shadow_report("cand-1")
    assert r["win_rate"] == pytest.approx(80 / 140)
    assert r["length_controlled_win_rate"] < r["win_rate"] - 0.05


def test_no_pairs_is_insufficient_data_not_a_number():
    release()
    line = run_json("shadow_report", "--release", "cand-1")
    assert line["pairs"] == 0 and line["win_rate"] is None and line["decision"] == "insufficient_data"
    assert line["by_failure_mode"] == []
    with pytest.raises(CommandError, match="no release named 'nope'"):
        call_command("shadow_report", "--release", "nope", stdout=io.StringIO())


def test_daily_series_gives_each_day_its_interval():
    rel = release()
    make_pairs(rel, {START: [W] * 8 + [L] * 2, START + timedelta(days=2): [T] * 4})
    days = selectors.shadow_daily("cand-1", days=3)
    assert [d["pairs"] for d in days] == [10, 0, 4]
    assert days[0]["win_rate"] == 0.8 and days[0]["ci_low"] < 0.8 < days[0]["ci_high"]
    assert days[1]["win_rate"] is None and days[2]["ties"] == 4
