"""One window: the shadow report, its page and the gate count the same pairs for the same question;
and the gate asked about a past day (--as-of / as_of) reads only the evidence up to that day."""
from datetime import datetime, time, timedelta, timezone

import pytest
from django.core.management import CommandError
from rest_framework.test import APIClient

from conftest import user_with_role
from gate.models import GateDecision
from gate.policy import defaults
from shadow.models import ShadowPair
from tests.gate_helpers import (DAY0, TEST_POLICY, decide_under, gate, gate_json, offline_run, policy_file, releases,
                                scored, shadow_days, testset)
from tests.shadow_helpers import run_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def ten_days():
    """cand and base scored offline; 10 days of judged pairs, 100 a day (the 7-day and the 14-day
    windows differ: 700 against 1,000 pairs)."""
    cand, base, _ = scored()
    shadow_days(cand, 10, wins=60, losses=40)
    return cand, base


def test_the_report_the_page_and_the_gate_count_the_same_pairs(ten_days, settings, client, tmp_path):
    # given: the server's policy as shipped (its window left to the default), with small horizons
    settings.GATE_POLICY = {**settings.GATE_POLICY,
                            **{k: v for k, v in TEST_POLICY.items() if k != "shadow_window_days"}}
    assert defaults()["shadow_window_days"] == settings.SHADOW_REPORT_DAYS

    # when: the same question three ways
    report = run_json("shadow_report", "--release", "cand")
    code, decision = gate_json("--candidate", "cand", "--baseline", "base")
    client.force_login(user_with_role("lead", "viewer"))
    page = client.get("/shadow/cand/")

    # then: the same pairs, the same window
    shadow = decision["evidence"]["shadow"]
    assert report["pairs"] == shadow["pairs"] == page.context["report"]["pairs"] == 700
    assert (shadow["since"], shadow["until"]) == (page.context["report"]["since"], page.context["report"]["until"])
    assert decision["evidence"]["guardrails"]["pairs"] == 700  # the guardrails read the same pairs too

    # a server whose policy reads 14 days: the page follows the gate, and the report asked for 14 days agrees
    with_file = policy_file(tmp_path, shadow_window_days=14)
    settings.GATE_POLICY_FILE = str(with_file)
    code, decision = gate_json("--candidate", "cand", "--baseline", "base")
    page = client.get("/shadow/cand/")
    assert decision["evidence"]["shadow"]["pairs"] == page.context["report"]["pairs"] == \
        run_json("shadow_report", "--release", "cand", "--days", "14")["pairs"] == 1000


def _judged_on(pairs, day):
    ShadowPair.objects.filter(pk__in=[p.pk for p in pairs]).update(
        judged_at=datetime.combine(day, time(23, 0), tzinfo=timezone.utc))


def test_as_of_a_past_day_reads_only_the_evidence_up_to_that_day(tmp_path, settings, client):
    # given: three bad days, then three good ones; day 2's pairs were judged late (on day 4); the
    # candidate's offline score improved after day 2 (a later run)
    cand, base = releases()
    v1 = testset()
    early = offline_run(cand, v1, 79)
    base_run = offline_run(base, v1, 80)
    for run in (early, base_run):
        run.finished_at = datetime.combine(DAY0, time(8), tzinfo=timezone.utc)
        run.save(update_fields=["finished_at"])
    late = offline_run(cand, v1, 85)  # finished now, long after the days below
    shadow_days(cand, 3, wins=30, losses=70)
    shadow_days(cand, 3, wins=95, losses=5, start=DAY0 + timedelta(days=3))
    for d in range(6):
        day = DAY0 + timedelta(days=d)
        _judged_on(list(ShadowPair.objects.filter(release=cand, day=day)), day)
    _judged_on(list(ShadowPair.objects.filter(release=cand, day=DAY0 + timedelta(days=1))), DAY0 + timedelta(days=4))
    floor = policy_file(tmp_path)

    # when: asked today, and as of day 2 (DAY0 + 2)
    code_now, now = decide_under(floor, "--candidate", "cand", "--baseline", "base")
    as_of = (DAY0 + timedelta(days=2)).isoformat()
    code_then, then = decide_under(floor, "--candidate", "cand", "--baseline", "base", "--as-of", as_of)

    # then: today the good days carry it; as of day 2 only days 0 and 2 were judged, and the candidate was worse
    assert (code_now, now["decision"]) == (0, "ship") and now["evidence"]["shadow"]["pairs"] == 600
    assert (code_then, then["decision"]) == (1, "block")
    shadow = then["evidence"]["shadow"]
    assert (shadow["pairs"], shadow["until"], shadow["as_of"]) == (200, as_of, as_of)
    assert shadow["win_rate"] == pytest.approx(0.3) and shadow["verdict"] == "worse"
    assert then["evidence"]["offline"]["candidate"]["run"] == early.pk != late.pk
    assert now["evidence"]["offline"]["candidate"]["run"] == late.pk
    assert then["reasons"][0].startswith(f"as of {as_of}: the evidence as it stood at the end of that day")
    # recorded like any other decision, with the day it was asked about
    row = GateDecision.objects.order_by("id").last()
    assert (row.decision, row.as_of.isoformat(), row.via) == ("block", as_of, "cli")
    assert GateDecision.objects.order_by("id").first().as_of is None
    # and its page says which day it describes, with the guardrails read on the same pairs
    client.force_login(user_with_role("lead", "viewer"))
    page = client.get(f"/gate/decisions/{row.pk}/").content.decode()
    assert f'<b id="as-of">{as_of}</b>' in page and 'data-metric="latency_p95"' in page

    # the API asks the same, and a day still to come is a usage error
    settings.GATE_POLICY_FILE = str(floor)
    from django.contrib.auth.models import Permission
    bot = user_with_role("ci-bot", "viewer")
    bot.user_permissions.add(Permission.objects.get(codename="ask_gate"))
    api = APIClient()
    api.force_authenticate(bot)
    r = api.post("/api/gate/", {"candidate": "cand", "baseline": "base", "as_of": as_of}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["decision"], r.json()["as_of"]) == ("block", as_of)
    assert r.json()["evidence"] == then["evidence"]
    assert GateDecision.objects.get(pk=r.json()["id"]).as_of.isoformat() == as_of
    with pytest.raises(CommandError, match="--as-of: 2099-01-01 is after today") as e:
        gate("--candidate", "cand", "--baseline", "base", "--as-of", "2099-01-01")
    assert e.value.returncode == 2
    r = api.post("/api/gate/", {"candidate": "cand", "baseline": "base", "as_of": "2099-01-01"}, format="json")
    assert r.status_code == 400 and "--as-of: 2099-01-01 is after today" in r.json()["detail"]
