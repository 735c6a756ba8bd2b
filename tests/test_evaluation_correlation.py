"""Production rates per release, signal validity on weighted labels, and the correlation report:
cannot_conclude below 8 releases, Spearman against scipy, a planted discordant release, item-level
AUC and kappa with the weekly alarms."""
import io
import json
import math
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from scipy import stats as scipy_stats

from evaluation import selectors
from evaluation.models import Alarm, OfflineRun, OfflineScore, TurnDayCount
from evaluation.services.rollup import turn_day_counts_refresh
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, Resolution
from production.models import SIGNAL_NAMES, TurnSignals
from testsets.models import TestItem
from tests.evaluation_helpers import DAY0, frozen_version, item_for, release, turns

pytestmark = pytest.mark.django_db


def wilson(k, n, z=1.96):
    """Wilson score interval, written out here (not core.stats) as the independent reference."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


# --- production rates ------------------------------------------------------------------------------

def test_rates_cover_the_post_release_window_or_the_days_asked_for():
    a = release("A", model="m-a")
    turns(model="m-a", n=100, failures=10, signals={"rephrased": 20}, day=DAY0, src="prod")
    turns(model="m-a", n=50, failures=5, day=DAY0 + timedelta(days=3), src="web")
    turns(model="other", release="A", n=10, day=DAY0 + timedelta(days=1), src="prod")  # names A: A's
    turns(model="m-a", release="B", n=40, failures=40, day=DAY0)  # names another release: not A's
    turns(model="m-a", n=5, day=DAY0, detected=False)  # signals not detected yet: no rate counts them
    turns(model="m-a", n=100, failures=90, day=DAY0 + timedelta(days=8))  # day 9: outside the window

    r = selectors.production_rates(a)
    assert (r["start"], r["end"]) == ("2026-09-01", "2026-09-07")
    assert r["turns"] == 165 and r["detected"] == 160
    assert tuple(r["failure_candidate"][k] for k in ("rate", "ci_low", "ci_high")) == pytest.approx(wilson(15, 160))
    assert (r["failure_candidate"]["n"], r["failure_candidate"]["k"]) == (160, 15)
    assert r["signals"]["rephrased"]["rate"] == pytest.approx(20 / 160)
    assert set(r["signals"]) == set(SIGNAL_NAMES)
    assert r["by_source"] == {"prod": {"turns": 115, "detected": 110, "failure_candidate": 10},
                              "web": {"turns": 50, "detected": 50, "failure_candidate": 5}}

    # the same days for two releases (the gate's A/B): exactly the days asked for
    late = selectors.production_rates(a, start="2026-09-09", end="2026-09-09")
    assert late["detected"] == 100 and late["failure_candidate"]["rate"] == pytest.approx(0.9)

    # standardised to a 50/50 mix of sources: the per-source rates weighted by the mix, not by traffic
    std = selectors.production_rates(a, reference_mix={"prod": 0.5, "web": 0.5})["standardised"]
    assert std["failure_candidate"]["rate"] == pytest.approx(0.5 * 10 / 110 + 0.5 * 5 / 50)
    missing = selectors.production_rates(a, reference_mix={"prod": 0.5, "app": 0.5})["standardised"]
    assert missing["failure_candidate"]["status"] == "insufficient_data" and "app" in missing["failure_candidate"]["reason"]


def test_a_release_that_served_nothing_has_no_rate_but_says_so():
    r = selectors.production_rates(release("idle"))
    assert r["detected"] == 0 and r["failure_candidate"] == {"n": 0, "k": 0, "status": "insufficient_data"}


def test_many_releases_in_one_pass_agree_with_one_at_a_time():
    rels = [release(f"r{i}", model=f"m{i}") for i in range(3)]
    for i in range(3):
        turns(model=f"m{i}", n=20 + i, failures=i, day=DAY0 + timedelta(days=i))
        turns(model=f"m{i}", n=7, failures=7, day=DAY0 + timedelta(days=i + 7))  # outside each window
    turn_day_counts_refresh()
    many = selectors.production_rates_many(rels)
    for r in rels:
        one = selectors.production_rates(r)
        assert {k: many[r.name][k] for k in ("start", "end", "detected", "failure_candidate", "signals")} == \
               {k: one[k] for k in ("start", "end", "detected", "failure_candidate", "signals")}


def test_the_rollup_recomputes_only_the_days_whose_signals_changed():
    a = release("A", model="m-a")
    turns(model="m-a", n=10, failures=1, day=DAY0)
    later = turns(model="m-a", n=10, failures=2, day=DAY0 + timedelta(days=2))
    TurnSignals.objects.update(detected_at=timezone.now() - timedelta(days=1))  # detected yesterday
    assert turn_day_counts_refresh() == {"days": 2, "full": True}
    assert turn_day_counts_refresh() == {"days": 0, "full": False}
    # detection runs again for the later day's session (its rows get a new detected_at), and new
    # turns of another day are ingested and detected
    TurnSignals.objects.filter(turn__in=later[:5]).update(failure_candidate=True, detected_at=timezone.now())
    turns(model="m-a", n=4, failures=4, day=DAY0 + timedelta(days=3))
    assert turn_day_counts_refresh() == {"days": 2, "full": False}
    row = TurnDayCount.objects.get(day=DAY0 + timedelta(days=2))
    assert (row.named, row.key, row.detected, row.failure_candidate) == (False, "m-a", 10, 5)
    many = selectors.production_rates_many([a])["A"]
    assert many["failure_candidate"]["rate"] == pytest.approx((1 + 5 + 4) / 24)
    assert many == {**selectors.production_rates(a), "release": "A"}


# --- the report ----------------------------------------------------------------------------------

def scored_releases(spec: list[tuple[str, float, float | None, int, int]]):
    """(name, offline score, offline half-width, turns, failures) per release, one serving day each, in order."""
    version = frozen_version("corr-set", [{"key": "k1"}])
    for day, (name, score, half, n, failures) in enumerate(spec):
        rel = release(name, model=f"model-{name}")
        turns(model=rel.model, n=n, failures=failures, day=DAY0 + timedelta(days=day))
        OfflineRun.objects.create(release=rel, version=version, mode=OfflineRun.Mode.IMPORT, status="done",
                                  items=50, score=score, ci_low=None if half is None else score - half,
                                  ci_high=None if half is None else score + half)
    return version


def report(*args) -> dict:
    out = io.StringIO()
    call_command("correlation_report", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_five_releases_cannot_conclude():
    scored_releases([(f"r{i}", 0.5 + i / 10, 0.02, 100, 50 - 10 * i) for i in range(5)])
    data = report()
    assert data["rank_correlation"] == {"status": "cannot_conclude", "k": 5}
    assert len(data["releases"]) == 5


def test_twelve_releases_give_scipys_spearman_with_an_interval():
    offline = [0.61, 0.64, 0.62, 0.70, 0.69, 0.74, 0.73, 0.78, 0.80, 0.79, 0.83, 0.86]
    failures = [40, 37, 41, 30, 33, 28, 22, 25, 19, 21, 15, 16]  # per 200 turns
    scored_releases([(f"rel-{i:02d}", s, 0.01, 200, f) for i, (s, f) in enumerate(zip(offline, failures))])
    data = report("--last", "12")
    expected = scipy_stats.spearmanr(offline, [-f / 200 for f in failures]).statistic
    rc = data["rank_correlation"]
    assert rc["k"] == 12 and rc["spearman"] == pytest.approx(expected)
    assert rc["ci_low"] <= rc["spearman"] <= rc["ci_high"] and rc["ci_high"] <= 1
    assert [r["name"] for r in data["releases"]] == [f"rel-{i:02d}" for i in range(12)]
    # --last keeps the most recent releases
    assert [r["name"] for r in report("--last", "3")["releases"]] == ["rel-09", "rel-10", "rel-11"]


def test_a_planted_discordant_release_is_flagged_and_alarmed_once():
    scored_releases([("v1", 0.70, 0.02, 400, 40), ("v2", 0.71, 0.02, 400, 38),
                     ("v3", 0.85, 0.02, 400, 120),   # offline clearly better, production clearly worse
                     ("v4", 0.86, 0.02, 400, 110),   # better than v3 offline but intervals overlap: not flagged
                     ("v5", 0.80, 0.02, 400, 200)])  # production worse but offline worse too: concordant
    data = report()
    assert data["discordant"] == ["v3"]
    assert [a["kind"] for a in data["alarms"]] == ["discordant_release"]
    assert data["alarms"][0]["release"] == "v3" and "v2" in data["alarms"][0]["detail"]
    alarm = Alarm.objects.get()
    assert alarm.kind == "discordant_release" and alarm.release.name == "v3"
    assert alarm.evidence["previous"]["name"] == "v2" and alarm.evidence["release"]["offline_score"] == 0.85
    report()
    assert Alarm.objects.count() == 1  # the same finding is one alarm, however often the report runs


def test_the_report_has_exactly_the_issues_shape():
    scored_releases([("a", 0.5, 0.1, 50, 5)])
    data = report()
    assert set(data) == {"releases", "rank_correlation", "discordant", "item_level", "signal_validity", "alarms"}
    assert set(data["releases"][0]) == {"name", "offline_score", "offline_ci", "production_failure_rate",
                                        "production_ci", "turns"}
    assert set(data["item_level"]) == {"auc", "ci_low", "ci_high", "n", "kappa_vs_human"}
    assert data["signal_validity"] and all(
        set(row) == {"signal", "labelled", "p_incorrect_given_signal", "p_incorrect", "lift", "ci_low", "ci_high"}
        for row in data["signal_validity"])
    text = io.StringIO()
    call_command("correlation_report", stdout=text)
    assert "cannot conclude yet" in text.getvalue()


# --- signal validity ---------------------------------------------------------------------------------

@pytest.fixture
def labels():
    """Known answers: 4 failure candidates taken in full (weight 1) and 6 sampled ordinary turns
    (inclusion probability 0.1: weight 10), plus items that must not count."""
    project = LabelStudioProject.objects.create(title="p", ls_project_id=1)
    batch = LabellingBatch.objects.create(month="2026-09")
    admin = User.objects.create_user("lead")
    n = iter(range(1, 1000))

    def labelled(verdicts, *, p, stratum, failure=False, signals=(), resolution=None):
        t = turns(model="m", n=1, failures=int(failure), signals={s: 1 for s in signals})[0]
        it = BatchItem.objects.create(batch=batch, turn=t, stratum=stratum, inclusion_probability=p,
                                      query_key=t.external_id)
        for who, v in enumerate(verdicts):
            k = next(n)
            Annotation.objects.create(ls_annotation_id=k, project=project, item=it, ls_task_id=k,
                                      annotator=f"a{who}", verdict=v)
        if resolution:
            Resolution.objects.create(item=it, verdict=resolution, reason="lead decided", resolved_by=admin)
        return it

    for verdicts, resolution in ((["incorrect"], None), (["incorrect", "incorrect"], None),
                                 (["correct", "incorrect"], "incorrect"), (["correct"], None)):
        labelled(verdicts, p=1.0, stratum="failure", failure=True, signals=("escalated",), resolution=resolution)
    labelled(["incorrect"], p=0.1, stratum="none", signals=("rephrased",))
    labelled(["correct"], p=0.1, stratum="none", signals=("rephrased",))
    for _ in range(4):
        labelled(["correct"], p=0.1, stratum="none")
    labelled(["correct", "incorrect"], p=0.1, stratum="none", signals=("rephrased",))  # a tie: no verdict
    labelled(["cannot_judge"], p=0.1, stratum="none")                                 # no verdict
    labelled(["incorrect"], p=1.0, stratum="generated", failure=True)                 # not a production sample


def test_signal_validity_weighs_each_item_by_its_inclusion_probability(labels):
    v = selectors.signal_validity()
    assert v["used"] == 10
    # weighted: (3 x 1 + 1 x 10) / (4 x 1 + 6 x 10); unweighted it would be 4 / 10
    p = 13 / 64
    assert v["p_incorrect"]["rate"] == pytest.approx(p)
    rows = {r["signal"]: r for r in v["rows"]}
    assert list(rows)[0] == "failure_candidate" and set(rows) == {"failure_candidate", *SIGNAL_NAMES}
    fc = rows["failure_candidate"]
    assert fc["labelled"] == 4 and fc["p_incorrect_given_signal"] == pytest.approx(3 / 4)
    assert fc["lift"] == pytest.approx((3 / 4) / p) and fc["ci_low"] < fc["lift"] < fc["ci_high"]
    rep = rows["rephrased"]
    assert rep["labelled"] == 2 and rep["p_incorrect_given_signal"] == pytest.approx(0.5)
    assert rep["lift"] == pytest.approx(0.5 / p)
    assert rows["escalated"]["lift"] == pytest.approx(fc["lift"])
    assert rows["copied"]["labelled"] == 0 and rows["copied"]["lift"] is None
    # weighted AUC of the flag, incorrect vs correct: pairs weighted by the product of their weights
    assert fc["auc"]["auc"] == pytest.approx((3 * 50 + 3 * 1 * 0.5 + 10 * 50 * 0.5) / (13 * 51))
    assert selectors.report_json(selectors.correlation_data())["signal_validity"][0] == {
        k: fc[k] for k in ("signal", "labelled", "p_incorrect_given_signal", "p_incorrect", "lift", "ci_low",
                           "ci_high")}


# --- item level -----------------------------------------------------------------------------------

def served_week(rel, version_items, week: int, *, agree: bool, n: int = 24):
    """n served answers in a week: half failures; with agree the failures got the low grades."""
    day = DAY0 + timedelta(weeks=week)
    ts = turns(model=rel.model, n=n, failures=n // 2, day=day)
    out = []
    for i, t in enumerate(ts):
        failure = i < n // 2
        low = failure if agree else not failure
        out.append((t, 0.0 if low else 1.0, "incorrect" if failure else "correct"))
    version_items.extend(out)


def test_item_level_auc_kappa_and_weekly_alarms():
    rel = release("served", model="srv")
    pending = []
    for week, agree in ((0, True), (1, True), (2, False), (3, False)):
        served_week(rel, pending, week, agree=agree)
    version = frozen_version("served-set", [item_for(t, verdict=human) for t, _, human in pending])
    run = OfflineRun.objects.create(release=rel, version=version, mode=OfflineRun.Mode.SERVED, status="done",
                                    score=0.5, items=len(pending))
    items = {i.key: i for i in TestItem.objects.filter(version=version)}
    OfflineScore.objects.bulk_create([
        OfflineScore(run=run, key=f"turn:prod:{t.external_id}", item=items[f"turn:prod:{t.external_id}"], turn=t,
                     score=s, verdict="correct" if s == 1.0 else "incorrect") for t, s, _ in pending])
    weekly = selectors.item_level_weekly()
    assert [w["auc"] for w in weekly] == [1.0, 1.0, 0.0, 0.0]
    assert weekly[2]["trailing_mean"] == 1.0 and weekly[1]["trailing_mean"] is None  # needs 2 weeks before
    # the change test: no reference before 2 weeks; week 2 falls ~38 standard errors below the two
    # perfect weeks (drop alarm, and the reference restarts there); against the 0.6 floor one week
    # at 0.0 adds up to 4.6 (not yet past h = 5), the second to 9.2 (floor alarm)
    assert [w["z"] is None for w in weekly] == [True, True, False, True]
    assert [w["drop_alarm"] for w in weekly] == [False, False, True, False]
    assert [w["floor_alarm"] for w in weekly] == [False, False, False, True]
    assert weekly[2]["reference_auc"] == 1.0 and weekly[2]["z"] < -30
    assert 4 < weekly[2]["cusum_floor"] < 5 < weekly[3]["cusum_floor"]
    level = selectors.item_level()
    grades = [s for _, s, _ in pending]
    flags = [h == "incorrect" for _, _, h in pending]
    n = len(pending)
    # AUC of -grade for the failure flag, and kappa of the grader's verdicts against the human ones
    expected_auc = scipy_stats.mannwhitneyu([-g for g, f in zip(grades, flags) if f],
                                            [-g for g, f in zip(grades, flags) if not f]).statistic / (n / 2) ** 2
    assert level["n"] == n == 96 and level["auc"] == pytest.approx(expected_auc)
    grader = ["correct" if g == 1.0 else "incorrect" for g in grades]
    human = [h for _, _, h in pending]
    po = sum(a == b for a, b in zip(grader, human)) / n
    pe = sum((grader.count(c) / n) * (human.count(c) / n) for c in ("correct", "incorrect"))
    assert level["kappa_vs_human"] == pytest.approx((po - pe) / (1 - pe))
    data = report()
    kinds = sorted(a["kind"] for a in data["alarms"])
    assert kinds == ["item_auc_drop", "item_auc_low"]
    # weeks start on Monday: the third week of turns (Tuesday 2026-09-15) is the week of 2026-09-14
    assert sorted(Alarm.objects.values_list("fingerprint", flat=True)) == ["item_auc_drop:2026-09-14",
                                                                          "item_auc_low:2026-09-21"]
    assert data["item_level"]["n"] == 96
