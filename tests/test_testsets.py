"""Taxonomy governance, promotion, frozen versions, changelog and permissions (no Label Studio needed)."""
import io
import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from core.pii import pseudonym
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, Resolution
from labelling.selectors import turns_before
from labelling.services.push import task_payload
from production.models import Session, Source, Turn
from taxonomy import services as tax
from taxonomy.models import FailureMode, Proposal, TaxonomyChange
from taxonomy.selectors import current_version, resolve_code
from testsets.models import PromotionHold, TestItem, TestSetVersion
from testsets.selectors import changelog, coverage
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze, version_sha256
from tests.factories import AnnotationFactory, BatchItemFactory, SessionFactory, SourceFactory, TurnFactory

_n = iter(range(1, 10_000_000))


@pytest.fixture
def world(db):
    source = Source.objects.create(name="bot")
    return {"source": source, "session": Session.objects.create(source=source, external_id="s"),
            "batch": LabellingBatch.objects.create(month="2026-10"),
            "project": LabelStudioProject.objects.create(title="t", ls_project_id=1)}


def item(world, turn_id, query="how do i reset my password", stratum="failure", p=1.0):
    turn = Turn.objects.create(source=world["source"], session=world["session"], external_id=turn_id, query=query,
                               response="Go to settings.", contexts=["Passwords: Settings > Security."])
    return BatchItem.objects.create(batch=world["batch"], turn=turn, stratum=stratum, inclusion_probability=p,
                                    query_key=turn_id)


def annotate(world, it, verdict, modes=(), reference="", who="ann-1", proposed=""):
    n = next(_n)
    return Annotation.objects.create(ls_annotation_id=n, project=world["project"], item=it, ls_task_id=n,
                                     annotator=who, verdict=verdict, failure_modes=list(modes),
                                     reference_answer=reference, proposed_failure_mode=proposed, taxonomy_version=1)


def annotator_pseudonym(who, source="bot"):
    """How annotators (and a resolving admin) appear in test items: the annotations API's pseudonym."""
    return pseudonym(f"{source}\x1f{who}", key=settings.PII_PSEUDONYM_KEY.encode(), kind="annotator")


def run_json(*args):
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


# --- promotion -------------------------------------------------------------------------------------

def test_promotion_rules_promote_what_is_judged_and_hold_back_the_rest_with_reasons(world):
    ok = item(world, "ok")
    annotate(world, ok, "incorrect", ["RETRIEVAL.MISS"], reference="Use 'Forgot password'.")
    good = item(world, "good")
    annotate(world, good, "correct")
    no_ref = item(world, "no-ref")
    annotate(world, no_ref, "partially_correct", ["COMPLETENESS.PARTIAL"])
    unsure = item(world, "unsure")
    annotate(world, unsure, "cannot_judge")
    split = item(world, "split")
    annotate(world, split, "correct", who="a")
    annotate(world, split, "incorrect", reference="x", who="b")
    agreed = item(world, "agreed")
    for who in ("a", "b", "c"):
        annotate(world, agreed, "incorrect" if who != "c" else "correct", ["INTENT"], reference="Right answer", who=who)
    item(world, "never-judged")

    assert run_json("promote") == {"promoted": 3, "held_back": 3}

    draft = TestSetVersion.objects.get(testset__name="production", status="draft")
    assert sorted(draft.items.values_list("key", flat=True)) == ["turn:bot:agreed", "turn:bot:good", "turn:bot:ok"]
    reasons = dict(PromotionHold.objects.values_list("item__turn__external_id", "reason"))
    assert "no reference answer" in reasons["no-ref"]
    assert reasons["unsure"] == "verdict is cannot_judge"
    assert "annotators disagree" in reasons["split"]
    ok_item = draft.items.get(key="turn:bot:ok")
    assert (ok_item.verdict, ok_item.failure_modes, ok_item.reference_answer) == (
        "incorrect", ["RETRIEVAL.MISS"], "Use 'Forgot password'.")
    prov = ok_item.provenance
    assert prov["turn_id"] == "ok" and prov["source"] == "bot" and prov["annotators"] == [annotator_pseudonym("ann-1")]
    assert prov["stratum"] == "failure" and prov["inclusion_probability"] == 1.0 and prov["taxonomy_versions"] == [1]
    assert draft.items.get(key="turn:bot:agreed").provenance["annotators"] == sorted(
        annotator_pseudonym(who) for who in ("a", "b", "c"))
    # promoting again changes nothing
    assert run_json("promote") == {"promoted": 0, "held_back": 3}


def test_a_test_item_keeps_the_conversation_the_annotator_saw(db, settings):
    # given a four-turn session whose third turn was judged (Label Studio showed the two before it)
    settings.LABELLING_CONVERSATION_TURNS = 5
    session = SessionFactory(source=SourceFactory(name="chat", redact_pii=False))
    first, second, judged, later = (TurnFactory(session=session) for _ in range(4))
    item = AnnotationFactory(item=BatchItemFactory(turn=judged), verdict="correct").item

    # when it is promoted
    assert testset_promote() == {"promoted": 1, "held_back": 0}

    # then the test item holds those two turns, as the task pushed to Label Studio showed them
    kept = TestItem.objects.get(key=f"turn:chat:{judged.external_id}")
    assert kept.conversation == [
        {"role": "user", "content": first.query}, {"role": "assistant", "content": first.response},
        {"role": "user", "content": second.query}, {"role": "assistant", "content": second.response}]
    shown = task_payload(item, turns_before([item])[item.pk])["data"]["conversation"]
    assert kept.conversation == shown
    assert later.query not in str(kept.conversation)
    # and a first turn keeps an empty conversation (Label Studio shows a note instead)
    AnnotationFactory(item=BatchItemFactory(turn=first), verdict="correct")
    testset_promote()
    assert TestItem.objects.get(key=f"turn:chat:{first.external_id}").conversation == []


def test_an_admin_resolution_promotes_a_disputed_item(world):
    split = item(world, "split")
    annotate(world, split, "correct", who="a")
    annotate(world, split, "incorrect", who="b")
    admin = User.objects.create_user("admin")
    Resolution.objects.create(item=split, verdict="incorrect", failure_modes=["INTENT"], reference_answer="R",
                              reason="b is right", resolved_by=admin)
    assert testset_promote() == {"promoted": 1, "held_back": 0}
    test_item = TestItem.objects.get(key="turn:bot:split")
    assert test_item.provenance["resolved_by"] == annotator_pseudonym("admin") and test_item.verdict == "incorrect"


# --- versions ------------------------------------------------------------------------------------------

def test_freeze_gives_a_hashed_version_whose_items_the_database_refuses_to_change(world):
    it = item(world, "a")
    annotate(world, it, "incorrect", ["INTENT"], reference="R")
    testset_promote()
    summary = run_json("freeze_testset", "production", "--note", "first")
    version = TestSetVersion.objects.get(number=1)
    assert summary == {"testset": "production", "version": 1, "items": 1, "sha256": version.sha256}
    assert version.status == "frozen" and len(version.sha256) == 64

    frozen_item = version.items.get()
    for sql, params in [
        ("UPDATE testsets_testitem SET query = 'changed' WHERE id = %s", [frozen_item.pk]),
        ("DELETE FROM testsets_testitem WHERE id = %s", [frozen_item.pk]),
        ("UPDATE testsets_testsetversion SET status = 'draft' WHERE id = %s", [version.pk]),
    ]:
        with pytest.raises(DatabaseError, match="frozen"), transaction.atomic():
            with connection.cursor() as c:
                c.execute(sql, params)
    with pytest.raises(DatabaseError, match="frozen"), transaction.atomic():
        TestItem.objects.create(version=version, key="sneaky", source="x", query="q", verdict="correct",
                                content_sha256="0")
    frozen_item.refresh_from_db()
    assert frozen_item.query == "how do i reset my password"


def test_the_hash_is_stable_and_only_depends_on_content(world):
    for k in ("b", "a", "c"):
        annotate(world, item(world, k, query=f"question {k}"), "correct")
    testset_promote()
    v1 = testset_freeze(name="production")
    assert version_sha256(v1) == v1.sha256  # recomputed later: same
    # the same items promoted in another order into another set hash the same
    TestItem.objects.filter(version__testset__name="other").delete()
    from testsets.models import TestSet
    other = TestSet.objects.create(name="other")
    draft = TestSetVersion.objects.create(testset=other, number=1)
    for i in reversed(list(v1.items.all())):
        TestItem.objects.create(version=draft, **{f: getattr(i, f) for f in (
            "key", "source", "query", "response", "reference_answer", "contexts", "conversation", "verdict",
            "failure_modes", "stratum", "inclusion_probability", "provenance", "content_sha256")})
    assert testset_freeze(name="other").sha256 == v1.sha256


def test_changelog_between_versions(world):
    a, b = item(world, "a"), item(world, "b")
    annotate(world, a, "incorrect", ["INTENT"], reference="R")
    annotate(world, b, "correct")
    testset_promote()
    testset_freeze(name="production")
    # v2: a is re-judged (changed), c is added; b stays
    Annotation.objects.filter(item=a).update(failure_modes=["OUTDATED"])
    annotate(world, item(world, "c", stratum="none", p=0.25), "incorrect", ["OUTDATED"], reference="R2")
    testset_promote()
    testset_freeze(name="production")
    log = changelog(name="production", old=1, new=2)
    assert log["added"] == ["turn:bot:c"] and log["removed"] == [] and log["changed"] == ["turn:bot:a"]
    assert log["failure_modes"]["INTENT"] == {"from": 1, "to": 0, "delta": -1}
    assert log["failure_modes"]["OUTDATED"] == {"from": 0, "to": 2, "delta": 2}
    assert log["strata"]["none"] == {"from": 0, "to": 1, "delta": 1}
    cov = coverage(name="production", number=2)
    outdated = next(m for m in cov["failure_modes"] if m["code"] == "OUTDATED")
    # production rate weights each judged item by 1/p: a (w=1, OUTDATED), b (w=1), c (w=4, OUTDATED)
    assert outdated["items"] == 2 and outdated["production_rate"] == pytest.approx(5 / 6, abs=1e-4)


# --- governance ---------------------------------------------------------------------------------------

def test_a_merge_remaps_labels_and_drafts_but_not_frozen_versions(world):
    it = item(world, "a")
    ann = annotate(world, it, "incorrect", ["RETRIEVAL.IRRELEVANT", "INTENT"], reference="R")
    testset_promote()
    frozen = testset_freeze(name="production")
    annotate(world, item(world, "b"), "incorrect", ["RETRIEVAL.IRRELEVANT"], reference="R")
    testset_promote()
    admin = User.objects.create_user("root", is_superuser=True)
    version_before = current_version()

    tax.failure_mode_merge(code="RETRIEVAL.IRRELEVANT", into="RETRIEVAL.MISS", user=admin, reason="same thing")

    ann.refresh_from_db()
    assert ann.failure_modes == ["RETRIEVAL.MISS", "INTENT"]
    assert resolve_code("RETRIEVAL.IRRELEVANT") == "RETRIEVAL.MISS"
    draft = TestSetVersion.objects.get(status="draft")
    assert draft.items.get(key="turn:bot:b").failure_modes == ["RETRIEVAL.MISS"]
    assert frozen.items.get().failure_modes == ["INTENT", "RETRIEVAL.IRRELEVANT"]  # untouched
    merged = FailureMode.objects.get(code="RETRIEVAL.IRRELEVANT")
    assert not merged.active and merged.merged_into.code == "RETRIEVAL.MISS"
    change = TaxonomyChange.objects.get(action="merge")
    assert (change.actor, change.reason, change.details) == ("root", "same thing", {"into": "RETRIEVAL.MISS"})
    assert current_version() == version_before + 1


def test_codes_are_never_reused_and_cycles_are_refused(db):
    tax.failure_mode_retire(code="SAFETY", reason="out of scope")
    with pytest.raises(tax.TaxonomyError, match="never reused"):
        tax.failure_mode_create(code="SAFETY", name="Safety again")
    with pytest.raises(tax.TaxonomyError, match="below it"):
        tax.failure_mode_reparent(code="RETRIEVAL", parent_code="RETRIEVAL.MISS")


def test_proposals_from_annotations_are_grouped_and_approved(world):
    p1 = tax.proposal_submit(text="Answer cites a source that does not exist", ref="annotation:1")
    p2 = tax.proposal_submit(text="cites a source that doesn't exist", ref="annotation:2")
    p3 = tax.proposal_submit(text="Too long", ref="annotation:3")
    assert p1.pk == p2.pk != p3.pk
    assert tax.proposal_submit(text="Answer cites a source that does not exist", ref="annotation:1").refs == [
        "annotation:1", "annotation:2"]
    admin = User.objects.create_user("root", is_superuser=True)
    mode = tax.proposal_approve(proposal=Proposal.objects.get(pk=p1.pk), code="FAITHFULNESS.FAKE_CITATION",
                                name="Fake citation", parent_code="FAITHFULNESS", user=admin, reason="seen 2x")
    assert mode.parent.code == "FAITHFULNESS" and Proposal.objects.get(pk=p1.pk).status == "approved"
    tax.proposal_reject(proposal=p3, reason="a style issue, covered by FORMAT", user=admin)
    assert Proposal.objects.get(pk=p3.pk).decision_reason == "a style issue, covered by FORMAT"


@pytest.fixture
def personas(taxonomy_admin, annotator):
    clients = {}
    for name, user in (("admin", taxonomy_admin), ("annotator", annotator), ("outsider", None)):
        c = APIClient()
        if user:
            c.force_authenticate(user)
        clients[name] = c
    return clients


def test_only_admins_change_the_taxonomy_and_everyone_signed_in_reads_it(personas, taxonomy_admin):
    create = {"action": "create", "code": "TONE", "name": "Wrong tone", "reason": "users complain"}
    assert personas["outsider"].get("/api/taxonomy/").status_code == 401  # no credentials: authenticate first
    assert personas["annotator"].get("/api/taxonomy/").status_code == 200
    assert personas["annotator"].post("/api/taxonomy/actions/", create, format="json").status_code == 403
    assert personas["outsider"].post("/api/taxonomy/actions/", create, format="json").status_code == 401
    assert not FailureMode.objects.filter(code="TONE").exists()

    resp = personas["admin"].post("/api/taxonomy/actions/", create, format="json")
    assert resp.status_code == 200, resp.content
    assert FailureMode.objects.filter(code="TONE").exists()
    assert TaxonomyChange.objects.get(action="create", code="TONE").actor == taxonomy_admin.username
    bad = personas["admin"].post("/api/taxonomy/actions/", {"action": "merge", "code": "TONE", "into": "NOPE"},
                                 format="json")
    assert bad.status_code == 400 and "NOPE" in bad.json()["detail"]
    history = personas["annotator"].get("/api/taxonomy/history/").json()
    assert history[0]["code"] == "TONE" and history[0]["reason"] == "users complain"
