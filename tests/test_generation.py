"""Targeted case generation: the real openai client against a local OpenAI-compatible server
(canned, malformed, 429 and slow answers), de-duplication with the rephrase detector, the offline
generator, the review push to the real Label Studio, and the per-mode report."""
import io
import json
import random
import time
import uuid
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.test import override_settings

from generation import offline, services
from generation.models import GeneratedCase, GenerationRun
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject
from labelling.services.projects import get_client
from production.models import Turn
from production.services.ingest import source_get_or_create, turns_ingest_body
from taxonomy.models import FailureMode
from llm import client as llm
from testsets.models import TestItem, TestSet, TestSetVersion
from tests.fake_openai import FakeOpenAI

SEED_TAXONOMY = __import__("importlib").import_module("taxonomy.migrations.0002_seed_default_taxonomy").seed

REAL_FAILURES = [  # (query, served answer, reference answer, notes) labelled INTENT
    ("Can I return shoes I bought on sale at the Berlin store?", "Our Berlin store opens at 9.",
     "Yes, within 30 days with the receipt, sale items included.", "answered opening hours, not returns"),
    ("Before my trip, how do I change the delivery address of order 1234?", "Orders ship in 2 days.",
     "Open the order in your account and choose 'Change address' until it ships.", "answered shipping time"),
    ("What is the fee for paying by card in Spain?", "We accept Visa and Mastercard.", "There is no card fee.",
     "listed cards instead of the fee"),
]


def cases_json(*queries: str) -> str:
    return json.dumps({"cases": [{"query": q, "reference_answer": f"ref: {q}" if i % 2 == 0 else None,
                                  "rationale": "asks two things at once"} for i, q in enumerate(queries)]})


GOOD = cases_json("Is the Munich store open on Sunday and can I return a jacket there?",
                  "Which train goes to the airport, and do you refund a lost parcel?",
                  "Does the gold plan include phone support for my second account?")


@pytest.fixture
def fake_llm():
    fake = FakeOpenAI()
    with override_settings(OPENAI_BASE_URL=fake.url, OPENAI_API_KEY="sk-test-key", GENERATION_MODEL="fake-model",
                           LLM_TIMEOUT_SECONDS=0.5, LLM_BACKOFF_SECONDS=0.01,
                           LLM_MAX_RETRIES=3, LLM_MAX_INVALID=2,
                           GENERATION_PRICE_PER_1K_PROMPT_TOKENS=0.5, GENERATION_PRICE_PER_1K_COMPLETION_TOKENS=2):
        yield fake
    fake.close()


@pytest.fixture(autouse=True)
def review_project():
    # Label Studio outlives each test's database: a review project of its own per test.
    title = f"test-gen-{uuid.uuid4().hex[:10]}"
    with override_settings(GENERATION_REVIEW_PROJECT_TITLE=title, LABEL_STUDIO_PROJECT_TITLE=f"{title}-prod"):
        yield title


@pytest.fixture
def failures(db):
    """Three real INTENT failures: turns, a labelling batch, annotations."""
    if not FailureMode.objects.exists():
        SEED_TAXONOMY(django_apps, None)
    source = source_get_or_create(name="shop-bot")
    turns_ingest_body(source=source, body=b"".join(json.dumps({
        "id": f"t{i}", "session_id": f"s{i}", "timestamp": "2026-10-01T10:00:00Z", "query": q, "response": r,
    }).encode() + b"\n" for i, (q, r, _, _) in enumerate(REAL_FAILURES)))
    batch = LabellingBatch.objects.create(month="2026-10")
    project = LabelStudioProject.objects.create(title=f"seed-{uuid.uuid4().hex[:8]}",
                                                ls_project_id=900_000 + uuid.uuid4().int % 90_000)
    items = []
    for i, (q, _, ref, notes) in enumerate(REAL_FAILURES):
        item = BatchItem.objects.create(batch=batch, turn=Turn.objects.get(source=source, external_id=f"t{i}"),
                                        stratum="failure", inclusion_probability=1.0, query_key=q.lower())
        Annotation.objects.create(ls_annotation_id=800_000 + item.pk, project=project, item=item, ls_task_id=item.pk,
                                  verdict="incorrect", failure_modes=["INTENT"], reference_answer=ref, notes=notes)
        items.append(item)
    return items


def run_llm(**kw) -> GenerationRun:
    run = services.generation_run_create(failure_mode="INTENT", n=kw.pop("n", 3), **kw)
    return services.generation_run_execute(run_id=run.pk)


# --- the LLM path -------------------------------------------------------------------------------

def test_llm_cases_are_stored_with_provenance_usage_and_cost_and_sent_for_review(failures, fake_llm, review_project):
    fake_llm.script = [("ok", GOOD)]

    run = run_llm()

    # the real openai SDK made the request, to our endpoint, with our key and JSON mode
    (req,) = fake_llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["user-agent"].startswith("OpenAI/Python") and req["headers"]["x-stainless-lang"] == "python"
    assert req["headers"]["authorization"] == "Bearer sk-test-key"
    assert req["body"]["model"] == "fake-model" and req["body"]["response_format"] == {"type": "json_object"}
    prompt = req["body"]["messages"][-1]["content"]
    mode = FailureMode.objects.get(code="INTENT")
    assert mode.description in prompt
    for q, r, ref, notes in REAL_FAILURES:
        assert q in prompt and r in prompt and ref in prompt and notes in prompt

    # the run: usage and cost (1000 in at $0.5/1k + 200 out at $2/1k)
    run.refresh_from_db()
    assert (run.status, run.llm_requests, run.prompt_tokens, run.completion_tokens) == ("done", 1, 1000, 200)
    assert run.cost_usd == Decimal("0.9") and run.prompt_version == services.PROMPT_VERSION
    assert run.generated == 3 and run.duplicates_dropped == 0
    assert sorted(run.seed_item_ids) == sorted(i.pk for i in failures)

    # the cases, each a turn of source "generated" in a review batch, not a test item
    cases = list(run.cases.order_by("position"))
    assert [c.query for c in cases] == [c["query"] for c in json.loads(GOOD)["cases"]]
    assert cases[0].reference_answer.startswith("ref: ") and cases[1].reference_answer == ""
    assert all(c.technique == "llm" and c.status == "sent_for_review" and c.turn_id for c in cases)
    turn = Turn.objects.select_related("source").get(pk=cases[0].turn_id)
    assert (turn.source.name, turn.external_id, turn.response) == ("generated", f"gen-{run.pk}-0", "")
    assert turn.metadata["generation"] == {
        "run_id": run.pk, "failure_mode": "INTENT", "technique": "llm", "seed_item_ids": run.seed_item_ids,
        "model": "fake-model", "offline": False, "prompt_version": services.PROMPT_VERSION,
        "temperature": run.temperature, "reference_answer": cases[0].reference_answer,
        "rationale": "asks two things at once"}
    batch = LabellingBatch.objects.get(pk=run.review_batch_id)
    assert batch.project_title == review_project
    assert sorted(batch.items.values_list("stratum", "inclusion_probability", "turn_id")) == sorted(
        ("generated", 1.0, c.turn_id) for c in cases)
    assert TestItem.objects.count() == 0

    # running the same run again (a redelivered task) changes nothing
    services.generation_run_execute(run_id=run.pk)
    services.cases_send_for_review(run_id=run.pk)
    assert len(fake_llm.requests) == 1
    assert GeneratedCase.objects.count() == 3 and BatchItem.objects.filter(stratum="generated").count() == 3
    assert Turn.objects.filter(source__name="generated").count() == 3


def test_malformed_output_is_asked_for_again(failures, fake_llm):
    fake_llm.script = [("ok", "Sure! Here are some cases: 1. ..."), ("ok", json.dumps({"cases": [{"q": 1}]})),
                       ("ok", GOOD)]

    run = run_llm()

    assert run.status == "done" and run.llm_requests == 3 and run.cases.count() == 3
    assert (run.prompt_tokens, run.completion_tokens) == (3000, 600)  # the bad answers were paid for too
    assert "That was not valid" in fake_llm.requests[1]["body"]["messages"][-1]["content"]


def test_output_that_stays_malformed_fails_the_run_with_the_reason_and_stores_nothing(failures, fake_llm):
    fake_llm.script = [("ok", "{not json")]

    with pytest.raises(llm.LLMOutputInvalid):
        run_llm()

    run = GenerationRun.objects.get()
    assert run.status == "failed" and "malformed output 3 times" in run.error and "not JSON" in run.error
    assert run.llm_requests == 3 == len(fake_llm.requests) and run.cost_usd > 0
    assert GeneratedCase.objects.count() == 0 and not Turn.objects.filter(source__name="generated").exists()


def test_a_rate_limit_is_retried_with_backoff(failures, fake_llm):
    fake_llm.script = [("status", 429), ("status", 429), ("ok", GOOD)]

    run = run_llm()

    assert run.status == "done" and run.llm_requests == 3 and run.cases.count() == 3
    assert (run.prompt_tokens, run.completion_tokens) == (1000, 200)  # 429s carry no usage


def test_a_timeout_is_retried(failures, fake_llm):
    fake_llm.script = [("slow", 2.0, GOOD), ("ok", GOOD)]

    started = time.monotonic()
    run = run_llm()

    assert run.status == "done" and run.llm_requests == 2 and run.cases.count() == 3
    assert time.monotonic() - started < 2.0  # the client gave up at its 0.5 s timeout


def test_errors_that_outlast_the_retries_keep_the_run_for_a_later_retry(failures, fake_llm):
    fake_llm.script = [("status", 503)]
    run = services.generation_run_create(failure_mode="INTENT", n=3)

    with pytest.raises(llm.LLMUnavailable):
        services.generation_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == "pending" and run.llm_requests == 4 and "InternalServerError" in run.error
    assert run.cases.count() == 0

    # when: the endpoint is back and the task retries the same run
    fake_llm.script = [("ok", GOOD)]
    fake_llm.requests.clear()
    run = services.generation_run_execute(run_id=run.pk)
    assert run.status == "done" and run.llm_requests == 5 and run.cases.count() == 3 and run.error == ""


# --- de-duplication -----------------------------------------------------------------------------

def test_duplicates_of_each_other_and_of_the_test_set_are_dropped(failures, fake_llm):
    version = TestSetVersion.objects.create(testset=TestSet.objects.create(name="production"), number=1)
    TestItem.objects.create(version=version, key="turn:x:1", source="shop-bot", verdict="incorrect",
                            query="How do I reset the password of my account?", content_sha256="0" * 64)
    fake_llm.script = [("ok", cases_json(
        "how can I reset my account password",  # a rephrase of the test-set query
        "Is the Munich store open on Sunday and can I return a jacket there?",
        "Is the Munich store open on Sundays, and can I return a jacket there?",  # a rephrase of the case above
        "Which train goes to the airport, and do you refund a lost parcel?",
    ))]

    run = run_llm(n=4)

    cases = list(run.cases.order_by("position"))
    assert [c.status for c in cases] == ["duplicate", "sent_for_review", "duplicate", "sent_for_review"]
    assert cases[0].duplicate_of == "testset:How do I reset the password of my account?"
    assert cases[2].duplicate_of == f"case:gen-{run.pk}-1" and cases[2].duplicate_score >= 0.5
    assert (run.generated, run.duplicates_dropped) == (4, 2)
    assert sorted(Turn.objects.filter(source__name="generated").values_list("external_id", flat=True)) == [
        f"gen-{run.pk}-1", f"gen-{run.pk}-3"]


# --- offline ------------------------------------------------------------------------------------

def test_the_offline_generator_is_deterministic_and_keeps_seeds_and_techniques():
    seeds = [offline.Seed(i + 1, q, ref) for i, (q, _, ref, _) in enumerate(REAL_FAILURES)]

    first = offline.generate(seeds=seeds, n=12, seed=7)

    assert first == offline.generate(seeds=list(reversed(seeds)), n=12, seed=7)
    assert first != offline.generate(seeds=seeds, n=12, seed=8)
    assert {c["technique"] for c in first} == set(offline.TECHNIQUES)
    by_id = {s.item_id: s for s in seeds}
    for c in first:
        used = [by_id[i] for i in c["seed_item_ids"]]
        assert c["query"] not in {s.query for s in seeds}
        if c["technique"] in ("typo", "dropped_context"):
            assert c["reference_answer"] == used[0].reference_answer  # the same need
        else:
            assert c["reference_answer"] == ""
        if c["technique"] == "combined":
            assert len(used) == 2 and used[1].query[1:].rstrip("?") in c["query"]
    # the rules themselves, on real failures
    rnd = random.Random(0)
    assert offline.dropped_context(REAL_FAILURES[1][0], rnd) == "How do I change the delivery address of order 1234?"
    assert offline.ambiguity(REAL_FAILURES[0][0], rnd) == "Can I return shoes I bought on sale at that store?"
    assert offline.ambiguity(REAL_FAILURES[2][0], rnd) == "What is the fee for paying by card there?"
    assert offline.truncation("one two three four five six", rnd) in {"one two three", "one two three four"}
    slipped = offline.typo("What is the fee for paying by card in Spain?", rnd)
    assert slipped != REAL_FAILURES[2][0] and sorted(slipped) == sorted(REAL_FAILURES[2][0])


@pytest.mark.labelstudio
def test_offline_command_prints_the_json_line_and_pushes_to_the_review_project(failures, review_project, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = io.StringIO()
    with override_settings(OPENAI_BASE_URL="", OPENAI_API_KEY=""):
        call_command("generate_cases", "--failure-mode", "INTENT", "--n", "6", "--offline", "--json",
                     stdout=out, stderr=io.StringIO())

    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    run = GenerationRun.objects.get()
    assert summary == {"failure_mode": "INTENT", "generated": run.generated,
                       "duplicates_dropped": run.duplicates_dropped,
                       "sent_for_review": run.generated - run.duplicates_dropped}
    assert summary["sent_for_review"] >= 2 and run.offline and run.model == "" and run.llm_requests == 0
    # the review project in the real Label Studio holds one task per case, marked source = generated
    project = LabelStudioProject.objects.get(title=review_project)
    tasks = get_client().task_ids_by_key(project.ls_project_id, ("source", "evalgap_id"))
    sent = run.cases.filter(status="sent_for_review")
    assert set(tasks) == {("generated", c.external_id) for c in sent}
    assert all(len(ids) == 1 for ids in tasks.values())
    assert LabellingBatch.objects.get(pk=run.review_batch_id).status == "done"


def test_without_an_endpoint_the_command_says_what_to_set(failures, monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with override_settings(OPENAI_BASE_URL="", OPENAI_API_KEY=""), pytest.raises(CommandError) as err:
        call_command("generate_cases", "--failure-mode", "INTENT", stdout=io.StringIO(), stderr=io.StringIO())
    assert "set OPENAI_BASE_URL and OPENAI_API_KEY" in str(err.value) and "--offline" in str(err.value)
    assert GenerationRun.objects.count() == 0

    with override_settings(OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY=""), \
            pytest.raises(CommandError, match=r"set OPENAI_API_KEY \("):
        call_command("generate_cases", "--failure-mode", "INTENT", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="'NOPE' does not exist"):
        call_command("generate_cases", "--failure-mode", "NOPE", "--offline", stdout=io.StringIO())


# --- review outcomes and the report -------------------------------------------------------------

def test_the_report_counts_approved_and_rejected_cases_with_the_reason(failures, fake_llm, api, admin_client):
    fake_llm.script = [("ok", GOOD)]
    run = run_llm()
    cases = list(run.cases.order_by("position"))
    project = LabelStudioProject.objects.create(title="review-x", ls_project_id=700_000 + run.pk)
    items = {i.turn_id: i for i in BatchItem.objects.filter(stratum="generated")}

    def review(case, verdict, **kw):
        Annotation.objects.create(ls_annotation_id=600_000 + case.pk, project=project, item=items[case.turn_id],
                                  ls_task_id=case.pk, verdict=verdict, **kw)

    review(cases[0], "incorrect", failure_modes=["INTENT"], reference_answer="Yes on Sundays 10-16; returns too.")
    review(cases[1], "cannot_judge", notes="two unrelated questions; not a realistic user")
    # cases[2]: not reviewed yet

    assert services.generated_cases_review_sync() == {"cases": 3, "changed": 3}
    assert services.generated_cases_review_sync() == {"cases": 3, "changed": 0}
    assert list(run.cases.order_by("position").values_list("status", "review_reason")) == [
        ("approved", ""), ("rejected", "two unrelated questions; not a realistic user"),
        ("sent_for_review", "no verdict yet")]

    resp = api.get("/api/generation/report/INTENT/")
    assert resp.status_code == 200
    report = resp.json()
    assert {k: report[k] for k in ("failure_mode", "real_failures", "generated", "duplicates_dropped", "in_review",
                                   "approved", "rejected", "prompt_tokens", "completion_tokens")} == {
        "failure_mode": "INTENT", "real_failures": 3, "generated": 3, "duplicates_dropped": 0, "in_review": 1,
        "approved": 1, "rejected": 1, "prompt_tokens": 1000, "completion_tokens": 200}
    assert report["rejections"] == [{"case": cases[1].pk, "query": cases[1].query,
                                     "reason": "two unrelated questions; not a realistic user"}]
    assert report["cost_usd"] == pytest.approx(0.9)
    every = api.get("/api/generation/report/").json()
    assert {r["failure_mode"] for r in every} == set(FailureMode.objects.values_list("code", flat=True))
    assert api.get("/api/generation/report/NOPE/").status_code == 404

    # the approved case is promoted by the normal rules, marked source = generated
    from testsets.services.promotion import testset_promote
    testset_promote(name="production")
    item = TestItem.objects.get(source="generated")
    assert item.query == cases[0].query and item.provenance["generation"]["run_id"] == run.pk

    page = admin_client.get("/generation/report/INTENT/")
    assert page.status_code == 200 and b"two unrelated questions" in page.content


def test_the_admin_action_starts_a_run_for_each_selected_mode(failures, admin_client):
    mode = FailureMode.objects.get(code="INTENT")
    resp = admin_client.post("/admin/taxonomy/failuremode/", {
        "action": "generate_cases_offline", "index": 0, "_selected_action": [mode.pk]}, follow=True)
    assert resp.status_code == 200
    run = GenerationRun.objects.get()
    assert [str(m) for m in resp.context["messages"]] == [f"generation started: INTENT (run {run.pk})"]
    assert (run.failure_mode, run.offline, run.status) == ("INTENT", True, "pending")
