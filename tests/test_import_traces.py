"""`import_traces PATH --format langfuse|langsmith|phoenix`: each tool's documented export -> one turn per
trace, through the contract, rejected lines and idempotency every ingest shares.

The fixtures follow the formats as documented (docs/ingest-otlp.md names the pages): the Langfuse ones
are checked against the Langfuse SDK's own models of its API below; LangSmith's follow its "Run (span)
data format"; the Phoenix dataframe is built with the columns `get_spans_dataframe()` returns."""
import json
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from production.models import IngestJob, RejectedLine, Turn

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def run(path, fmt, source="imported", capsys=None):
    call_command("import_traces", str(path), "--format", fmt, "--source", source, "--json")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_langfuse_fixture_is_what_langfuses_api_returns():
    from langfuse.api import ObservationsV2Response
    from langfuse.api.core.pydantic_utilities import parse_obj_as

    # as the SDK reads GET /api/public/v2/observations; a field missing or misnamed fails here
    page = parse_obj_as(ObservationsV2Response, json.loads((FIXTURES / "langfuse_observations_v2.json").read_text()))
    assert [(o.type, o.trace_id, o.parent_observation_id) for o in page.data] == [
        ("SPAN", "lf-trace-1", None), ("RETRIEVER", "lf-trace-1", "obs-root-1"),
        ("GENERATION", "lf-trace-1", "obs-root-1"), ("SPAN", "lf-trace-2", None)]


@pytest.mark.django_db
def test_langfuse_observations_become_a_turn_with_contexts_and_an_unmappable_trace_is_rejected(capsys):
    summary = run(FIXTURES / "langfuse_observations_v2.json", "langfuse", capsys=capsys)
    assert summary == {"read": 4, "created": 1, "duplicates": 0, "rejected": 1, "events": 0, "shadow": 0,
                       "pending": 0, "updated": 0}
    turn = Turn.objects.select_related("session").get()
    assert (turn.external_id, turn.session.external_id, turn.user_id) == ("lf-trace-1", "lf-session-1", "user-17")
    assert (turn.query, turn.response) == ("How do I export my invoices?", "Open Billing > Invoices and choose Export.")
    assert turn.contexts == ["Invoices can be exported as PDF or CSV from Billing > Invoices.",
                             "Only account owners can export invoices."]
    assert (turn.model, turn.metadata["token_count"]) == ("gpt-4o-mini", {"prompt": 310, "completion": 14, "total": 324})
    assert turn.timestamp.isoformat() == "2026-10-01T09:00:00+00:00"
    reject = RejectedLine.objects.get()
    assert (reject.line_no, reject.origin) == (4, str(FIXTURES / "langfuse_observations_v2.json"))
    assert reject.reason.startswith("query: no user message in span 'healthcheck'")
    job = IngestJob.objects.get()
    assert (job.status, job.format, job.created, job.rejected) == (IngestJob.Status.DONE, "langfuse", 1, 1)


@pytest.mark.django_db
def test_a_langfuse_trace_download_with_its_observations_is_one_turn_and_importing_it_again_adds_nothing(capsys):
    first = run(FIXTURES / "langfuse_trace_download.json", "langfuse", capsys=capsys)
    again = run(FIXTURES / "langfuse_trace_download.json", "langfuse", capsys=capsys)
    assert (first["created"], again["created"], again["duplicates"], again["updated"]) == (1, 0, 1, 0)
    turn = Turn.objects.get()
    assert (turn.external_id, turn.query, turn.response) == (
        "lf-trace-9", "Can I change my billing email?", "Yes: Settings > Billing > Billing email.")
    assert turn.metadata["token_count"] == {"prompt": 12, "completion": 9, "total": 21}
    assert turn.latency_ms == pytest.approx(800)


@pytest.mark.django_db
def test_langsmith_runs_become_turns_and_broken_runs_are_rejected_by_line(capsys):
    summary = run(FIXTURES / "langsmith_runs.jsonl", "langsmith", capsys=capsys)
    assert (summary["read"], summary["created"], summary["rejected"]) == (6, 2, 2)
    rag = Turn.objects.select_related("session").get(external_id="1b64098b-4ab7-43f6-afee-992304f198d8")
    assert (rag.session.external_id, rag.user_id) == ("ls-thread-1", "ls-user-1")
    assert (rag.query, rag.response) == ("Why was my card declined?", "Your bank declined it: call the number on the card.")
    assert rag.contexts == ["Declines come from the issuing bank, not from us.", "Ask the customer to call their bank."]
    assert (rag.model, rag.metadata["token_count"]["total"]) == ("gpt-4o-mini", 270)
    chat = Turn.objects.select_related("session").get(external_id="2c75109c-5bb8-4f07-bf0e-aa3304f19001")
    assert (chat.session.external_id, chat.query, chat.response) == ("ls-thread-2", "hello", "Hi! How can I help?")
    assert dict(RejectedLine.objects.values_list("line_no", "reason")) == {
        5: "id: missing", 6: RejectedLine.objects.get(line_no=6).reason}
    assert RejectedLine.objects.get(line_no=6).reason.startswith("line: invalid JSON")


def phoenix_dataframe() -> pd.DataFrame:
    """Spans as `px.Client().get_spans_dataframe()` returns them: one row per span, `context.*`, `parent_id`,
    `span_kind`, and the attributes as `attributes.<name>` columns, lists of messages and documents as lists
    of objects with dotted keys."""
    t = pd.Timestamp("2026-10-04T12:00:00Z")
    ms = pd.Timedelta(milliseconds=1)
    trace = "8a3c6d2f9e1b4c7a8d5e2f1a3b4c5d6e"
    rows = [
        {"name": "query", "span_kind": "CHAIN", "parent_id": None, "start_time": t, "end_time": t + 900 * ms,
         "status_code": "OK", "status_message": "", "events": [], "context.span_id": "1a2b3c4d5e6f7081",
         "context.trace_id": trace, "attributes.input.value": "What is the refund window?",
         "attributes.output.value": "30 days from delivery.", "attributes.session.id": "px-session-1",
         "attributes.openinference.span.kind": "CHAIN", "attributes.retrieval.documents": None,
         "attributes.llm.input_messages": None, "attributes.llm.output_messages": None,
         "attributes.llm.model_name": None, "attributes.llm.token_count.prompt": None},
        {"name": "retrieve", "span_kind": "RETRIEVER", "parent_id": "1a2b3c4d5e6f7081", "start_time": t + 10 * ms,
         "end_time": t + 90 * ms, "status_code": "OK", "status_message": "", "events": [],
         "context.span_id": "2a2b3c4d5e6f7082", "context.trace_id": trace,
         "attributes.input.value": "refund window", "attributes.output.value": None, "attributes.session.id": None,
         "attributes.openinference.span.kind": "RETRIEVER",
         "attributes.retrieval.documents": [{"document.content": "Refunds are accepted within 30 days.",
                                             "document.id": "kb-1", "document.score": 0.91},
                                            {"document.content": "Delivery date counts as day one.",
                                             "document.id": "kb-2", "document.score": 0.77}],
         "attributes.llm.input_messages": None, "attributes.llm.output_messages": None,
         "attributes.llm.model_name": None, "attributes.llm.token_count.prompt": None},
        {"name": "ChatCompletion", "span_kind": "LLM", "parent_id": "1a2b3c4d5e6f7081", "start_time": t + 100 * ms,
         "end_time": t + 880 * ms, "status_code": "OK", "status_message": "", "events": [],
         "context.span_id": "3a2b3c4d5e6f7083", "context.trace_id": trace, "attributes.input.value": None,
         "attributes.output.value": None, "attributes.session.id": None, "attributes.openinference.span.kind": "LLM",
         "attributes.retrieval.documents": None,
         "attributes.llm.input_messages": [{"message.role": "system", "message.content": "Answer briefly."},
                                           {"message.role": "user", "message.content": "What is the refund window?"}],
         "attributes.llm.output_messages": [{"message.role": "assistant", "message.content": "30 days from delivery."}],
         "attributes.llm.model_name": "gpt-4o-mini", "attributes.llm.token_count.prompt": 180.0},
    ]
    return pd.DataFrame(rows).set_index("context.span_id")


@pytest.mark.django_db
def test_a_phoenix_span_dataframe_saved_as_parquet_becomes_one_turn(tmp_path, capsys):
    path = tmp_path / "spans.parquet"
    phoenix_dataframe().to_parquet(path)
    summary = run(path, "phoenix", capsys=capsys)
    assert (summary["read"], summary["created"], summary["rejected"]) == (3, 1, 0)
    turn = Turn.objects.select_related("session").get()
    assert (turn.external_id, turn.session.external_id) == ("8a3c6d2f9e1b4c7a8d5e2f1a3b4c5d6e", "px-session-1")
    assert (turn.query, turn.response, turn.model) == ("What is the refund window?", "30 days from delivery.",
                                                       "gpt-4o-mini")
    assert turn.contexts == ["Refunds are accepted within 30 days.", "Delivery date counts as day one."]
    assert turn.metadata["token_count"]["prompt"] == 180


@pytest.mark.django_db
def test_a_file_that_is_not_the_format_fails_the_command_and_keeps_the_other_files(tmp_path, capsys):
    bad = tmp_path / "spans.parquet"
    bad.write_bytes(b"not parquet")
    good = tmp_path / "good.parquet"
    phoenix_dataframe().to_parquet(good)
    with pytest.raises(CommandError, match="not a parquet file"):
        call_command("import_traces", str(bad), str(good), "--format", "phoenix", "--source", "px", "--json")
    assert Turn.objects.count() == 1
    assert IngestJob.objects.filter(status=IngestJob.Status.FAILED).count() == 1
