"""Roles and data access: every URL of the URL conf has a rule here, and every rule is tried with
every persona — allowed ones get through, refused ones get 401/403 (or the login page) and leave the
database exactly as it was. A URL added without a rule fails `test_every_url_has_an_access_rule`."""
import hashlib
import io
import json

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import user_with_role
from core.roles import ROLES, Allow, role_of
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, TaskLink
from production.models import Event, IngestJob, RejectedLine, Session, Source, Turn, TurnSignals
from releases.models import Release
from testsets.models import TestItem, TestSet, TestSetVersion
from testsets.services.exports import export_now
from testsets.services.versions import testset_freeze

STAFF = ("admin", "taxonomy_admin", "viewer")  # who reads dashboards, redacted turns and frozen exports
EVERYONE_HUMAN = ("admin", "taxonomy_admin", "viewer", "annotator")
PERSONAS = (*ROLES, "no_role")  # plus the anonymous stranger, tried on every URL

PII_QUERY = "my email is jane.doe@example.com, why was I charged twice?"


def _ingest_body():
    return {"data": b'{"id": "t-new", "session_id": "s-new", "timestamp": "2026-10-01T09:00:00Z", '
                    b'"query": "q", "response": "r"}\n', "content_type": "application/x-ndjson"}


def _otlp_body():
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
            "startTimeUnixNano": "1790000000000000000", "endTimeUnixNano": "1790000001000000000",
            "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                           {"key": "input.value", "value": {"stringValue": "q"}},
                           {"key": "output.value", "value": {"stringValue": "r"}}]}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return {"data": json.dumps(body).encode(), "content_type": "application/json"}


# URL name -> {method: (roles allowed, request kwargs or a function of the world giving them)}.
# `kwargs` are the URL's arguments; `body` the request body for POSTs.
RULES = {
    "schema": {"GET": ((*STAFF, "ingest"), {})},
    "api-docs": {"GET": ((*STAFF, "ingest"), {})},
    "labelling-webhook": "public: authenticated by Label Studio's shared secret header (test_labelling)",
    "labelling-agreement": {"GET": (STAFF, {})},
    "labelling-batch-list": {"GET": (STAFF, {})},
    "labelling-batch-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["batch"].pk}})},
    "annotation-list": {"GET": (STAFF, {})},
    "annotation-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["annotation"].pk}})},
    "taxonomy": {"GET": (EVERYONE_HUMAN, {})},
    "taxonomy-actions": {"POST": (("admin", "taxonomy_admin"), {"body": lambda persona: {
        "data": {"action": "create", "code": f"TONE_{persona.upper()}", "name": "Wrong tone"}, "format": "json"}})},
    "taxonomy-history": {"GET": (EVERYONE_HUMAN, {})},
    "testsets": {"GET": (STAFF, {})},
    "testset-changelog": {"GET": (STAFF, {"kwargs": {"name": "production"}, "query": "?from=1&to=1"})},
    "testset-coverage": {"GET": (STAFF, {"kwargs": {"name": "production", "number": 1}})},
    "testset-export": {"GET": (STAFF, {"kwargs": {"name": "production", "number": 1, "fmt": "jsonl"}})},
    "testset-exports": {"POST": (STAFF, {"kwargs": {"name": "production", "number": 1},
                                         "body": {"data": {"format": "jsonl"}, "format": "json"}})},
    "testset-export-job": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["export_job"].pk}})},
    "testset-export-download": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["export_job"].pk}})},
    "testsets-web:export": {"GET": (STAFF, {"kwargs": {"name": "production", "number": 1, "fmt": "jsonl"}})},
    "generation:report": {"GET": (STAFF, {})},
    "generation:report-mode": {"GET": (STAFF, {"kwargs": {"code": "INTENT"}})},
    "release-list": {"GET": (STAFF, {}),
                     "POST": (("admin",), {"body": {"data": {"name": "r-new", "model": "m"}, "format": "json"}})},
    "release-detail": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "ingest": {"POST": (("admin", "ingest"), {"query": "?source=bot", "body": _ingest_body()})},
    "otlp-traces": {"POST": (("admin", "ingest"), {"query": "?source=bot", "body": _otlp_body()})},
    "otlp-traces-langfuse": {"POST": (("admin", "ingest"), {"query": "?source=bot", "body": _otlp_body()})},
    "signals-daily": {"GET": (STAFF, {})},
    # erasing a production user is the admin's (an unknown user: nothing to erase, still audited)
    "erase-subject": {"POST": (("admin",), {"body": {"data": {"user_id": "nobody"}, "format": "json"}})},
    "ingest-job-list": {"GET": (("admin", "ingest"), {})},
    # the ingest service's own job; another's is a 404 for it (test_an_ingest_token_sees_only_its_own_jobs)
    "ingest-job-detail": {"GET": (("admin", "ingest"), {"kwargs": lambda w: {"pk": w["job"].pk}})},
    "turn-list": {"GET": (STAFF, {})},
    "turn-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["turn"].pk}})},
    "session-list": {"GET": (STAFF, {})},
    "session-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["turn"].session_id}})},
    "event-list": {"GET": (STAFF, {})},
    "event-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["event"].pk}})},
    "rejected-line-list": {"GET": (("admin",), {})},
    "rejected-line-detail": {"GET": (("admin",), {"kwargs": lambda w: {"pk": w["reject"].pk}})},
    "failure-list": {"GET": (STAFF, {})},
    "failure-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["turn"].pk}})},
    "generation-web:report": {"GET": (STAFF, {})},
    "generation-web:report-mode": {"GET": (STAFF, {"kwargs": {"code": "INTENT"}})},
    "dashboard:overview": {"GET": (STAFF, {})},
    "dashboard:login": "public: the sign-in form",
    "health": "public: the container healthcheck (says ok or unavailable, nothing else)",
    "evalgap-events-js": "public: the browser-events script a web app includes",
    "browser-events": "public: a publishable key's origin may add browser events (tests/test_browser_events.py)",
    "dashboard:logout": "public: signing out",
    "dashboard:testsets": {"GET": (STAFF, {})},
    "dashboard:testset": {"GET": (STAFF, {"kwargs": {"name": "production"}})},
    "dashboard:changelog": {"GET": (STAFF, {"kwargs": {"name": "production"}, "query": "?from=1&to=1"})},
    "dashboard:version": {"GET": (STAFF, {"kwargs": {"name": "production", "number": 1}})},
    "dashboard:taxonomy": {"GET": (EVERYONE_HUMAN, {})},
    "dashboard:shadow": {"GET": (STAFF, {})},
    "dashboard:shadow-release": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "dashboard:shadow-pairs": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "dashboard:shadow-pair": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["pair"].pk}})},
    "shadow-report": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "shadow-daily": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "shadow-audit-agreement": {"GET": (STAFF, {})},
    "shadow-pair-list": {"GET": (STAFF, {})},
    "shadow-pair-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["pair"].pk}})},
    # starting paid work (LLM calls) is the admin's; the body names an unknown release: 400 once allowed
    "shadow-run-list": {"GET": (STAFF, {}), "POST": (("admin",), {"body": {"data": {"release": "nope"},
                                                                             "format": "json"}})},
    "shadow-run-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["shadow_run"].pk}})},
    "shadow-judge-run-list": {"GET": (STAFF, {}), "POST": (("admin",), {"body": {"data": {"release": "nope"},
                                                                                   "format": "json"}})},
    "shadow-judge-run-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["judge_run"].pk}})},
    "shadow-calibration-list": {"GET": (STAFF, {})},
    "dashboard:correlation": {"GET": (STAFF, {})},
    "evaluation-correlation": {"GET": (STAFF, {})},
    "evaluation-signal-validity": {"GET": (STAFF, {})},
    "evaluation-production-rates": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "evaluation-alarms": {"GET": (STAFF, {})},
    "evaluation-offline-run": {"GET": (STAFF, {"kwargs": lambda w: {"run_id": w["offline_run"].pk}})},
    # starting an offline run (paid LLM calls) is the admin's; an unknown release: 400 once allowed
    "evaluation-offline-runs": {"GET": (STAFF, {}), "POST": (("admin",), {"body": {"data": {
        "release": "nope", "testset": "production", "version": 1}, "format": "json"}})},
    "shadow-calibration-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["calibration"].pk}})},
    # reading decisions: dashboards; asking the gate (it records a decision a CI job acts on): the
    # admin's (or a CI bot given gate.ask_gate); an unknown candidate: 400 / back to the page once allowed
    "gate": {"POST": (("admin",), {"body": {"data": {"candidate": "nope", "baseline": "r1"}, "format": "json"}})},
    "gate-decision-list": {"GET": (STAFF, {})},
    "gate-decision-detail": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["decision"].pk}})},
    "dashboard:gate": {"GET": (STAFF, {})},
    "dashboard:gate-release": {"GET": (STAFF, {"kwargs": {"name": "r1"}})},
    "dashboard:gate-decision": {"GET": (STAFF, {"kwargs": lambda w: {"pk": w["decision"].pk}})},
    "dashboard:gate-ask": {"POST": (("admin",), {"body": {"data": {"candidate": "nope", "baseline": "r1"}}})},
    "dashboard:taxonomy-action": {"POST": (("admin", "taxonomy_admin"),
                                           {"body": {"data": {"action": "create", "code": "TONE",
                                                              "name": "Wrong tone"}}})},
}
# The Django admin is for the admin role only (is_staff); these stand for all of its URLs.
ADMIN_SITE = ["admin:index", "admin:production_turn_changelist", "admin:production_rejectedline_changelist",
              "admin:labelling_webhookdelivery_changelist", "admin:auth_user_changelist"]


def url_names() -> dict:
    """Every named URL outside the Django admin, with its view."""
    out = {}

    def walk(patterns, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace == "admin":
                    continue
                walk(p.url_patterns, f"{namespace}{p.namespace}:" if p.namespace else namespace)
            elif isinstance(p, URLPattern):
                assert p.name, f"URL {p.pattern} has no name: name it and give it a rule in RULES"
                out[namespace + p.name] = p.callback

    walk(get_resolver().url_patterns, "")
    return out


def test_every_url_has_an_access_rule():
    found = url_names()
    missing = sorted(set(found) - set(RULES))
    assert not missing, f"URLs without an access rule in tests/test_roles.py RULES: {missing}"
    assert not sorted(set(RULES) - set(found)), "RULES names URLs that no longer exist"
    for name, view in found.items():
        cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
        if isinstance(RULES[name], str):  # public by design
            assert getattr(view, "evalgap_public", False) or getattr(getattr(view, "view_class", None),
                                                                     "evalgap_public", False) or \
                getattr(getattr(cls, "dispatch", None), "evalgap_public", False), f"{name}: mark it core.roles.public"
        elif hasattr(cls, "permission_classes"):
            rules = [p for p in view.initkwargs.get("permission_classes", cls.permission_classes)
                     if hasattr(p, "rules")]
            assert rules, f"{name}: a DRF view needs permission_classes = [core.roles.Allow(...)]"
        else:
            assert getattr(view, "evalgap_perms", None), f"{name}: a page needs @core.roles.require_perm(...)"


@pytest.fixture
def world(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.INGEST_SPOOL_DIR = tmp_path / "spool"
    users = {role: user_with_role(f"u-{role}", role) for role in ROLES}
    from django.contrib.auth.models import User

    users["no_role"] = User.objects.create_user("u-no-role")
    source = Source.objects.create(name="bot")
    session = Session.objects.create(source=source, external_id="s-1")
    turn = Turn.objects.create(source=source, session=session, external_id="t-1", query=PII_QUERY,
                               response="Call +44 20 7946 0958.", user_id="jane@example.com",
                               contexts=["jane.doe@example.com is the account"])
    TurnSignals.objects.create(turn=turn, thumbs_down=True, failure_candidate=True)
    event = Event.objects.create(source=source, turn_external_id="t-1", turn=turn, type="human_override",
                                 corrected_response="Write to jane.doe@example.com", fingerprint="f1")
    job = IngestJob.objects.create(source=source, origin="api", created_by=users["ingest"])
    reject = RejectedLine.objects.create(source=source, origin="api", line_no=1, reason="bad", raw="{secret",
                                         raw_sha1="x")
    batch = LabellingBatch.objects.create(month="2026-10")
    project = LabelStudioProject.objects.create(title="p", ls_project_id=1)
    item = BatchItem.objects.create(batch=batch, turn=turn, stratum="failure", inclusion_probability=1.0,
                                    query_key="k")
    TaskLink.objects.create(item=item, project=project, ls_task_id=11)
    annotation = Annotation.objects.create(ls_annotation_id=1, project=project, item=item, ls_task_id=11,
                                           annotator="ann@example.com", verdict="incorrect",
                                           reference_answer="mail jane.doe@example.com")
    testset = TestSet.objects.create(name="production")
    draft = TestSetVersion.objects.create(testset=testset, number=1)
    TestItem.objects.create(version=draft, key="turn:bot:t-1", source="bot", query="q", verdict="correct",
                            content_sha256="0")
    testset_freeze(name="production")
    export_job = export_now(version=TestSetVersion.objects.get(testset=testset, number=1), fmt="jsonl")
    release = Release.objects.create(name="r1", model="m")
    from datetime import date

    from evaluation.models import OfflineRun
    from gate.services import gate_decide
    from shadow.models import JudgeCalibration, JudgeRun, ShadowPair, ShadowRun

    pair = ShadowPair.objects.create(turn=turn, release=release, origin="replay", session=session, day=date(2026, 10, 1),
                                     candidate_answer="write to jane.doe@example.com")
    return {"users": users, "turn": turn, "event": event, "job": job, "reject": reject, "batch": batch,
            "annotation": annotation, "pair": pair, "export_job": export_job,
            "shadow_run": ShadowRun.objects.create(release=release, day=date(2026, 10, 1), sample_size=1, salt="s"),
            "judge_run": JudgeRun.objects.create(judge_model="j", prompt_version="v1"),
            "offline_run": OfflineRun.objects.create(release=release, version=TestSetVersion.objects.get(
                testset__name="production", number=1), mode="served"),
            "decision": gate_decide(candidate="r1", baseline=Release.objects.create(name="r0", model="m0").name,
                                    requested_by="u-admin", via="cli"),
            "calibration": JudgeCalibration.objects.create(name="c", sha256="0" * 64, judge_model="j",
                                                           prompt_version="v1")}


def client_for(world, persona):
    """Token auth for the API (the ingest service has nothing else) and a session for pages."""
    client = APIClient()
    if persona == "anonymous":
        return client
    user = world["users"][persona]
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    client.force_login(user)
    return client


def db_state() -> str:
    """A digest of every row of every table (the fixture's database is small)."""
    h = hashlib.sha256()
    for model in apps.get_models():
        meta = model._meta
        if not meta.managed or meta.proxy or meta.label in ("sessions.Session",):
            continue
        rows = sorted(repr(r) for r in model.objects.values_list())
        h.update(f"{meta.label}:{len(rows)}:".encode())
        for r in rows:
            h.update(r.encode())
    return h.hexdigest()


def _refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("name", [n for n, r in RULES.items() if not isinstance(r, str)])
def test_each_persona_is_allowed_or_refused_and_a_refusal_changes_nothing(world, name):
    for method, (allowed, spec) in RULES[name].items():
        kwargs = spec.get("kwargs", {})
        kwargs = kwargs(world) if callable(kwargs) else kwargs
        url = reverse(name, kwargs=kwargs) + spec.get("query", "")
        for persona in (*PERSONAS, "anonymous"):
            client = client_for(world, persona)
            before = db_state()
            body = spec.get("body", {})
            body = body(persona) if callable(body) else body
            response = getattr(client, method.lower())(url, **body)
            what = f"{method} {url} as {persona}: {response.status_code}"
            if persona in allowed:
                # a POST past the permission check may still be a bad request (shadow runs are not started)
                assert not _refused(response) and response.status_code < (500 if method == "POST" else 400), what
            else:
                assert _refused(response), what
                assert db_state() == before, f"{what}: the database changed after a refusal"


@pytest.mark.parametrize("name", ADMIN_SITE)
def test_the_django_admin_is_for_the_admin_role_only(world, name):
    url = reverse(name)
    for persona in (*PERSONAS, "anonymous"):
        client = Client()
        if persona != "anonymous":
            client.force_login(world["users"][persona])
        response = client.get(url)
        if persona == "admin":
            assert response.status_code == 200, f"{url} as admin"
        else:
            assert response.status_code == 302 and "/admin/login/" in response["Location"], f"{url} as {persona}"


def test_a_viewer_sees_turns_redacted_and_an_admin_sees_them_raw(world):
    viewer, admin = client_for(world, "viewer"), client_for(world, "admin")
    seen = viewer.get("/api/turns/").json()["results"][0]
    raw = admin.get("/api/turns/").json()["results"][0]
    assert raw["query"] == PII_QUERY and raw["user_id"] == "jane@example.com"
    assert "jane.doe@example.com" not in json.dumps(seen) and "jane@example.com" not in json.dumps(seen)
    assert "[EMAIL]" in seen["query"] and "why was I charged twice?" in seen["query"]
    assert "7946" not in seen["response"] and seen["contexts"] == ["[EMAIL] is the account"]
    assert seen["user_id"].startswith("user-")  # the pseudonym annotators see in Label Studio
    assert seen["user_id"] == viewer.get(f"/api/turns/{world['turn'].pk}/").json()["user_id"]  # stable
    failure = viewer.get("/api/failures/").json()["results"][0]
    assert "jane.doe" not in json.dumps(failure)
    event = viewer.get("/api/events/").json()["results"][0]
    assert event["corrected_response"] == "Write to [EMAIL]"
    annotation = viewer.get("/api/labelling/annotations/").json()["results"][0]
    assert "jane.doe" not in annotation["reference_answer"] and annotation["annotator"].startswith("annotator-")
    pair = viewer.get("/api/shadow/pairs/").json()["results"][0]
    assert "jane" not in json.dumps(pair) and pair["candidate_answer"] == "write to [EMAIL]"
    assert admin.get("/api/shadow/pairs/").json()["results"][0]["candidate_answer"] == "write to jane.doe@example.com"
    page = Client()
    page.force_login(world["users"]["viewer"])
    html = page.get(f"/shadow/pairs/{world['pair'].pk}/").content.decode()
    assert "jane" not in html and "write to [EMAIL]" in html


def test_the_overview_page_shows_a_viewer_redacted_turn_text(world):
    viewer, admin = Client(), Client()
    viewer.force_login(world["users"]["viewer"])
    admin.force_login(world["users"]["admin"])
    waiting = Turn.objects.create(source=world["turn"].source, session=world["turn"].session, external_id="t-2",
                                  query="ping jane.doe@example.com now")
    TurnSignals.objects.create(turn=waiting, thumbs_down=True, failure_candidate=True)  # not yet labelled
    assert "jane.doe@example.com" in admin.get("/").content.decode()
    page = viewer.get("/").content.decode()
    assert "jane.doe@example.com" not in page and "ping [EMAIL] now" in page


def test_an_ingest_token_sees_only_its_own_jobs(world):
    other = IngestJob.objects.create(source=world["turn"].source, origin="api", created_by=world["users"]["admin"])
    service = client_for(world, "ingest")
    listing = service.get("/api/ingest/jobs/").json()["results"]
    assert [j["id"] for j in listing] == [world["job"].pk]
    assert service.get(f"/api/ingest/jobs/{other.pk}/").status_code == 404
    assert {j["id"] for j in client_for(world, "admin").get("/api/ingest/jobs/").json()["results"]} == {
        world["job"].pk, other.pk}


def test_a_spooled_ingest_job_belongs_to_whoever_posted_it(world, settings):
    settings.INGEST_SYNC_MAX_BYTES = 10
    settings.CELERY_TASK_ALWAYS_EAGER = True
    service = client_for(world, "ingest")
    response = service.post("/api/ingest/?source=bot", **_ingest_body())
    assert response.status_code == 202, response.content
    job = IngestJob.objects.get(pk=response.json()["id"])
    assert job.created_by == world["users"]["ingest"]
    assert service.get(f"/api/ingest/jobs/{job.pk}/").status_code == 200


def test_list_endpoints_cap_the_page_size(world, settings):
    settings.API_MAX_PAGE_SIZE = 2
    source = world["turn"].source
    for i in range(4):
        Turn.objects.create(source=source, session=world["turn"].session, external_id=f"x-{i}", query="q")
    admin = client_for(world, "admin")
    page = admin.get("/api/turns/?limit=1000000").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert len(admin.get("/api/turns/").json()["results"]) == 2  # the default never exceeds the cap either


def test_a_rule_with_an_unknown_permission_is_refused_at_import():
    with pytest.raises(AssertionError, match="unknown permission"):
        Allow(GET="production.view_evrything")


# --- user_add -------------------------------------------------------------------------------------

def run_user_add(*args) -> dict:
    out = io.StringIO()
    call_command("user_add", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_user_add_creates_a_user_with_a_role_and_a_token(db):
    made = run_user_add("ingest-svc", "--role", "ingest", "--token")
    assert set(made) == {"user", "role", "token"} and made["user"] == "ingest-svc" and made["role"] == "ingest"
    assert Token.objects.get(user__username="ingest-svc").key == made["token"]
    # again: the same token, no second user
    assert run_user_add("ingest-svc", "--role", "ingest", "--token") == made
    assert run_user_add("vic", "--role", "viewer") == {"user": "vic", "role": "viewer"}
    from django.contrib.auth.models import User

    vic = User.objects.get(username="vic")
    assert role_of(vic) == "viewer" and not vic.is_staff and not vic.has_usable_password()
    # a role change replaces the role (one role per user); admin is a superuser, and only admin
    run_user_add("vic", "--role", "admin")
    vic = User.objects.get(username="vic")
    assert role_of(vic) == "admin" and vic.is_superuser and vic.is_staff
    run_user_add("vic", "--role", "annotator")
    vic = User.objects.get(username="vic")
    assert role_of(vic) == "annotator" and not vic.is_superuser
    assert list(vic.groups.values_list("name", flat=True)) == ["annotator"]


def test_user_add_refuses_an_unknown_role(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("user_add", "x", "--role", "root", stdout=io.StringIO())


def test_an_ingest_token_can_ingest_and_nothing_else(db, settings):
    token = run_user_add("svc", "--role", "ingest", "--token")["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/ingest/?source=svc", **_ingest_body()).json()["created"] == 1
    for url in ("/api/turns/", "/api/rejects/", "/api/sessions/", "/api/labelling/annotations/", "/api/testsets/",
                "/api/taxonomy/", "/api/signals/daily/"):
        assert client.get(url).status_code == 403, url
