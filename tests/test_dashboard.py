"""The web UI: sign-in, the overview's charts and tables, test sets, and taxonomy review by role."""
import io
import json
import re
from itertools import count, islice
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, TaskLink
from production.selectors import failure_candidates, signal_rates_daily
from taxonomy.models import FailureMode, TaxonomyChange
from taxonomy.services import proposal_submit
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "canard_log.jsonl"
SECOND_MODEL = "quac-span-answerer-v2"
# Labels for the labelled failure candidates, in order: a Pareto with a clear head and a tail.
LABELS = [["COMPLETENESS.NO_ANSWER"], ["COMPLETENESS.NO_ANSWER", "RETRIEVAL.MISS"], ["COMPLETENESS.NO_ANSWER"],
          ["RETRIEVAL.MISS"], ["INTENT"], ["COMPLETENESS.NO_ANSWER"], ["CONTEXT"], ["RETRIEVAL.MISS"]]
_ids = count(700_000)

pytestmark = pytest.mark.usefixtures("login_url")


@pytest.fixture
def login_url(settings):
    settings.LOGIN_URL = "/accounts/login/"


def build_world(tmp_path, *, lines: int = 300) -> dict:
    """Real CANARD lines through ingest and detection, labels on some failure candidates, a frozen
    v1 and v2 of the production test set, and one pending proposal."""
    # Every other session is served by a second model, so the per-model charts have two series.
    log, sessions = tmp_path / "canard.jsonl", {}
    with EXAMPLE.open() as f, log.open("w") as out:
        for line in islice(f, lines):
            row = json.loads(line)
            if "session_id" in row and sessions.setdefault(row["session_id"], len(sessions)) % 2:
                row["model"] = SECOND_MODEL
            out.write(json.dumps(row) + "\n")
    # Detection runs here, not in the worker after ingest: the data must be complete on return. The
    # lexical detector is fast and needs no encoder.
    with override_settings(SIGNALS_DETECT_AFTER_INGEST=False, SIGNALS_SEMANTIC=False):
        call_command("ingest", str(log), "--source", "canard", stdout=io.StringIO())
        call_command("detect_signals", stdout=io.StringIO())

    project = LabelStudioProject.objects.create(title="evalgap: production answers", ls_project_id=next(_ids))
    batch = LabellingBatch.objects.create(month="2026-09")
    candidates = list(failure_candidates().order_by("id")[:len(LABELS) + 2])  # two pushed but not labelled
    assert len(candidates) == len(LABELS) + 2, "the example lines should hold enough failure candidates"
    items = []
    for turn in candidates:
        item = BatchItem.objects.create(batch=batch, turn=turn, stratum="failure", inclusion_probability=1.0,
                                        query_key=turn.external_id)
        TaskLink.objects.create(item=item, project=project, ls_task_id=next(_ids))
        items.append(item)

    def label(item, modes):
        n = next(_ids)
        Annotation.objects.create(ls_annotation_id=n, project=project, item=item, ls_task_id=item.task.ls_task_id,
                                  annotator="ann-1", verdict="incorrect", failure_modes=modes,
                                  reference_answer=f"The right answer to: {item.turn.query}", taxonomy_version=1)

    for item, modes in zip(items[:5], LABELS[:5]):
        label(item, modes)
    testset_promote()
    v1 = testset_freeze(name="production", note="first five")
    for item, modes in zip(items[5:len(LABELS)], LABELS[5:]):
        label(item, modes)
    testset_promote()
    v2 = testset_freeze(name="production", note="three more")
    proposal = proposal_submit(text="Answers in the wrong language", ref="annotation:1")
    return {"project": project, "items": items, "v1": v1, "v2": v2, "proposal": proposal}


@pytest.fixture
def world(db, tmp_path):
    return build_world(tmp_path)


@pytest.fixture
def personas(taxonomy_admin, annotator):
    clients = {"outsider": Client()}
    for name, user in (("admin", taxonomy_admin), ("annotator", annotator)):
        clients[name] = Client()
        clients[name].force_login(user)
    return clients


def svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg[^>]*data-chart="{chart_id}".*?</svg>', html, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


# --- sign-in ---------------------------------------------------------------------------------------

PAGES = ["/", "/testsets/", "/testsets/production/", "/testsets/production/v1/",
         "/testsets/production/changelog/?from=1&to=2", "/taxonomy/"]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_sends_a_stranger_to_the_login_form(db, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_signing_in_through_the_form_leads_to_the_overview(db):
    User.objects.create_user("carol", password="pw-carol-1")
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post("/accounts/login/", {"username": "carol", "password": "wrong"})
    assert bad.status_code == 200 and b"correct username and password" in bad.content
    ok = client.post("/accounts/login/", {"username": "carol", "password": "pw-carol-1"})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/").status_code == 200
    out = client.post("/accounts/logout/")
    assert out.status_code == 302 and client.get("/").status_code == 302


# --- overview --------------------------------------------------------------------------------------

def test_overview_charts_rates_per_day_and_model_with_the_data(world, personas):
    response = personas["annotator"].get("/")
    assert response.status_code == 200
    html = response.content.decode()

    days = {r["date"] for r in signal_rates_daily(by_model=False)}
    assert len(days) >= 5
    daily = svg(html, "signal-rates-daily")
    # five signals, one point per signal per day, each point with its value and a tooltip
    assert f'data-points="{5 * len(days)}"' in daily and 'data-series="5"' in daily
    assert daily.count('<circle class="point"') == 5 * len(days)
    assert "<title id=\"signal-rates-daily-title\">Signal rates per day, all models</title>" in daily
    for label in ("follow-up", "rephrase", "abandonment", "copy", "override"):
        assert f'data-series="{label}"' in daily
        per_model = svg(html, f"signal-rates-{label}")
        assert 'data-series="2"' in per_model and f'data-series="{SECOND_MODEL}"' in per_model
    per_model_points = len(signal_rates_daily(by_model=True))
    assert svg(html, "signal-rates-follow-up").count('<circle class="point"') == per_model_points


def test_overview_shows_waiting_candidates_labelling_progress_and_the_pareto(world, personas):
    html = personas["annotator"].get("/").content.decode()

    # failure candidates not yet pushed for labelling
    waiting = failure_candidates().filter(labelling_item__isnull=True).count()
    assert waiting > 0
    assert f"failure candidates waiting (of {waiting + len(world['items'])})" in html
    assert html.count('<tr class="candidate">') == min(waiting, 10)

    # 10 tasks, 8 labelled by one annotator
    row = re.search(r'<tr data-project="evalgap: production answers">(.*?)</tr>', html, re.S).group(1)
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)] == [10, 8, 8, 1]

    pareto = svg(html, "failure-mode-pareto")
    bars = re.findall(r'<rect class="bar"[^>]*data-label="([^"]+)" data-value="(\d+)"', pareto)
    assert bars == [("COMPLETENESS.NO_ANSWER", "4"), ("RETRIEVAL.MISS", "3"), ("CONTEXT", "1"), ("INTENT", "1")]
    assert "100% cum." in pareto


def test_overview_renders_empty_charts_before_any_data(db, personas):
    html = personas["annotator"].get("/").content.decode()
    assert 'data-chart="signal-rates-daily"' in html and 'data-points="0"' in html and "No data yet" in html


# --- test sets --------------------------------------------------------------------------------------

def test_test_set_pages_show_versions_changelog_coverage_and_downloads(world, personas):
    client = personas["annotator"]
    listing = client.get("/testsets/").content.decode()
    assert 'data-testset="production"' in listing
    assert listing.count('<tr class="version"') == 2
    assert '/api/testsets/production/versions/1/export/jsonl/' in listing

    log = client.get("/testsets/production/changelog/?from=1&to=2")
    assert log.status_code == 200
    html = log.content.decode()
    assert '<b id="added-count">3</b>' in html and '<b id="removed-count">0</b>' in html
    expected = sorted(f"turn:canard:{i.turn.external_id}" for i in world["items"][5:8])
    assert re.findall(r'data-change="added"><td>.*?<code>([^<]+)</code>', html) == expected
    assert re.search(r'data-code="CONTEXT"><td>CONTEXT</td><td class="num">0</td><td class="num">1</td>', html)

    assert client.get("/testsets/production/changelog/?from=1&to=9").status_code == 400

    coverage = client.get("/testsets/production/v2/").content.decode()
    chart = svg(coverage, "coverage-modes")
    assert 'data-label="COMPLETENESS.NO_ANSWER" data-series="share in set" data-value="0.5"' in chart
    assert coverage.count('<tr class="coverage-mode"') == 4

    assert client.get("/testsets/production/v7/").status_code == 404
    assert client.get("/testsets/nope/").status_code == 404


def test_the_download_link_serves_the_frozen_version_as_jsonl(world, personas):
    client = personas["annotator"]
    html = client.get("/testsets/production/v2/").content.decode()
    link = re.search(r'href="([^"]+/versions/2/export/jsonl/)"', html).group(1)
    response = client.get(link)
    assert response.status_code == 200
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines() if line.strip()]
    assert len(rows) == world["v2"].item_count == 8
    assert {r["query"] for r in rows} == {i.turn.query for i in world["items"][:8]}


# --- taxonomy ---------------------------------------------------------------------------------------

def test_everyone_signed_in_reads_the_taxonomy_but_only_admins_see_the_actions(world, personas):
    FailureMode.objects.get_or_create(code="FORMAT", defaults={"name": "Wrong format"})
    annotator = personas["annotator"].get("/taxonomy/").content.decode()
    assert 'data-code="FORMAT"' in annotator and "Answers in the wrong language" in annotator
    assert "<form method=\"post\" action=\"/taxonomy/actions/\"" not in annotator
    assert 'name="action"' not in annotator

    admin = personas["admin"].get("/taxonomy/").content.decode()
    assert admin.count('action="/taxonomy/actions/"') == 3  # approve, reject, and the change form
    assert 'value="approve"' in admin and 'id="taxonomy-change"' in admin


def test_an_annotator_gets_403_on_every_review_action_and_nothing_changes(world, personas):
    proposal = world["proposal"]
    versions_before = TaxonomyChange.objects.count()
    for data in ({"action": "approve", "proposal": proposal.pk, "code": "FORMAT.LANGUAGE", "name": "Wrong language"},
                 {"action": "reject", "proposal": proposal.pk, "reason": "no"},
                 {"action": "create", "code": "TONE", "name": "Wrong tone"}):
        assert personas["annotator"].post("/taxonomy/actions/", data).status_code == 403
    # a stranger is sent to sign in first
    assert personas["outsider"].post("/taxonomy/actions/", {"action": "create"}).status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    assert not FailureMode.objects.filter(code__in=["FORMAT.LANGUAGE", "TONE"]).exists()
    assert TaxonomyChange.objects.count() == versions_before


def test_an_admins_approve_creates_the_mode_and_closes_the_proposal(world, personas):
    FailureMode.objects.get_or_create(code="FORMAT", defaults={"name": "Wrong format"})
    proposal = world["proposal"]
    response = personas["admin"].post("/taxonomy/actions/", {
        "action": "approve", "proposal": proposal.pk, "code": "FORMAT.LANGUAGE", "name": "Wrong language",
        "parent": "FORMAT", "reason": "seen in three sessions"}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "approved as FORMAT.LANGUAGE" in html
    assert 'data-code="FORMAT.LANGUAGE"' in html and f'data-proposal="{proposal.pk}"' not in html

    mode = FailureMode.objects.get(code="FORMAT.LANGUAGE")
    assert (mode.name, mode.parent.code, mode.description) == ("Wrong language", "FORMAT",
                                                               "Answers in the wrong language")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.created_mode, proposal.decided_by) == ("approved", mode, "tara-taxonomy")
    change = TaxonomyChange.objects.get(code="FORMAT.LANGUAGE")
    assert (change.action, change.actor, change.reason) == ("create", "tara-taxonomy", "seen in three sessions")


def test_the_admin_form_renames_merges_and_shows_errors_instead_of_failing(world, personas):
    admin = personas["admin"]
    for code in ("TONE", "STYLE"):
        response = admin.post("/taxonomy/actions/", {"action": "create", "code": code, "name": code.title()})
        assert response.status_code == 302
    admin.post("/taxonomy/actions/", {"action": "rename", "code": "TONE", "name": "Wrong tone", "reason": "clearer"})
    admin.post("/taxonomy/actions/", {"action": "merge", "code": "STYLE", "into": "TONE", "reason": "same thing"})
    tone, style = FailureMode.objects.get(code="TONE"), FailureMode.objects.get(code="STYLE")
    assert tone.name == "Wrong tone" and (style.active, style.merged_into) == (False, tone)

    again = admin.post("/taxonomy/actions/", {"action": "create", "code": "TONE", "name": "x"}, follow=True)
    assert "create not done" in again.content.decode() and "never reused" in again.content.decode()
    missing = admin.post("/taxonomy/actions/", {"action": "merge", "code": "TONE"}, follow=True)
    assert "into: required to merge" in missing.content.decode()
    assert FailureMode.objects.get(code="TONE").name == "Wrong tone"
