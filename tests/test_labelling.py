"""The labelling loop against the real Label Studio, Postgres and Celery worker started by make test."""
import importlib
import io
import json
import time
import uuid
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.test import override_settings

from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, TaskLink, WebhookDelivery
from labelling.services import push as push_service
from labelling.services.projects import get_client, project_ensure
from labelling.services.selection import batch_select
from production.models import Source, Turn
from taxonomy import services as taxonomy_services
from taxonomy.models import FailureMode

REPO = Path(__file__).resolve().parent.parent
SEED = importlib.import_module("taxonomy.migrations.0002_seed_default_taxonomy").seed


@pytest.fixture(autouse=True)
def ls_project_title():
    # Label Studio outlives each test's database: a project of its own per test.
    # Detection is called explicitly here (conftest keeps ingest from chaining it onto the worker).
    with override_settings(LABEL_STUDIO_PROJECT_TITLE=f"test-{uuid.uuid4().hex[:10]}", SIGNALS_SEMANTIC=False):
        yield


@pytest.fixture
def taxonomy(db):
    """The default taxonomy (a transactional test before this one may have flushed it)."""
    if not FailureMode.objects.exists():
        SEED(django_apps, None)
    return FailureMode.objects.all()


def canard_sessions(n: int) -> list[dict]:
    sessions, out = [], []
    with open(REPO / "examples" / "canard_log.jsonl", encoding="utf-8") as f:
        for rec in map(json.loads, f):
            sid = rec.get("session_id")
            if sid and sid not in sessions:
                if len(sessions) == n:
                    continue
                sessions.append(sid)
            if sid in sessions or any(rec.get("turn_id", "").startswith(s + "-") for s in sessions):
                out.append(rec)
    return out


def ingest(tmp_path, records, source="canard"):
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    call_command("ingest", str(path), "--source", source, stdout=io.StringIO())
    call_command("detect_signals", stdout=io.StringIO())


def run_json(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def ls_tasks(project_id: int) -> dict:
    return get_client().task_ids_by_key(project_id, ("source", "evalgap_id"))


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    return check()


# --- selection --------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_sample_with_strata_and_probabilities(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(30))
    month = Turn.objects.order_by("timestamp").first().timestamp.strftime("%Y-%m")

    first = batch_select(failures=False, sample=20, month=month, seed=7)
    picked = sorted(first.items.values_list("turn__external_id", "stratum", "inclusion_probability"))
    BatchItem.objects.all().delete()
    again = batch_select(failures=False, sample=20, month=month, seed=7)
    assert sorted(again.items.values_list("turn__external_id", "stratum", "inclusion_probability")) == picked
    BatchItem.objects.all().delete()
    other = batch_select(failures=False, sample=20, month=month, seed=8)
    assert sorted(other.items.values_list("turn__external_id", flat=True)) != [p[0] for p in picked]

    # strata sizes and probabilities: n_h / N_h of the month's turns in each stratum
    in_month = Turn.objects.filter(timestamp__year=int(month[:4]), timestamp__month=int(month[5:]))
    from labelling.vocabulary import stratum_of
    sizes = {}
    for t in in_month.select_related("signals"):
        sizes[stratum_of(t.signals)] = sizes.get(stratum_of(t.signals), 0) + 1
    chosen = {}
    for _, stratum, p in picked:
        chosen.setdefault(stratum, []).append(p)
    assert len(picked) + first.skipped_duplicates == 20
    allocated = {}
    for stratum, probs in chosen.items():
        assert len(set(probs)) == 1  # one probability per stratum
        allocated[stratum] = round(probs[0] * sizes[stratum])
        assert probs[0] == pytest.approx(allocated[stratum] / sizes[stratum])
        # proportional allocation: n_h within one of 20 * N_h / N
        assert abs(allocated[stratum] - 20 * sizes[stratum] / sum(sizes.values())) < 1
    assert sum(allocated.values()) - sum(len(v) for v in chosen.values()) <= first.skipped_duplicates
    assert set(chosen) <= {"failure", "follow_up", "abandoned", "none"} and len(chosen) >= 2


def test_failures_are_taken_in_full_and_never_sent_twice(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(20))
    failures = set(Turn.objects.filter(signals__failure_candidate=True).values_list("id", flat=True))
    summary = run_json("select_for_labelling", "--failures", "--sample", "0")
    batch = LabellingBatch.objects.get(pk=summary["batch"])
    items = set(batch.items.values_list("turn_id", flat=True))
    assert summary["failures"] == len(items) == len(failures) - summary["skipped_duplicates"]
    assert items <= failures
    assert all(p == 1.0 for p in batch.items.values_list("inclusion_probability", flat=True))
    assert run_json("select_for_labelling", "--failures", "--sample", "0")["failures"] == 0


def test_near_duplicate_queries_are_sent_once(taxonomy, tmp_path):
    base = {"session_id": "s", "response": "r", "timestamp": "2026-10-01T10:00:00Z"}
    ingest(tmp_path, [
        {**base, "id": "a", "session_id": "s1", "query": "How do I reset my password?",
         "events": [{"type": "thumbs_down"}]},
        {**base, "id": "b", "session_id": "s2", "query": "how do i reset my password",
         "events": [{"type": "thumbs_down"}]},
        {**base, "id": "c", "session_id": "s3", "query": "password: how do I reset my", "events": [{"type": "thumbs_down"}]},
        {**base, "id": "d", "session_id": "s4", "query": "Where is my order?", "events": [{"type": "thumbs_down"}]},
    ], source="bot")
    summary = run_json("select_for_labelling", "--failures", "--sample", "0")
    assert summary["failures"] == 2 and summary["skipped_duplicates"] == 2
    assert sorted(BatchItem.objects.values_list("turn__external_id", flat=True)) == ["a", "d"]


# --- push -------------------------------------------------------------------------------------

@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_push_then_repush_leaves_exactly_one_task_per_item(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(10))
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    n = BatchItem.objects.filter(batch_id=batch).count()
    assert n > 5

    first = run_json("push_to_labelstudio", "--batch", str(batch))
    again = run_json("push_to_labelstudio", "--batch", str(batch))

    project = LabelStudioProject.objects.get()
    assert first == {"project_id": project.ls_project_id, "pushed": n, "already_present": 0}
    assert again == {"project_id": project.ls_project_id, "pushed": 0, "already_present": n}
    tasks = ls_tasks(project.ls_project_id)
    assert len(tasks) == n and all(len(ids) == 1 for ids in tasks.values())
    assert {k[1] for k in tasks} == set(BatchItem.objects.values_list("turn__external_id", flat=True))
    assert LabellingBatch.objects.get(pk=batch).status == "done"


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_a_push_that_dies_after_an_import_resumes_without_duplicates_or_gaps(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(10))
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    n = BatchItem.objects.filter(batch_id=batch).count()

    def die_after_second_import(start):
        if start > 0:
            raise SystemExit("worker killed")  # after Label Studio stored the chunk, before we linked it

    with override_settings(LABELLING_PUSH_CHUNK=3), pytest.raises(SystemExit):
        push_service.batch_push(batch_id=batch, on_chunk_imported=die_after_second_import)
    assert TaskLink.objects.count() == 3  # first chunk linked, second in Label Studio but unlinked
    # The third chunk's import was queued before the second's links were written (so Label Studio goes
    # from one import to the next): it ran to the end and is there too, unlinked.
    in_label_studio = len(ls_tasks(LabelStudioProject.objects.get().ls_project_id))
    assert in_label_studio == min(n, 9)

    with override_settings(LABELLING_PUSH_CHUNK=3):
        result = run_json("push_to_labelstudio", "--batch", str(batch))

    assert result["already_present"] == in_label_studio and result["pushed"] == n - in_label_studio
    tasks = ls_tasks(LabelStudioProject.objects.get().ls_project_id)
    assert len(tasks) == n and all(len(ids) == 1 for ids in tasks.values())
    assert TaskLink.objects.count() == n
    assert set(TaskLink.objects.values_list("ls_task_id", flat=True)) == {ids[0] for ids in tasks.values()}


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_pii_is_redacted_unless_turned_off_for_the_source(taxonomy, tmp_path):
    base = {"response": "Noted.", "timestamp": "2026-10-01T10:00:00Z", "events": [{"type": "thumbs_down"}]}
    pii = ("mail me at jane.doe@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111, "
           "IBAN GB82 WEST 1234 5698 7654 32, from 192.168.10.20; order 4111 1111 1111 1112")
    ingest(tmp_path, [{**base, "id": "p1", "session_id": "p1", "query": pii}], source="redacted")
    ingest(tmp_path, [{**base, "id": "p2", "session_id": "p2", "query": pii + " (raw)"}], source="raw")
    Source.objects.filter(name="raw").update(redact_pii=False)
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    run_json("push_to_labelstudio", "--batch", str(batch))

    client = get_client()
    project = LabelStudioProject.objects.get()
    tasks = {t["data"]["evalgap_id"]: t["data"] for t in
             client._ls.tasks.list(project=project.ls_project_id, fields="all")
             for t in [t.model_dump() if hasattr(t, "model_dump") else t]}
    redacted = tasks["p1"]["query"]
    assert redacted == ("mail me at [EMAIL] or call [PHONE], card [CARD], IBAN [IBAN], from [IP]; "
                        "order 4111 1111 1111 1112")  # fails Luhn: not a card
    assert tasks["p2"]["query"] == pii + " (raw)"


PLANTED = {
    "email": "jane.doe@example.com", "phone": "+44 20 7946 0958", "local phone": "(415) 555-2671",
    "card": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32", "ipv4": "192.168.10.20",
    "ipv6": "2001:db8::8a2e:370:7334", "openai key": "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789",
    "aws key id": "AKIAIOSFODNN7EXAMPLE", "github token": "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_no_planted_pii_reaches_label_studio_from_any_field(taxonomy, tmp_path):
    # given: PII of every kind in the query, the answer, the contexts, the next query (shown as the
    # rephrase's evidence), an escalation reason, the generated reference answer, the session,
    # user and turn ids
    every = " ".join(PLANTED.values())
    sid = f"sess-{PLANTED['email']}"
    first = {"id": f"turn-{PLANTED['email']}-1", "session_id": sid, "user_id": PLANTED["email"],
             "timestamp": "2026-10-01T10:00:00Z", "query": f"How do I reset my password? {every}",
             "response": f"Write to {every}", "contexts": [f"ctx {every}", f"ctx2 {PLANTED['card']}"],
             "model": "bot-1", "metadata": {"generation": {"reference_answer": f"Reset it. {every}"}},
             "events": [{"type": "thumbs_down"}, {"type": "escalation", "reason": f"user gave {every}"}]}
    second = {"id": f"turn-{PLANTED['email']}-2", "session_id": sid, "user_id": PLANTED["email"],
              "timestamp": "2026-10-01T10:00:40Z", "query": f"how do i reset my password? {every}",
              "response": "ok", "model": "bot-1"}
    ingest(tmp_path, [first, second], source="pii")
    turn = Turn.objects.get(external_id=first["id"])
    assert turn.signals.rephrased and PLANTED["email"] in str(turn.signals.evidence)

    # when
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    pushed = run_json("push_to_labelstudio", "--batch", str(batch))
    again = run_json("push_to_labelstudio", "--batch", str(batch))

    # then: nothing planted in any task's data as Label Studio returns it
    client = get_client()
    project = LabelStudioProject.objects.get()
    tasks = [t.model_dump() if hasattr(t, "model_dump") else t
             for t in client._ls.tasks.list(project=project.ls_project_id, fields="all")]
    assert len(tasks) == pushed["pushed"] == again["already_present"] >= 1
    for task in tasks:
        blob = json.dumps(task["data"], ensure_ascii=False)
        leaked = {k: v for k, v in PLANTED.items() if v in blob or v.replace(" ", "") in blob}
        assert leaked == {}, leaked
        assert "jane" not in blob and "7946" not in blob and "WEST" not in blob
    data = next(t["data"] for t in tasks if t["data"]["query"].startswith("How do I reset"))
    assert "[EMAIL]" in data["query"] and "[CARD]" in data["contexts_text"] and "[SECRET]" in data["response"]
    assert "next query" in data["signals_text"] and "[PHONE]" in data["signals_text"]
    assert "[IBAN]" in data["reference_answer_prefill"]
    # ids: stable keyed pseudonyms; the turn id carried an e-mail, so it went as one too
    assert data["session_id"].startswith("session-") and data["user_id"].startswith("user-")
    assert data["evalgap_id"] == push_service.task_evalgap_id(turn) and data["evalgap_id"].startswith("turn-")
    assert data["source"] == "pii"
    # the pseudonymised id still finds its item when the link is lost (the annotation fallback)
    TaskLink.objects.all().delete()
    from labelling.services.annotations import _item_for
    assert _item_for(project, {"id": -1, "data": data}).turn_id == turn.pk


# --- taxonomy -> config -------------------------------------------------------------------------

@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_config_follows_the_taxonomy_and_keeps_existing_annotations(taxonomy, tmp_path):
    client = get_client()
    project = project_ensure(client=client)
    config = client.get_config(project.ls_project_id)
    assert all(f'alias="{code}"' in config for code in FailureMode.objects.values_list("code", flat=True))
    # an annotation that uses a mode
    task_id = client.import_tasks(project.ls_project_id, [push_service.task_payload(*_fake_item(tmp_path))])[0]
    ann_id = client.create_annotation(task_id, [
        {"from_name": "verdict", "to_name": "response", "type": "choices", "value": {"choices": ["incorrect"]}},
        {"from_name": "failure_modes", "to_name": "response", "type": "taxonomy",
         "value": {"taxonomy": [["RETRIEVAL", "RETRIEVAL.MISS"]]}}])

    # when: an admin adds a mode and retires the used one (the worker syncs the config)
    taxonomy_services.failure_mode_create(code="RETRIEVAL.STALE_INDEX", name="Stale index", parent_code="RETRIEVAL")
    assert wait_for(lambda: 'alias="RETRIEVAL.STALE_INDEX"' in client.get_config(project.ls_project_id))
    taxonomy_services.failure_mode_retire(code="RETRIEVAL.MISS")
    assert wait_for(lambda: 'alias="RETRIEVAL.MISS"' not in client.get_config(project.ls_project_id))

    # then: the annotation is untouched, and pulling it back still resolves the retired code
    exported = client.export_annotated(project.ls_project_id)
    ann = next(a for t in exported for a in t["annotations"] if a["id"] == ann_id)
    assert ann["result"][1]["value"]["taxonomy"] == [["RETRIEVAL", "RETRIEVAL.MISS"]]
    run_json("pull_annotations")
    stored = Annotation.objects.get(ls_annotation_id=ann_id)
    assert stored.failure_modes == ["RETRIEVAL.MISS"] and stored.invalid_reason == ""


def _fake_item(tmp_path):
    if not Turn.objects.filter(external_id="cfg-1").exists():
        ingest(tmp_path, [{"id": "cfg-1", "session_id": "cfg", "timestamp": "2026-10-01T10:00:00Z",
                           "query": "q", "response": "r", "events": [{"type": "thumbs_down"}]}], source="cfg")
        batch_select(failures=True, sample=0, month="2026-10", seed=0)
    item = BatchItem.objects.select_related("turn__source", "turn__session").get(turn__external_id="cfg-1")
    return item, []


# --- annotations back ---------------------------------------------------------------------------

VERDICT = {"from_name": "verdict", "to_name": "response", "type": "choices"}


def _result(verdict, modes=(), reference="", proposed=""):
    res = [{**VERDICT, "value": {"choices": [verdict]}}]
    if modes:
        res.append({"from_name": "failure_modes", "to_name": "response", "type": "taxonomy",
                    "value": {"taxonomy": [list(m) for m in modes]}})
    if reference:
        res.append({"from_name": "reference_answer", "to_name": "response", "type": "textarea",
                    "value": {"text": [reference]}})
    if proposed:
        res.append({"from_name": "proposed_failure_mode", "to_name": "response", "type": "textarea",
                    "value": {"text": [proposed]}})
    return res


@pytest.fixture
def pushed(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(4))
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    run_json("push_to_labelstudio", "--batch", str(batch))
    return list(TaskLink.objects.select_related("item__turn", "project").order_by("id"))


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_annotations_arrive_by_pull_and_a_deletion_is_kept_as_deleted(pushed):
    client = get_client()
    a1 = client.create_annotation(pushed[0].ls_task_id, _result("incorrect", [("COMPLETENESS", "COMPLETENESS.NO_ANSWER")],
                                                                reference="The Mothers of Invention.",
                                                                proposed="answer cut off mid-sentence"))
    a2 = client.create_annotation(pushed[1].ls_task_id, _result("correct"))

    assert run_json("pull_annotations") == {"annotations": 2, "created": 2, "updated": 0, "deleted": 0}
    assert run_json("pull_annotations") == {"annotations": 2, "created": 0, "updated": 0, "deleted": 0}
    ann = Annotation.objects.get(ls_annotation_id=a1)
    assert (ann.verdict, ann.failure_modes, ann.reference_answer, ann.proposed_failure_mode) == (
        "incorrect", ["COMPLETENESS.NO_ANSWER"], "The Mothers of Invention.", "answer cut off mid-sentence")
    assert ann.item == pushed[0].item and ann.annotator and ann.ls_created_at

    client.update_annotation(a2, _result("partially_correct"))
    client.delete_annotation(a1)
    assert run_json("pull_annotations") == {"annotations": 1, "created": 0, "updated": 1, "deleted": 1}
    deleted = Annotation.objects.get(ls_annotation_id=a1)
    assert deleted.deleted and deleted.deleted_at and deleted.verdict == "incorrect"  # marked, not lost
    assert Annotation.objects.get(ls_annotation_id=a2).verdict == "partially_correct"


@pytest.mark.labelstudio
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_annotations_arrive_by_webhook_through_the_worker(pushed, live_server):
    client = get_client()
    project = pushed[0].project
    with override_settings(EVALGAP_PUBLIC_URL=live_server.url):
        from labelling.services.projects import webhook_url
        client.ensure_webhook(project.ls_project_id, webhook_url(), "test-webhook-secret")

    ann_id = client.create_annotation(pushed[0].ls_task_id, _result("incorrect", [("INTENT",)]))
    assert wait_for(lambda: Annotation.objects.filter(ls_annotation_id=ann_id).exists())
    assert Annotation.objects.get(ls_annotation_id=ann_id).failure_modes == ["INTENT"]

    client.update_annotation(ann_id, _result("incorrect", [("OUTDATED",)]))
    assert wait_for(lambda: Annotation.objects.get(ls_annotation_id=ann_id).failure_modes == ["OUTDATED"])
    assert WebhookDelivery.objects.filter(error="").count() == WebhookDelivery.objects.count() >= 2
    # the pull afterwards finds nothing new: both paths write the same rows
    assert run_json("pull_annotations") == {"annotations": 1, "created": 0, "updated": 0, "deleted": 0}


@pytest.mark.django_db
def test_the_webhook_without_the_secret_is_refused_and_changes_nothing(client):
    body = json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}, "task": {"id": 1}})
    for headers in ({}, {"HTTP_X_EVALGAP_SECRET": "wrong"}):
        resp = client.post("/api/labelling/webhook/", data=body, content_type="application/json", **headers)
        assert resp.status_code == 401
    assert WebhookDelivery.objects.count() == 0 and Annotation.objects.count() == 0


def test_label_studio_down_is_a_clear_error_and_nothing_is_marked_pushed(taxonomy, tmp_path):
    ingest(tmp_path, canard_sessions(2))
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    from django.core.management import CommandError
    # configured (a key on the SQLite pass too), but nothing listens there
    with override_settings(LABEL_STUDIO_URL="http://127.0.0.1:9", LABEL_STUDIO_API_KEY="k"), \
            pytest.raises(CommandError, match="Label Studio"):
        call_command("push_to_labelstudio", "--batch", str(batch), stdout=io.StringIO())
    assert TaskLink.objects.count() == 0
    # Label Studio could not even be reached: the batch was never started, and stays pending for a retry.
    assert LabellingBatch.objects.get(pk=batch).status == "pending"


@pytest.mark.labelstudio
@pytest.mark.django_db(transaction=True)
def test_a_project_adopted_after_the_database_was_lost_gets_no_second_copy(taxonomy, tmp_path):
    # given: a batch pushed, then evalgap's record of the project and its tasks lost
    ingest(tmp_path, canard_sessions(5))
    batch = run_json("select_for_labelling", "--failures", "--sample", "0")["batch"]
    n = BatchItem.objects.filter(batch_id=batch).count()
    first = run_json("push_to_labelstudio", "--batch", str(batch))
    TaskLink.objects.all().delete()
    LabelStudioProject.objects.all().delete()
    BatchItem.objects.update(push_attempted_at=None)

    # when: pushed again, the project is found by its title and adopted
    again = run_json("push_to_labelstudio", "--batch", str(batch))

    # then: every item is found where it already was
    assert again == {"project_id": first["project_id"], "pushed": 0, "already_present": n}
    tasks = ls_tasks(first["project_id"])
    assert len(tasks) == n and all(len(ids) == 1 for ids in tasks.values())
    assert not LabelStudioProject.objects.get().needs_reconcile
