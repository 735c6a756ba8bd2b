"""Erasure and retention (issue #19 item 5): erase_subject leaves no raw text of the user in turns,
events, mirrored answers, shadow pairs, test items or Label Studio; RAW_RETENTION_DAYS drops raw text
of older turns while signals, labels and rates stay; both are idempotent and audited."""
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import call_command
from django.test import override_settings

from labelling.models import Annotation, BatchItem, LabelStudioProject, TaskLink
from labelling.services.projects import get_client
from labelling.services.selection import batch_select
from production import selectors as production_selectors
from production.models import ErasureTombstone, Event, MirroredAnswer, PrivacyAudit, Session, Turn, TurnSignals
from production.services.privacy import subject_hash
from shadow.models import ShadowPair
from shadow.services.mirror import mirror_pairs_sync
from testsets.models import TestItem
from testsets.selectors import erased_subject_items
from testsets.services.privacy import user_pseudonym
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze, version_sha256
from tests.shadow_helpers import ingest_turns, release, taxonomy

JANE = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"
# Jane's personal data: it may survive her erasure nowhere.
JANE_PII = (CARD, PHONE, JANE, "jane.doe")
# What else she typed: gone from everything but frozen test items, which keep it redacted.
JANE_SAYS = (*JANE_PII, "My card", "my flat in Leeds", "refund to the card")


def run_json(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _log(day: str = "2026-10-01") -> list[dict]:
    """Jane's session (two turns, events, a mirrored answer) and Bob's, on `day`."""
    t = f"{day}T10:00:00Z"
    return [
        {"id": f"{JANE}-1", "session_id": JANE, "user_id": JANE, "timestamp": t, "model": "bot-1",
         "query": f"My card {CARD} was charged twice for my flat in Leeds", "response": f"Call {PHONE}.",
         "contexts": [f"Refunds go to {JANE}"], "metadata": {"release": "prod-1", "city": "Leeds"},
         "events": [{"type": "thumbs_down"},
                    {"type": "escalation", "reason": f"user gave {CARD}"}]},
        {"id": f"{JANE}-2", "session_id": JANE, "user_id": JANE, "timestamp": f"{day}T10:00:40Z", "model": "bot-1",
         "query": f"my card {CARD} was charged twice, refund to the card", "response": "Done."},
        {"type": "shadow", "turn_id": f"{JANE}-1", "release": "cand-1", "response": f"I see card {CARD}."},
        {"id": "bob-1", "session_id": "bob-s", "user_id": "bob", "timestamp": t, "model": "bot-1",
         "query": "where is my parcel", "response": "On its way.", "events": [{"type": "thumbs_down"}]},
        {"type": "shadow", "turn_id": "bob-1", "release": "cand-1", "response": "Arriving tomorrow."},
    ]


def _world():
    taxonomy()
    release()
    ingest_turns(_log(), source="pii")
    call_command("detect_signals", stdout=io.StringIO())
    mirror_pairs_sync()
    batch_select(failures=True, sample=0, month="2026-10", seed=0)
    project = LabelStudioProject.objects.get_or_create(title=f"t-{uuid.uuid4().hex[:8]}",
                                                       defaults={"ls_project_id": 10_000})[0]
    for n, item in enumerate(BatchItem.objects.select_related("turn"), start=1):
        Annotation.objects.create(ls_annotation_id=n, project=project, item=item, ls_task_id=n, annotator="ann@corp.example",
                                  verdict="incorrect", failure_modes=["INTENT"], taxonomy_version=1,
                                  reference_answer=f"Refund to the card {CARD}.", notes=f"she wrote {JANE}",
                                  result=[{"type": "choices", "value": {"choices": ["incorrect"]}},
                                          {"type": "textarea", "value": {"text": [f"refund to the card {CARD}"]}}])


def _test_items() -> str:
    return json.dumps(list(TestItem.objects.values("key", "query", "response", "reference_answer", "contexts",
                                                   "conversation", "provenance")))


def _jane_rows() -> str:
    """Everything evalgap stores that could hold Jane's raw words (test items aside), as one text."""
    jane_turns = Turn.objects.filter(session__external_id__in=[JANE, *Session.objects.filter(
        turns__user_id=JANE).values_list("external_id", flat=True)]) | Turn.objects.filter(user_id=JANE)
    return json.dumps([
        list(Turn.objects.values("external_id", "user_id", "query", "response", "contexts", "metadata")),
        list(Session.objects.values("external_id")),
        list(Event.objects.values("turn_external_id", "corrected_response", "actor", "reason", "payload")),
        list(MirroredAnswer.objects.values("turn_external_id", "response")),
        list(TurnSignals.objects.values("corrected_response", "evidence")),
        list(ShadowPair.objects.values("candidate_answer", "outcome_reason")),
        list(Annotation.objects.filter(item__turn__in=jane_turns).values("reference_answer", "notes", "result")),
        list(ErasureTombstone.objects.values()), list(PrivacyAudit.objects.values("subject_sha256", "counts")),
    ], default=str)


@pytest.mark.django_db
def test_erase_subject_leaves_no_raw_text_of_the_user_and_a_rerun_changes_nothing(admin):
    # given Jane's and Bob's turns, labelled, mirrored, and promoted into a frozen version
    _world()
    assert [s for s in JANE_SAYS if s in _jane_rows()]  # planted where it should be
    testset_promote()
    version = testset_freeze(name="production")
    jane_items = version.items.filter(provenance__user_id=user_pseudonym(source="pii", user_id=JANE)).count()
    assert jane_items >= 1 and version.item_count >= 2
    bob_before = Turn.objects.values("query", "response").get(external_id="bob-1")
    flags_before = dict(TurnSignals.objects.values_list("turn__external_id", "thumbs_down"))

    # when Jane is erased
    result = run_json("erase_subject", "--user-id", JANE)

    # then none of her words or ids remain anywhere
    assert result["turns"] == 2 and result["events"] >= 2 and result["mirrored_answers"] == 1
    assert result["shadow_pairs"] == 1 and result["annotations_emptied"] >= 1
    rows = _jane_rows()
    assert [s for s in JANE_SAYS if s in rows] == []
    assert [s for s in JANE_PII if s in _test_items()] == []
    # her turns stay as rows (signals, labels, release) without text
    jane = Turn.objects.filter(raw_dropped_at__isnull=False)
    assert jane.count() == 2 and set(jane.values_list("query", flat=True)) == {""}
    assert Turn.objects.get(metadata__release="prod-1").metadata == {"release": "prod-1"}
    assert set(Annotation.objects.values_list("verdict", flat=True)) == {"incorrect"}
    assert set(TurnSignals.objects.values_list("thumbs_down", flat=True)) == set(flags_before.values())
    # Bob is untouched
    assert Turn.objects.values("query", "response").get(external_id="bob-1") == bob_before
    assert ShadowPair.objects.get(turn__external_id="bob-1").candidate_answer == "Arriving tomorrow."
    # the tombstone holds a keyed hash, no identity; the frozen version is valid and counts her items
    tomb = ErasureTombstone.objects.get()
    assert tomb.subject_sha256 == result["subject_sha256"] == subject_hash(JANE) and JANE not in str(tomb.__dict__)
    version.refresh_from_db()
    assert version_sha256(version) == version.sha256 and erased_subject_items(version) == jane_items
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin)
    listed = api.get("/api/testsets/").json()[0]["versions"][0]
    assert (listed["number"], listed["erased_subject_items"], listed["redacted"]) == (1, jane_items, True)
    audit = PrivacyAudit.objects.get()
    assert (audit.action, audit.subject_sha256, audit.counts["turns"]) == ("erase_subject", tomb.subject_sha256, 2)

    # and running it again is a no-op, audited
    snapshot = _jane_rows()
    again = run_json("erase_subject", "--user-id", JANE)
    assert again["turns"] == again["events"] == again["mirrored_answers"] == 0
    assert PrivacyAudit.objects.count() == 2 and ErasureTombstone.objects.get().counts == tomb.counts
    assert _jane_rows().split('"counts"')[0] == snapshot.split('"counts"')[0]


@pytest.mark.django_db
def test_the_erase_api_is_for_admins_only(admin, viewer):
    from rest_framework.test import APIClient

    _world()
    client = APIClient()
    client.force_authenticate(viewer)
    assert client.post("/api/privacy/erase/", {"user_id": JANE}, format="json").status_code == 403
    assert Turn.objects.filter(user_id=JANE).count() == 2 and not PrivacyAudit.objects.exists()
    client.force_authenticate(admin)
    resp = client.post("/api/privacy/erase/", {"user_id": JANE}, format="json")
    assert resp.status_code == 200 and resp.json()["turns"] == 2
    assert PrivacyAudit.objects.get().actor == admin.username
    assert client.post("/api/privacy/erase/", {}, format="json").status_code == 400


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_erase_subject_deletes_the_users_label_studio_tasks_only():
    with override_settings(LABEL_STUDIO_PROJECT_TITLE=f"test-{uuid.uuid4().hex[:10]}"):
        taxonomy()
        ingest_turns(_log(), source="pii")
        call_command("detect_signals", stdout=io.StringIO())
        batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
        run_json("push_to_labelstudio", "--batch", str(batch))
        project = LabelStudioProject.objects.get()
        client = get_client()

        def tasks():
            return {t.id if hasattr(t, "id") else t["id"] for t in client._ls.tasks.list(project=project.ls_project_id)}

        links = dict(TaskLink.objects.values_list("item__turn__user_id", "ls_task_id"))
        jane_tasks = set(TaskLink.objects.filter(item__turn__user_id=JANE).values_list("ls_task_id", flat=True))
        assert jane_tasks and links["bob"] in tasks() and jane_tasks <= tasks()

        result = run_json("erase_subject", "--user-id", JANE)

        assert result["label_studio_tasks_deleted"] == len(jane_tasks)
        left = tasks()
        assert not (jane_tasks & left) and links["bob"] in left
        # a later push of the batch sends nothing again
        again = run_json("push_to_labelstudio", "--batch", str(batch))
        assert again["pushed"] == 0 and tasks() == left
        assert run_json("erase_subject", "--user-id", JANE)["turns"] == 0 and tasks() == left


@pytest.mark.django_db
def test_retention_drops_old_raw_text_and_keeps_signals_labels_and_rates(settings):
    # given turns of October (old) and of now (recent), labelled
    _world()
    recent_day = datetime.now(timezone.utc).date().isoformat()
    ingest_turns([{**r, "id": f"new-{r['id']}", "session_id": f"new-{r['session_id']}"} for r in _log(recent_day)
                  if r.get("type") != "shadow"], source="pii")
    call_command("detect_signals", stdout=io.StringIO())
    old = Turn.objects.filter(timestamp__lt=datetime.now(timezone.utc) - timedelta(days=30))
    n_old = old.count()
    assert n_old == 3
    rates = production_selectors.signal_rates_daily(by_model=True)
    flags = list(TurnSignals.objects.order_by("turn_id").values_list("turn_id", "thumbs_down", "failure_candidate",
                                                                      "rephrased"))
    labels = list(Annotation.objects.order_by("id").values_list("verdict", "failure_modes"))

    # with no retention configured, nothing is dropped (and the run is audited)
    settings.RAW_RETENTION_DAYS = None
    assert run_json("apply_retention")["turns"] == 0 and not Turn.objects.filter(query="").exists()

    # when retention is 30 days
    settings.RAW_RETENTION_DAYS = 30
    result = run_json("apply_retention")

    # then the old turns lost their text, the recent ones kept it
    assert result["turns"] == n_old and result["retention_days"] == 30
    assert set(old.values_list("query", flat=True)) == {""} and set(old.values_list("response", flat=True)) == {""}
    assert not Event.objects.filter(turn__in=old).exclude(reason="").exists()
    assert not MirroredAnswer.objects.filter(turn__in=old).exclude(response="").exists()
    assert Turn.objects.exclude(query="").count() == Turn.objects.count() - n_old
    assert CARD in Turn.objects.get(external_id=f"new-{JANE}-1").query
    # signals, labels and rates are what they were
    assert production_selectors.signal_rates_daily(by_model=True) == rates
    assert list(TurnSignals.objects.order_by("turn_id").values_list(
        "turn_id", "thumbs_down", "failure_candidate", "rephrased")) == flags
    assert list(Annotation.objects.order_by("id").values_list("verdict", "failure_modes")) == labels
    # idempotent and audited
    assert run_json("apply_retention")["turns"] == 0
    assert list(PrivacyAudit.objects.order_by("id").values_list("action", flat=True)) == ["apply_retention"] * 3
