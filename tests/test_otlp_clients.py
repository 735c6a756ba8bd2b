"""The OTLP receiver with the real clients, against a live evalgap server (pytest-django's live_server):

- the OpenTelemetry SDK's OTLP/HTTP exporter (protobuf, gzip or not) with OpenInference's OpenAI
  instrumentation around the real `openai` client, which calls the local fake OpenAI server;
- the Langfuse Python SDK, which exports OTLP to `<base_url>/api/public/otel/v1/traces` with HTTP Basic
  (public key : secret key): the secret key is the ingest token.

Only the LLM is faked, at its HTTP boundary."""
import openai
import pytest
from openinference.instrumentation import using_session, using_user
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from rest_framework.authtoken.models import Token

from conftest import user_with_role
from production.models import RejectedLine, TraceSpan, Turn
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def token(transactional_db):
    return Token.objects.create(user=user_with_role("otel-collector", "ingest")).key


@pytest.fixture
def llm():
    with FakeOpenAI() as fake:
        fake.script = [("ok", "Go to Settings > Security and choose Reset.", {"prompt_tokens": 42,
                                                                            "completion_tokens": 9})]
        yield fake


@pytest.fixture
def traced(live_server, token):
    """An app's tracing as its docs set it up: a provider named by service.name, exporting each span as it
    ends (children before their root, each in a request of its own), OpenAI instrumented."""
    made = []

    def make(compression=Compression.NoCompression):
        provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=f"{live_server.url}/api/otlp/v1/traces", headers={"Authorization": f"Bearer {token}"},
            compression=compression)))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        made.append((provider, instrumentor))
        return provider

    yield make
    for provider, instrumentor in made:
        instrumentor.uninstrument()
        provider.shutdown()


def test_an_instrumented_openai_call_becomes_a_turn_with_its_session_user_and_model(traced, llm):
    provider = traced()
    client = openai.OpenAI(base_url=llm.url, api_key="sk-test")
    with using_session("sess-42"), using_user("user-7"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": "You are the support bot."},
            {"role": "user", "content": "how do i reset my pasword"}])
    provider.force_flush()

    turn = Turn.objects.select_related("session", "source").get()
    assert (turn.source.name, turn.session.external_id, turn.user_id) == ("support-bot", "sess-42", "user-7")
    assert (turn.query, turn.response) == ("how do i reset my pasword", "Go to Settings > Security and choose Reset.")
    assert turn.model.startswith("gpt-4o-mini")
    assert turn.metadata["token_count"] == {"prompt": 42, "completion": 9, "total": 51}
    assert turn.external_id == TraceSpan.objects.get().trace_id
    assert RejectedLine.objects.count() == 0


def test_a_rag_app_traced_in_pieces_becomes_one_turn_with_its_contexts_gzip(traced, llm):
    # given: the app's own CHAIN and RETRIEVER spans around the instrumented call, sent gzip; each span
    # is exported when it ends, so the root arrives last, in a request of its own
    provider = traced(Compression.Gzip)
    tracer = provider.get_tracer("support-bot")
    client = openai.OpenAI(base_url=llm.url, api_key="sk-test")
    question = "password reset link never arrives"
    with using_session("sess-43"), tracer.start_as_current_span("answer", attributes={
            "openinference.span.kind": "CHAIN", "input.value": question}) as root:
        with tracer.start_as_current_span("retrieve", attributes={"openinference.span.kind": "RETRIEVER"}) as r:
            r.set_attribute("retrieval.documents.0.document.content", "Reset links are sent from no-reply@.")
            r.set_attribute("retrieval.documents.1.document.content", "Check the spam folder for the link.")
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        root.set_attribute("output.value", answer.choices[0].message.content)
    provider.force_flush()

    # then: three spans, one turn; the contexts are the retriever's, in order
    assert TraceSpan.objects.count() == 3
    turn = Turn.objects.get()
    assert (turn.session.external_id, turn.query) == ("sess-43", question)
    assert turn.response == "Go to Settings > Security and choose Reset."
    assert turn.contexts == ["Reset links are sent from no-reply@.", "Check the spam folder for the link."]
    assert turn.metadata["trace"]["kind"] == "CHAIN"


def test_the_langfuse_sdk_pointed_at_evalgap(live_server, token, monkeypatch):
    from langfuse import Langfuse, propagate_attributes

    # Langfuse's resource has no service.name: the source is named by evalgap's header.
    lf = Langfuse(public_key="pk-lf-evalgap", secret_key=token, base_url=live_server.url,
                  additional_headers={"X-Evalgap-Source": "lf-app"}, tracing_enabled=True)
    try:
        with lf.start_as_current_observation(name="support-request", as_type="span",
                                             input={"question": "where is my invoice?"}) as root, \
                propagate_attributes(session_id="lf-sess-1", user_id="lf-user-1"):
            with lf.start_as_current_observation(name="llm", as_type="generation", model="gpt-4o-mini",
                                                 input=[{"role": "user", "content": "where is my invoice?"}]) as gen:
                gen.update(output="Invoices are under Billing.", usage_details={"input": 11, "output": 5})
            root.update(output="Invoices are under Billing.")
        lf.flush()
    finally:
        lf.shutdown()

    turn = Turn.objects.select_related("source", "session").get()
    assert (turn.session.external_id, turn.user_id) == ("lf-sess-1", "lf-user-1")
    assert (turn.source.name, turn.query, turn.response) == ("lf-app", "where is my invoice?",
                                                             "Invoices are under Billing.")
    assert turn.model == "gpt-4o-mini"
    assert turn.metadata["token_count"] == {"prompt": 11, "completion": 5, "total": 16}


def test_a_span_that_ends_after_its_root_refreshes_the_turn_it_made(traced):
    from opentelemetry import trace

    provider = traced()
    tracer = provider.get_tracer("support-bot")
    # given: a retrieval started inside the request but still running when the request span ends (async work)
    root = tracer.start_span("answer", attributes={"openinference.span.kind": "CHAIN", "session.id": "sess-44",
                                                   "input.value": "what are your opening hours?",
                                                   "output.value": "9 to 5, Monday to Friday."})
    late = tracer.start_span("retrieve", context=trace.set_span_in_context(root),
                             attributes={"openinference.span.kind": "RETRIEVER"})
    root.end()  # exported at once: the turn exists, without contexts
    assert Turn.objects.get().contexts == []
    # when: the late child ends and is exported in a request of its own
    late.set_attribute("retrieval.documents.0.document.content", "We are open 9-17 on weekdays.")
    late.end()
    provider.force_flush()
    # then: still one turn, now with the child's documents
    turn = Turn.objects.get()
    assert (turn.query, turn.contexts, turn.metadata["trace"]["spans"]) == (
        "what are your opening hours?", ["We are open 9-17 on weekdays."], 2)
