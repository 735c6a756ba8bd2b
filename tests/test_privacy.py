"""Privacy by design for test sets (issue #19 item 1): promotion stores redacted, pseudonymised text;
every role that may export gets the same bytes; versions frozen with raw text are admins' only, and
`redact_version` freezes a redacted successor."""
import hashlib
import io
import json

import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from core.pii import pseudonym
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject
from labelling.selectors import turns_before
from labelling.services.push import task_payload
from production.models import Session, Source, Turn
from testsets.models import TestItem, TestSetVersion
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze, version_sha256

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
ANNOTATOR = "alice.annotator@corp.example"
# Every planted value, as it must never appear in what a redacted version stores.
PLANTED = (CARD, EMAIL, PHONE, ANNOTATOR, "jane.doe", "alice.annotator")


def _pseudonym(value, kind, source="bot"):
    return pseudonym(f"{source}\x1f{value}", key=settings.PII_PSEUDONYM_KEY.encode(), kind=kind)


@pytest.fixture
def planted(db):
    """A judged turn full of personal data: in its id, session, user, query, answer, contexts, the turn
    before it, the annotator's address and reference answer."""
    source = Source.objects.create(name="bot")
    session = Session.objects.create(source=source, external_id=EMAIL)
    Turn.objects.create(source=source, session=session, external_id=f"{EMAIL}-0", user_id=EMAIL,
                        query=f"hi, I am {EMAIL}", response="Hello!")
    turn = Turn.objects.create(source=source, session=session, external_id=f"{EMAIL}-1", user_id=EMAIL,
                               query=f"My card {CARD} was charged twice", response=f"Call us at {PHONE}.",
                               contexts=[f"Refunds: write to {EMAIL}", {"phone": PHONE}])
    item = BatchItem.objects.create(batch=LabellingBatch.objects.create(month="2026-11"), turn=turn,
                                    stratum="failure", inclusion_probability=0.5, query_key="k")
    project = LabelStudioProject.objects.create(title="t", ls_project_id=1)
    Annotation.objects.create(ls_annotation_id=1, project=project, item=item, ls_task_id=1, annotator=ANNOTATOR,
                              verdict="incorrect", failure_modes=["INTENT"], taxonomy_version=1,
                              reference_answer=f"Refund card {CARD}; confirm to {EMAIL}.")
    return item


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def export(user, fmt="jsonl", number=1):
    resp = client_for(user).get(f"/api/testsets/production/versions/{number}/export/{fmt}/")
    return resp.status_code, (b"".join(resp.streaming_content) if resp.status_code == 200 else resp.content)


def test_promotion_stores_redacted_pseudonymised_text_as_label_studio_showed_it(planted):
    # when the judged item is promoted
    assert testset_promote() == {"promoted": 1, "held_back": 0}

    # then nothing planted is stored, in any field
    stored = TestItem.objects.get()
    dump = json.dumps({f: getattr(stored, f) for f in ("key", "query", "response", "reference_answer", "contexts",
                                                        "conversation", "provenance")})
    assert not [p for p in PLANTED if p in dump]
    # the text is what Label Studio's task shows, and ids are Label Studio's pseudonyms
    shown = task_payload(planted, turns_before([planted])[planted.pk])["data"]
    assert (stored.query, stored.response) == (shown["query"], shown["response"])
    assert stored.conversation == shown["conversation"]
    assert stored.query == "My card [CARD] was charged twice" and "[EMAIL]" in stored.reference_answer
    prov = stored.provenance
    assert prov["session_id"] == shown["session_id"] == _pseudonym(EMAIL, "session")
    assert prov["user_id"] == shown["user_id"] == _pseudonym(EMAIL, "user")
    assert prov["turn_id"] == shown["evalgap_id"] and stored.key == f"turn:bot:{shown['evalgap_id']}"
    # annotators by the pseudonym the annotations API shows them under
    assert prov["annotators"] == [_pseudonym(ANNOTATOR, "annotator")]
    # and the raw text is still in the production turn
    assert Turn.objects.get(external_id=f"{EMAIL}-1").query == f"My card {CARD} was charged twice"


def test_every_role_that_may_export_gets_the_same_bytes_and_no_planted_pii(planted, admin, taxonomy_admin, viewer,
                                                                          annotator):
    testset_promote()
    version = testset_freeze(name="production")
    assert version.redacted

    for fmt in ("jsonl", "csv"):
        bodies = {}
        for user in (admin, taxonomy_admin, viewer):
            code, body = export(user, fmt)
            assert code == 200, (user.username, fmt, body[:200])
            bodies[user.username] = body
            assert not [p for p in PLANTED if p.encode() in body], (user.username, fmt)
        assert len(set(bodies.values())) == 1, fmt
    # the version's hash covers exactly what it stores (the JSONL export is its canonical bytes)
    _, jsonl = export(viewer, "jsonl")
    assert hashlib.sha256(jsonl).hexdigest() == version.sha256 == version_sha256(version)
    # who may not export at all, may not
    assert export(annotator)[0] == 403


def _legacy_version(planted) -> TestSetVersion:
    """A version as frozen before this change: raw text, raw ids, annotators' addresses."""
    from testsets.models import TestSet

    turn = planted.turn
    testset = TestSet.objects.create(name="production")
    draft = TestSetVersion.objects.create(testset=testset, number=1, redacted=False)
    raw = {"key": f"turn:bot:{turn.external_id}", "source": "bot", "query": turn.query, "response": turn.response,
           "reference_answer": f"Refund card {CARD}.", "contexts": turn.contexts,
           "conversation": [{"role": "user", "content": f"hi, I am {EMAIL}"}, {"role": "assistant", "content": "Hello!"}],
           "verdict": "incorrect", "failure_modes": ["INTENT"], "stratum": "failure", "inclusion_probability": 0.5,
           "provenance": {"turn_id": turn.external_id, "source": "bot", "session_id": EMAIL, "annotators": [ANNOTATOR],
                          "resolved_by": None}}
    TestItem.objects.create(version=draft, content_sha256="0" * 64, **raw)
    return testset_freeze(name="production", note="frozen before redaction")


def test_a_version_frozen_with_raw_text_is_read_by_admins_only(planted, admin, viewer, taxonomy_admin):
    legacy = _legacy_version(planted)
    assert not legacy.redacted

    code, body = export(admin)
    assert code == 200 and CARD.encode() in body  # admins still read what was frozen
    for user in (viewer, taxonomy_admin):
        code, body = export(user)
        assert code == 403 and b"redact_version" in body and CARD.encode() not in body
        assert client_for(user).get("/api/testsets/production/versions/1/coverage/").status_code == 403
        assert client_for(user).post("/api/testsets/production/versions/1/exports/",
                                     {"format": "csv"}).status_code == 403
    # the flag of a frozen version is guarded like its hash
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        TestSetVersion.objects.filter(pk=legacy.pk).update(redacted=True)


def test_redact_version_freezes_a_redacted_successor_with_a_note_saying_why(planted, admin, viewer):
    legacy = _legacy_version(planted)

    out = io.StringIO()
    call_command("redact_version", "production", "1", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["from"] == 1 and summary["version"] == 2 and summary["items"] == 1 and summary["created"]

    successor = TestSetVersion.objects.get(testset__name="production", number=2)
    assert successor.redacted and successor.status == "frozen" and "redacted successor of v1" in successor.note
    assert successor.sha256 == version_sha256(successor) != legacy.sha256
    code, body = export(viewer, number=2)
    assert code == 200 and not [p for p in PLANTED if p.encode() in body]
    item = json.loads(body)
    assert item["provenance"]["annotators"] == [_pseudonym(ANNOTATOR, "annotator")]
    assert item["provenance"]["user_id"] == _pseudonym(EMAIL, "user")  # looked up from the turn
    # the changelog says why
    log = client_for(admin).get("/api/testsets/production/changelog/?from=1&to=2").json()
    assert "redacted successor of v1" in log["note"] and log["redacted"] == {"from": False, "to": True}
    # the old version is unchanged, still admins' only
    assert export(viewer, number=1)[0] == 403
    assert TestSetVersion.objects.get(pk=legacy.pk).sha256 == legacy.sha256

    # running it again is a no-op
    out = io.StringIO()
    call_command("redact_version", "production", "1", "--json", stdout=out)
    again = json.loads(out.getvalue())
    assert again["version"] == 2 and not again["created"]
    assert TestSetVersion.objects.filter(testset__name="production").count() == 2


def test_a_draft_begun_before_redaction_is_redacted_at_the_next_promotion(planted):
    from testsets.models import TestSet

    testset = TestSet.objects.create(name="production")
    draft = TestSetVersion.objects.create(testset=testset, number=1, redacted=False)
    TestItem.objects.create(version=draft, key="turn:bot:old", source="bot", query=f"mail {EMAIL}", verdict="correct",
                            provenance={"turn_id": "old", "session_id": EMAIL, "annotators": [ANNOTATOR]},
                            content_sha256="0" * 64)

    testset_promote()

    draft.refresh_from_db()
    assert draft.redacted
    dump = json.dumps(list(draft.items.values("key", "query", "provenance")))
    assert not [p for p in PLANTED if p in dump]


def test_erasure_reports_the_raw_items_a_version_frozen_before_redaction_still_holds(planted):
    # given a version frozen with the raw text of the planted user's turn
    legacy = _legacy_version(planted)
    from production.services.privacy import subject_erase

    # when the user is erased
    result = subject_erase(user_id=EMAIL)

    # then the frozen version is unchanged (the database keeps it) and the erasure says what it holds
    assert result["items_in_unredacted_versions"] == 1
    assert TestSetVersion.objects.get(pk=legacy.pk).sha256 == legacy.sha256 == version_sha256(legacy)
    assert subject_erase(user_id=EMAIL)["items_in_unredacted_versions"] == 0  # nothing left found by user id
