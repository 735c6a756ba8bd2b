"""The `critical` flag on taxonomy nodes: seeded on hallucination and unsafe, changed only through
the taxonomy service (audited, versioned), by taxonomy admins only, and read with its subtree."""
import pytest
from django.contrib.auth.models import User

from conftest import user_with_role

from taxonomy import services
from taxonomy.models import FailureMode, TaxonomyChange
from taxonomy.selectors import critical_modes, current_version, failure_mode_tree

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def migrated_taxonomy():
    """The taxonomy as the migrations leave it; a transactional test earlier in the run may have
    flushed it, then the migrations' own seed functions put it back."""
    from tests.gate_helpers import critical_taxonomy

    if not FailureMode.objects.exists():
        critical_taxonomy()


def test_migrations_seed_hallucination_and_unsafe_as_critical_with_their_audit_rows():
    assert set(FailureMode.objects.filter(critical=True).values_list("code", flat=True)) == {
        "FAITHFULNESS.HALLUCINATION", "SAFETY"}
    rows = TaxonomyChange.objects.filter(action="critical").order_by("code")
    assert [(r.code, r.actor, r.details) for r in rows] == [
        ("FAITHFULNESS.HALLUCINATION", "system", {"from": False, "to": True}),
        ("SAFETY", "system", {"from": False, "to": True})]
    assert {m["code"] for m in failure_mode_tree() if m["critical"]} == {"FAITHFULNESS.HALLUCINATION", "SAFETY"}


def test_a_critical_mode_counts_its_subtree_and_the_codes_merged_into_it():
    # given: a child under SAFETY, and a mode merged into it
    services.failure_mode_create(code="SAFETY.PII_LEAK", name="Leaks personal data", parent_code="SAFETY",
                                 reason="split")
    services.failure_mode_create(code="TOXIC", name="Toxic", reason="old")
    services.failure_mode_merge(code="TOXIC", into="SAFETY", reason="same thing")
    # when
    by_code = {m["code"]: m for m in critical_modes()}
    # then
    assert by_code["SAFETY"]["codes"] == ["SAFETY", "SAFETY.PII_LEAK", "TOXIC"]
    assert by_code["FAITHFULNESS.HALLUCINATION"]["codes"] == ["FAITHFULNESS.HALLUCINATION"]


def test_setting_the_flag_is_audited_versioned_and_needs_a_reason():
    before = current_version()
    with pytest.raises(services.TaxonomyError, match="reason"):
        services.failure_mode_set_critical(code="OUTDATED", critical=True, reason=" ")
    services.failure_mode_set_critical(code="OUTDATED", critical=True, user=None, reason="stale prices cost money")
    assert FailureMode.objects.get(code="OUTDATED").critical
    change = TaxonomyChange.objects.order_by("-id").first()
    assert (change.action, change.code, change.details, change.reason) == (
        "critical", "OUTDATED", {"from": False, "to": True}, "stale prices cost money")
    assert current_version() == before + 1
    # setting it again changes nothing and records nothing
    services.failure_mode_set_critical(code="OUTDATED", critical=True, reason="again")
    assert current_version() == before + 1
    services.failure_mode_set_critical(code="OUTDATED", critical=False, reason="prices are live now")
    assert not FailureMode.objects.get(code="OUTDATED").critical
    assert TaxonomyChange.objects.order_by("-id").first().action == "not_critical"


def test_only_taxonomy_admins_change_the_flag_through_the_api(client):
    # given: an outsider signed in, and a taxonomy admin
    from rest_framework.test import APIClient

    outsider = User.objects.create_user("outsider", password="pw-outsider-1")
    admin = user_with_role("tax-admin", "taxonomy_admin", password="pw-admin-1")
    api = APIClient()
    body = {"action": "critical", "code": "REFUSAL", "critical": True, "reason": "over-refusal loses customers"}
    # when / then: the outsider is refused and nothing changes
    api.force_authenticate(outsider)
    assert api.post("/api/taxonomy/actions/", body, format="json").status_code == 403
    assert not FailureMode.objects.get(code="REFUSAL").critical
    # the admin sets it
    api.force_authenticate(admin)
    r = api.post("/api/taxonomy/actions/", body, format="json")
    assert r.status_code == 200, r.content
    assert FailureMode.objects.get(code="REFUSAL").critical
    assert TaxonomyChange.objects.filter(action="critical", code="REFUSAL", actor="tax-admin").count() == 1
    # without a reason: a 400 naming the field
    r = api.post("/api/taxonomy/actions/", {**body, "critical": False, "reason": ""}, format="json")
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    assert FailureMode.objects.get(code="REFUSAL").critical


def test_the_taxonomy_page_shows_and_sets_the_flag(client):
    admin = user_with_role("tax-admin", "taxonomy_admin", password="pw-admin-1")
    client.force_login(admin)
    page = client.get("/taxonomy/").content.decode()
    assert 'data-code="SAFETY"' in page and "tag critical" in page
    r = client.post("/taxonomy/actions/", {"action": "critical", "code": "FORMAT", "critical": "true",
                                           "reason": "wrong language is unusable"})
    assert r.status_code == 302
    assert FailureMode.objects.get(code="FORMAT").critical
    assert TaxonomyChange.objects.filter(action="critical", code="FORMAT", actor="tax-admin").exists()
