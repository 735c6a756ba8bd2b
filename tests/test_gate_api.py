"""Asking the gate over the API (a CI job's token) and from the candidate's page; the decisions
listed per release in the web UI, the API and the admin, with the evidence behind each."""
import pytest
from django.contrib.auth.models import Permission, User
from django.utils.html import escape
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import user_with_role
from gate.models import GateDecision
from tests.gate_helpers import TEST_POLICY, scored, shadow_days

pytestmark = pytest.mark.django_db


def person(name: str, *, can_ask: bool, role: str | None = "viewer") -> User:
    """A viewer (reads dashboards, so decisions), given gate.ask_gate on top if she may ask; a CI bot
    (role None) holds only gate.ask_gate."""
    user = user_with_role(name, role, password=f"pw-{name}-1") if role else \
        User.objects.create_user(name, password=f"pw-{name}-1")
    if can_ask:
        user.user_permissions.add(Permission.objects.get(codename="ask_gate"))
    return user


@pytest.fixture
def world(settings):
    settings.GATE_POLICY = {**settings.GATE_POLICY, **TEST_POLICY}
    cand, base, _ = scored()
    shadow_days(cand, 3, wins=70, losses=30)
    return cand, base


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_ci_token_asks_the_gate_and_the_decision_is_recorded_as_the_token(world):
    # given: a CI bot with the permission, by token
    ci = token_client(person("ci-bot", can_ask=True, role=None))

    # when
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base"}, format="json")

    # then: the command's JSON keys, plus what a CI job needs
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["decision"], body["exit_code"]) == ("ship", 0)
    assert set(body["evidence"]) == {"offline", "shadow", "ab", "critical_modes", "guardrails"}
    assert body["markdown"].startswith("### Release gate: `ship`")
    row = GateDecision.objects.get(pk=body["id"])
    assert (row.requested_by, row.via, row.auth, row.decision) == ("ci-bot", "api", "token", "ship")
    assert row.policy_source == "settings" and row.policy_sha256 == body["policy_sha256"]
    assert row.reasons == body["reasons"] and row.evidence == body["evidence"]


def test_a_policy_in_the_request_is_validated_and_recorded(world):
    ci = token_client(person("ci-bot", can_ask=True, role=None))
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base", "policy": {"accept": "both"}}, format="json")
    assert r.status_code == 200 and r.json()["decision"] == "insufficient_evidence" and r.json()["exit_code"] == 3
    row = GateDecision.objects.get()
    assert row.policy["accept"] == "both" and row.policy_source == "settings + request: accept"
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base", "policy": {"acept": "ab"}}, format="json")
    assert r.status_code == 400 and "acept: unknown key" in r.json()["detail"]
    assert GateDecision.objects.count() == 1


def test_a_request_policy_looser_than_the_servers_is_refused_with_the_key_named(world, tmp_path, settings):
    # given: the server's policy file (the floor) and a CI job that would like an easier gate
    from tests.gate_helpers import policy_file

    floor = policy_file(tmp_path, non_inferiority_margin=0.05, min_shadow_pairs=200)
    settings.GATE_POLICY_FILE = str(floor)
    ci = token_client(person("ci-bot", can_ask=True, role=None))

    # when: a wider margin, fewer pairs, a guardrail switched off, another window
    for key, value in (("non_inferiority_margin", 0.2), ("min_shadow_pairs", 10), ("max_cost_ratio", None),
                       ("shadow_window_days", 30), ("allow_stale_version", True)):
        r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base", "policy": {key: value}}, format="json")
        # then: 400, the key named, and nothing recorded
        assert r.status_code == 400, (key, r.content)
        assert f"request policy: {key}: " in r.json()["detail"] and "may only tighten" in r.json()["detail"]
    assert not GateDecision.objects.exists()

    # a tighter one is taken, recorded whole with its hash, and its source says what was tightened
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base",
                               "policy": {"non_inferiority_margin": 0.01, "min_shadow_pairs": 300}}, format="json")
    assert r.status_code == 200, r.content
    row = GateDecision.objects.get()
    assert (row.policy["non_inferiority_margin"], row.policy["min_shadow_pairs"]) == (0.01, 300)
    assert row.policy_source == f"file:{floor} + request: non_inferiority_margin, min_shadow_pairs"
    assert row.policy_sha256 == r.json()["policy_sha256"]
    # the tighter horizon is what decided: 300 pairs in the window, enough for 300
    assert row.evidence["shadow"]["min_pairs"] == 300 and row.decision == "ship"


def test_usage_errors_are_400_and_record_nothing(world):
    ci = token_client(person("ci-bot", can_ask=True, role=None))
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "nope"}, format="json")
    assert r.status_code == 400 and r.json()["detail"] == (
        "--baseline: no release named 'nope' (release_add nope --model MODEL)")
    r = ci.post("/api/gate/", {"candidate": "cand", "baseline": "base", "testset": "missing"}, format="json")
    assert r.status_code == 400 and "testset: no test set named 'missing'" in r.json()["detail"]
    assert not GateDecision.objects.exists()


def test_without_the_permission_nobody_asks_but_viewers_read(world):
    # given: one recorded decision, and a viewer without gate.ask_gate
    token_client(person("ci-bot", can_ask=True, role=None)).post(
        "/api/gate/", {"candidate": "cand", "baseline": "base"}, format="json")
    viewer = token_client(person("viewer", can_ask=False))
    # when / then
    assert viewer.post("/api/gate/", {"candidate": "cand", "baseline": "base"}, format="json").status_code == 403
    assert APIClient().post("/api/gate/", {"candidate": "cand", "baseline": "base"},
                            format="json").status_code in (401, 403)
    assert GateDecision.objects.count() == 1
    listed = viewer.get("/api/gate/decisions/?release=cand").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [(d["candidate"], d["baseline"], d["decision"], d["requested_by"]) for d in rows] == [
        ("cand", "base", "ship", "ci-bot")]
    detail = viewer.get(f"/api/gate/decisions/{rows[0]['id']}/").json()
    assert detail["evidence"]["shadow"]["pairs"] == 300 and detail["markdown"].startswith("### Release gate")
    assert viewer.get("/api/gate/decisions/99999/").status_code == 404
    # signed in without a role: neither
    stranger = token_client(person("stranger", can_ask=False, role=None))
    assert stranger.get(f"/api/gate/decisions/{rows[0]['id']}/").status_code == 403


def test_the_button_on_the_candidates_page_asks_and_the_decision_is_listed(world, client):
    # given: a team lead who may ask, on the candidate's shadow page
    lead = person("lead", can_ask=True)
    client.force_login(lead)
    page = client.get("/shadow/cand/").content.decode()
    assert 'id="release-gate"' in page and 'action="/gate/ask/"' in page and "No gate decision about cand" in page

    # when: she presses the button
    r = client.post("/gate/ask/", {"candidate": "cand", "baseline": "base", "back": "/shadow/cand/"})

    # then: recorded as hers, from the web, and she lands on the decision
    row = GateDecision.objects.get()
    assert (row.requested_by, row.via, row.auth, row.decision) == ("lead", "web", "session", "ship")
    assert r.status_code == 302 and r.url == f"/gate/decisions/{row.pk}/"
    detail = client.get(r.url).content.decode()
    assert 'data-decision="ship"' in detail and escape(row.reasons[0]) in detail and row.policy_sha256 in detail
    assert 'id="evidence-critical"' in detail and "FAITHFULNESS.HALLUCINATION" in detail
    # listed on the release's gate page, and linked from the candidate's page
    listing = client.get("/gate/releases/cand/").content.decode()
    assert f'data-id="{row.pk}"' in listing and 'data-decision="ship"' in listing
    assert f"/gate/decisions/{row.pk}/" in client.get("/shadow/cand/").content.decode()
    assert f'data-id="{row.pk}"' in client.get("/gate/").content.decode()


def test_the_page_refuses_to_ask_without_the_permission_and_explains_usage_errors(world, client):
    client.force_login(person("viewer", can_ask=False))
    assert 'action="/gate/ask/"' not in client.get("/gate/releases/cand/").content.decode()
    assert client.post("/gate/ask/", {"candidate": "cand", "baseline": "base"}).status_code == 403
    assert not GateDecision.objects.exists()
    client.force_login(person("lead", can_ask=True))
    r = client.post("/gate/ask/", {"candidate": "cand", "baseline": "ghost", "back": "/gate/releases/cand/"},
                    follow=True)
    assert "The gate was not asked — --baseline: no release named &#x27;ghost&#x27;" in r.content.decode()
    assert not GateDecision.objects.exists()


def test_the_admin_lists_decisions_read_only(world, client):
    admin = User.objects.create_superuser("root", password="pw-root-1")
    token_client(person("ci-bot", can_ask=True, role=None)).post(
        "/api/gate/", {"candidate": "cand", "baseline": "base"}, format="json")
    client.force_login(admin)
    row = GateDecision.objects.get()
    listing = client.get("/admin/gate/gatedecision/").content.decode()
    assert "ci-bot" in listing and row.policy_sha256[:12] in listing
    detail = client.get(f"/admin/gate/gatedecision/{row.pk}/change/").content.decode()
    assert "&quot;pairs&quot;: 300" in detail or '"pairs": 300' in detail
    assert client.post(f"/admin/gate/gatedecision/{row.pk}/delete/").status_code == 403
