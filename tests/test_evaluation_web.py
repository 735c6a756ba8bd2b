"""The correlation page and the evaluation API: what a signed-in user reads, what a stranger does not."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from evaluation.models import Alarm, OfflineRun
from evaluation.services.rollup import turn_day_counts_refresh
from tests.evaluation_helpers import DAY0, frozen_version, release, turns

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer():
    client = Client()
    client.force_login(User.objects.create_user("viewer-vic", password="pw-vic-1"))
    return client


@pytest.fixture
def world():
    version = frozen_version("web-set", [{"key": "k1"}])
    spec = [("w1", 0.70, 400, 40), ("w2", 0.71, 400, 38), ("w3", 0.85, 400, 120), ("w4", None, 300, 30)]
    for day, (name, score, n, failures) in enumerate(spec):
        rel = release(name)
        turns(model=rel.model, n=n, failures=failures, day=DAY0 + timedelta(days=day))
        if score is not None:
            OfflineRun.objects.create(release=rel, version=version, mode="import", status="done", items=40,
                                      score=score, ci_low=score - 0.02, ci_high=score + 0.02)
    Alarm.objects.create(kind="discordant_release", release=rel, fingerprint="x", detail="stored alarm detail")
    turn_day_counts_refresh()  # the beat task's job: the page reads the counts, it never writes
    return version


def svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg[^>]*data-chart="{chart_id}".*?</svg>', html, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


def test_the_page_plots_each_release_with_whiskers_and_says_it_cannot_conclude(world, viewer):
    html = viewer.get("/correlation/").content.decode()
    chart = svg(html, "offline-vs-production")
    assert 'data-points="3"' in chart  # w4 has no offline score: listed, not plotted
    assert chart.count('class="whisker-x"') == 3 and chart.count('class="whisker-y"') == 3
    assert 'data-label="w3"' in chart and 'data-x="0.85"' in chart
    assert "cannot conclude yet" in html and "3 releases with both numbers, 8 needed" in html
    assert re.search(r'<tr data-release="w3" class="discordant">', html)
    assert "Not plotted (no offline score or no production rate yet): w4" in html
    assert "GRADER_MODEL" in html
    assert 'data-signal="failure_candidate"' in html and "insufficient data" in html
    assert "stored alarm detail" in html and 'data-kind="discordant_release"' in html
    assert svg(html, "item-auc-weekly")


@override_settings(LOGIN_URL="/accounts/login/")
def test_a_stranger_is_sent_to_sign_in_and_the_api_refuses_him(world):
    response = Client().get("/correlation/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    for url in ("/api/evaluation/correlation/", "/api/evaluation/signal-validity/", "/api/evaluation/alarms/",
                "/api/evaluation/offline-runs/", "/api/evaluation/releases/w1/production-rates/"):
        assert Client().get(url).status_code in (401, 403)


def test_the_api_serves_the_report_rates_runs_and_alarms(world, api):
    report = api.get("/api/evaluation/correlation/?last=2").json()
    assert [r["name"] for r in report["releases"]] == ["w3", "w4"]
    rates = api.get("/api/evaluation/releases/w1/production-rates/?start=2026-09-01&end=2026-09-01").json()
    assert rates["detected"] == 400 and rates["failure_candidate"]["rate"] == pytest.approx(0.1)
    assert api.get("/api/evaluation/releases/nope/production-rates/").status_code == 404
    assert api.get("/api/evaluation/releases/w1/production-rates/?start=yesterday").status_code == 400
    runs = api.get("/api/evaluation/offline-runs/?release=w3").json()
    assert len(runs) == 1 and runs[0]["score"] == 0.85 and runs[0]["testset"] == "web-set"
    assert api.get(f"/api/evaluation/offline-runs/{runs[0]['id']}/").json()["scores"] == []
    assert api.get("/api/evaluation/alarms/").json()[0]["detail"] == "stored alarm detail"
    assert set(api.get("/api/evaluation/signal-validity/").json()) >= {"labelled", "used", "p_incorrect", "rows"}


def test_starting_a_run_through_the_api_says_what_is_missing(world, api):
    with override_settings(GRADER_MODEL="", OPENAI_BASE_URL="", OPENAI_API_KEY=""):
        response = api.post("/api/evaluation/offline-runs/", {"release": "w1", "testset": "web-set", "version": 1,
                                                              "mode": "served"}, format="json")
    assert response.status_code == 409 and "GRADER_MODEL" in response.json()["detail"]
    response = api.post("/api/evaluation/offline-runs/", {"release": "nope", "testset": "web-set", "version": 1},
                        format="json")
    assert response.status_code == 400 and "no release named 'nope'" in response.json()["detail"]
    assert OfflineRun.objects.filter(release__name="w1").count() == 1  # only the fixture's
