"""Shadow pages and API: what a signed-in person sees, and that outsiders see nothing."""
from datetime import date, timedelta

import pytest
from django.test import override_settings

from conftest import user_with_role
from shadow.models import JudgeCalibration, ShadowRun, ShadowVerdict
from tests.shadow_helpers import make_pairs, release

pytestmark = pytest.mark.django_db
START = date(2026, 9, 1)


@pytest.fixture
def data():
    rel = release()
    pairs = make_pairs(rel, {START + timedelta(days=d): ["candidate_win"] * 6 + ["served_win"] * 3 + ["inconsistent"]
                             for d in range(7)}, modes={0: (("FORMAT",), ()), 1: ((), ("FORMAT",))})
    p = pairs[0]
    ShadowVerdict.objects.create(pair=p, order="candidate_first", judge_model="judge-x", prompt_version="judge-v1",
                                 verdict="A", winner="candidate", rationale="A cites the policy <b>correctly</b>",
                                 raw_answer='{"verdict": "A"}')
    ShadowVerdict.objects.create(pair=p, order="served_first", judge_model="judge-x", prompt_version="judge-v1",
                                 verdict="B", winner="candidate", rationale="B is right")
    ShadowRun.objects.create(release=rel, day=START, sample_size=150, salt="s", status="done", sampled=150,
                             answered=40, budget_stopped=True, budget_reason="daily budget of $2 reached")
    JudgeCalibration.objects.create(name="mtbench.jsonl", sha256="0" * 64, judge_model="judge-x",
                                    prompt_version="judge-v1", pairs=200,
                                    result={"agreement": 0.66, "agreement_decisive": 0.66, "cohen_kappa": 0.32,
                                            "swap_consistency": 0.8, "first_position_rate": 0.55,
                                            "longer_preferred_rate": 0.7, "human_longer_preferred_rate": 0.697})
    return rel, pairs


@pytest.fixture
def signed_in(client):
    client.force_login(user_with_role("viewer", "viewer", password="pw-viewer-1"))
    return client


def test_the_release_page_shows_decision_rates_band_modes_calibration_and_budget_stops(data, signed_in):
    with override_settings(SHADOW_MIN_PAIRS=50, SHADOW_MIN_DAYS=7):
        html = signed_in.get("/shadow/cand-1/").content.decode()
    # 42 wins to 21 losses over 70 pairs: a confidence sequence that may be read daily is not yet sure
    assert 'data-decision="no_difference"' in html and "70 judged pairs" not in html  # the count is in its own stat
    assert "<b>70</b>" in html and "65.0%" in html  # (6 + 0.5) / 10
    assert 'data-chart="shadow-win-rate-daily"' in html and 'class="band"' in html and 'class="reference"' in html
    assert html.count('class="point"') == 7
    assert 'data-code="FORMAT"' in html and "mtbench.jsonl" in html and "66.0%" in html
    assert "stopped: daily budget of $2 reached" in html
    assert "Anytime-valid" in html and "human-calibrated decisive win rate (judge + audit)" in html
    listing = signed_in.get("/shadow/").content.decode()
    assert 'data-release="cand-1"' in listing and "better" not in listing  # default horizon: 1000 pairs
    assert "insufficient_data" in listing


def test_the_pair_browser_shows_both_answers_verdicts_and_rationales(data, signed_in):
    rel, pairs = data
    page = signed_in.get("/shadow/cand-1/pairs/?outcome=inconsistent").content.decode()
    assert page.count('class="pair"') == 7 and 'data-outcome="inconsistent"' in page
    detail = signed_in.get(f"/shadow/pairs/{pairs[0].pk}/").content.decode()
    assert pairs[0].candidate_answer in detail and pairs[0].turn.response in detail
    assert "A cites the policy &lt;b&gt;correctly&lt;/b&gt;" in detail and "B is right" in detail  # escaped
    assert detail.count('class="verdict"') == 2 and "A = served, B = candidate" in detail
    assert signed_in.get("/shadow/pairs/999999/").status_code == 404
    assert signed_in.get("/shadow/nope/").status_code == 404


def test_pages_and_api_need_a_signed_in_user(data, client):
    assert client.get("/shadow/cand-1/").status_code == 302
    assert client.get("/api/shadow/releases/cand-1/report/").status_code == 401  # no credentials


def test_the_api_serves_the_report_daily_series_and_pairs(data, api):
    report = api.get("/api/shadow/releases/cand-1/report/?days=7").json()
    assert report["pairs"] == 70 and report["decision"] == "insufficient_data" and "by_failure_mode" in report
    assert len(api.get("/api/shadow/releases/cand-1/daily/?days=7").json()) == 7
    listing = api.get("/api/shadow/pairs/?release=cand-1&outcome=candidate_win").json()
    assert listing["count"] == 42 and listing["results"][0]["verdicts"][0]["judge_model"] == "judge-x"
    assert api.get("/api/shadow/releases/nope/report/").status_code == 404
    assert api.get("/api/shadow/releases/cand-1/report/?days=x").status_code == 400
    # starting a judge pass without a judge configured says which settings to set
    with override_settings(JUDGE_MODEL="", JUDGE_BASE_URL="", OPENAI_BASE_URL="", OPENAI_API_KEY=""):
        response = api.post("/api/shadow/judge-runs/", {}, format="json")
    assert response.status_code == 400 and "JUDGE_MODEL" in response.json()["detail"]
    response = api.post("/api/shadow/runs/", {"release": "nope"}, format="json")
    assert response.status_code == 400 and "no release named" in response.json()["release"]
