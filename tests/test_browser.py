"""The web UI in a real browser: Playwright drives Debian's Chromium against the live test server.

Chromium comes from apt (scripts/chromium.sh), not from `playwright install`, which needs a
download this machine cannot make. A missing Chromium fails these tests: skipping would let the
UI go untested without anyone noticing.

Set EVALGAP_SCREENSHOT_DIR to keep a full-page screenshot of every page visited.
"""
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from playwright.sync_api import expect, sync_playwright

from production.selectors import signal_rates_daily
from taxonomy.models import FailureMode, Proposal
from test_dashboard import build_world  # tests/ is on sys.path (rootdir conftest, no package)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ADMIN, PASSWORD = "alice-admin", "pw-alice-1"


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is missing: the browser tests drive Debian's chromium. Install it with "
                    "scripts/chromium.sh (apt-get install -y chromium) or set CHROMIUM_PATH.", pytrace=False)
    return path


@pytest.fixture
def world(transactional_db, tmp_path, settings):
    settings.LOGIN_URL = "/accounts/login/"
    admins = Group.objects.create(name="taxonomy admins")
    admins.permissions.add(Permission.objects.get(codename="govern_taxonomy"))
    User.objects.create_user(ADMIN, password=PASSWORD).groups.add(admins)
    FailureMode.objects.get_or_create(code="FORMAT", defaults={"name": "Wrong format"})
    return build_world(tmp_path)


@pytest.fixture
def page(world, live_server, monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; Django would take the test's own ORM
    # calls for calls from async code. The live server answers from its own thread either way.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.base = live_server.url
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("EVALGAP_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page, next_path: str = "/") -> None:
    page.goto(page.base + next_path)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    shot(page, "login")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(page.base + next_path)


def test_signing_in_shows_the_overview_with_its_charts_drawn_from_the_data(page, world):
    sign_in(page)
    days = len({r["date"] for r in signal_rates_daily(by_model=False)})

    chart = page.locator('svg[data-chart="signal-rates-daily"]')
    expect(chart).to_be_visible()
    expect(chart).to_have_accessible_name("Signal rates per day, all models")
    expect(chart.locator("g.series")).to_have_count(5)
    expect(chart.locator("circle.point")).to_have_count(5 * days)
    assert chart.get_attribute("data-points") == str(5 * days)
    expect(page.locator('svg[data-chart="signal-rates-rephrase"] g.series')).to_have_count(2)
    pareto = page.locator('svg[data-chart="failure-mode-pareto"] rect.bar')
    expect(pareto).to_have_count(4)
    assert pareto.first.get_attribute("data-label") == "COMPLETENESS.NO_ANSWER"
    expect(page.locator('tr[data-project="evalgap: production answers"]')).to_contain_text("10")
    shot(page, "overview")


def test_a_frozen_versions_jsonl_downloads_with_all_its_items(page, world):
    sign_in(page, "/testsets/")
    shot(page, "testsets")
    with page.expect_download() as download:
        page.locator('tr[data-version="2"] a.download[data-format="jsonl"]').click()
    assert download.value.suggested_filename.endswith(".jsonl")
    lines = Path(download.value.path()).read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    assert len(rows) == world["v2"].item_count == 8
    assert {r["query"] for r in rows} == {i.turn.query for i in world["items"][:8]}

    # the pages around it, for the screenshots and to see they draw
    page.goto(page.base + "/testsets/production/v2/")
    expect(page.locator('svg[data-chart="coverage-modes"] rect.bar')).not_to_have_count(0)
    shot(page, "version")
    page.goto(page.base + "/testsets/production/")
    page.get_by_role("button", name="Show changelog").click()
    expect(page.locator("#added-count")).to_have_text("3")
    shot(page, "changelog")


def test_an_admin_approves_a_proposal_and_the_taxonomy_shows_the_new_mode(page, world):
    proposal = world["proposal"]
    # A taxonomy change makes the worker push the new config to every Label Studio project; this
    # one exists only in our database, so it goes (with its labels) rather than fail that job.
    world["project"].delete()
    sign_in(page, "/taxonomy/")
    card = page.locator(f'[data-proposal="{proposal.pk}"]')
    card.get_by_text("Approve…").click()
    shot(page, "taxonomy")
    card.get_by_label("new code").fill("FORMAT.LANGUAGE")
    card.get_by_label("name", exact=True).fill("Wrong language")
    card.get_by_label("parent").select_option("FORMAT")
    card.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("status")).to_contain_text("approved as FORMAT.LANGUAGE")
    expect(page.locator('tr.mode[data-code="FORMAT.LANGUAGE"]')).to_contain_text("Wrong language")
    expect(page.locator(f'[data-proposal="{proposal.pk}"]')).to_have_count(0)
    shot(page, "taxonomy-after")
    mode = FailureMode.objects.get(code="FORMAT.LANGUAGE")
    assert mode.parent.code == "FORMAT"
    assert Proposal.objects.get(pk=proposal.pk).status == "approved"
