"""The OTLP/HTTP trace receiver (POST /api/otlp/v1/traces): OTLP bodies as the specification encodes them
(JSON here, protobuf and gzip too), each trace one turn through the one ingest back half."""
import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from google.protobuf.json_format import ParseDict
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from production.models import RejectedLine, Session, TraceSpan, Turn

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_790_000_000_000_000_000  # ns since the epoch: 2026-09-21T14:13:20Z


def s(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id, name, attrs, parent="", start=0, end=1, trace=TRACE, events=()):
    out = {"traceId": trace, "spanId": span_id, "name": name, "kind": 1,
           "startTimeUnixNano": str(T0 + start * 1_000_000), "endTimeUnixNano": str(T0 + end * 1_000_000),
           "attributes": [s(k, v) for k, v in attrs.items()], "status": {"code": 1}}
    if parent:
        out["parentSpanId"] = parent
    if events:
        out["events"] = [{"name": n, "timeUnixNano": str(T0), "attributes": [s(k, v) for k, v in a.items()]}
                         for n, a in events]
    return out


def request(*spans, service="support-bot"):
    resource = {"attributes": [s("service.name", service)]} if service else {}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


# An agent answering from a retriever, with one tool call: the OpenInference shape.
AGENT = span("a000000000000001", "agent", {
    "openinference.span.kind": "AGENT", "input.value": "how do I reset my password?",
    "output.value": "Go to Settings > Security.", "session.id": "sess-1", "user.id": "u-9"}, start=0, end=900)
RETRIEVER = span("a000000000000002", "retrieve", {
    "openinference.span.kind": "RETRIEVER", "input.value": "reset password",
    "retrieval.documents.0.document.content": "Passwords are reset in Settings > Security.",
    "retrieval.documents.1.document.content": "Reset links expire after one hour."},
    parent="a000000000000001", start=10, end=50)
LLM = span("a000000000000003", "ChatCompletion", {
    "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
    "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "be brief",
    "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "how do I reset my password?",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_account",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"user": "u-9"}',
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
    "llm.token_count.prompt": 120, "llm.token_count.completion": 30}, parent="a000000000000001", start=60, end=400)
TOOL = span("a000000000000004", "lookup_account", {
    "openinference.span.kind": "TOOL", "tool.name": "lookup_account", "tool.id": "call_1",
    "input.value": '{"user": "u-9"}', "output.value": '{"locked": false}'}, parent="a000000000000001",
    start=410, end=420)


@pytest.fixture
def ingest_client(ingest_service):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get(user=ingest_service).key}")
    return client


def post(client, body, **kw):
    return client.post("/api/otlp/v1/traces", data=json.dumps(body).encode(), content_type="application/json", **kw)


@pytest.mark.django_db
def test_an_openinference_trace_becomes_one_turn_with_contexts_and_tool_calls(ingest_client):
    resp = post(ingest_client, request(AGENT, RETRIEVER, LLM, TOOL))
    assert resp.status_code == 200, resp.content
    assert resp.json()["evalgap"]["support-bot"] == {
        "read": 4, "created": 1, "duplicates": 0, "rejected": 0, "events": 0, "shadow": 0, "pending": 0, "updated": 0}
    turn = Turn.objects.select_related("session", "source").get()
    assert (turn.source.name, turn.external_id, turn.session.external_id, turn.user_id) == (
        "support-bot", TRACE, "sess-1", "u-9")
    assert (turn.query, turn.response, turn.model) == (
        "how do I reset my password?", "Go to Settings > Security.", "gpt-4o-mini")
    assert turn.contexts == ["Passwords are reset in Settings > Security.", "Reset links expire after one hour."]
    assert turn.metadata["tool_calls"] == [{"name": "lookup_account", "arguments": '{"user": "u-9"}', "id": "call_1",
                                            "result": '{"locked": false}'}]
    assert turn.metadata["token_count"] == {"prompt": 120, "completion": 30, "total": 150}
    assert turn.timestamp.isoformat() == "2026-09-21T14:13:20+00:00"
    assert turn.latency_ms == pytest.approx(900)


@pytest.mark.django_db
def test_the_same_trace_sent_twice_is_one_turn(ingest_client):
    post(ingest_client, request(AGENT, RETRIEVER, LLM))
    resp = post(ingest_client, request(AGENT, RETRIEVER, LLM))
    assert resp.json()["evalgap"]["support-bot"]["duplicates"] == 1
    assert Turn.objects.count() == 1
    assert TraceSpan.objects.count() == 3


@pytest.mark.django_db
def test_spans_in_several_requests_assemble_into_one_turn_children_first_or_after_the_root(ingest_client):
    # given: a retriever span first; the trace has no root yet
    first = post(ingest_client, request(RETRIEVER)).json()["evalgap"]["support-bot"]
    assert (first["created"], first["pending"]) == (0, 1)
    assert Turn.objects.count() == 0
    # when: the root arrives, then a child that ended after it was exported
    post(ingest_client, request(AGENT))
    assert Turn.objects.get().contexts == ["Passwords are reset in Settings > Security.",
                                           "Reset links expire after one hour."]
    late = post(ingest_client, request(TOOL)).json()["evalgap"]["support-bot"]
    # then: one turn, refreshed in place with the late tool call; its session is detected again
    assert (late["created"], late["duplicates"], late["updated"]) == (0, 1, 1)
    turn = Turn.objects.get()
    assert turn.metadata["tool_calls"][0]["result"] == '{"locked": false}'
    assert turn.metadata["trace"]["spans"] == 3
    assert Session.objects.get().dirty
    # and the same late span again changes nothing
    again = post(ingest_client, request(TOOL)).json()["evalgap"]["support-bot"]
    assert (again["duplicates"], again["updated"]) == (1, 0)


@pytest.mark.django_db
def test_a_span_that_cannot_be_mapped_is_a_rejected_line_and_the_rest_is_kept(ingest_client):
    # given: a span with a broken trace id, and a root span with no user message anywhere
    broken = {**LLM, "traceId": "not-hex"}
    mute = span("b000000000000001", "GET /health", {"http.method": "GET"},
                trace="6b8efff798038103d269b633813fc60c")
    resp = post(ingest_client, request(AGENT, broken, mute))
    assert resp.status_code == 200
    body = resp.json()
    assert body["partialSuccess"]["rejectedSpans"] == 2
    assert body["evalgap"]["support-bot"]["created"] == 1
    reasons = dict(RejectedLine.objects.values_list("line_no", "reason"))
    assert reasons[2].startswith("trace_id: expected 32 hex digits")
    assert reasons[3].startswith("trace: no LLM, CHAIN or AGENT span")
    assert set(RejectedLine.objects.values_list("origin", flat=True)) == {"otlp"}


@pytest.mark.django_db
def test_protobuf_and_gzip_are_read_and_answered_in_protobuf(ingest_client):
    message = ParseDict(_as_proto_json(request(AGENT, RETRIEVER)), ExportTraceServiceRequest())
    resp = ingest_client.post("/api/otlp/v1/traces", data=gzip.compress(message.SerializeToString()),
                              content_type="application/x-protobuf", HTTP_CONTENT_ENCODING="gzip")
    assert resp.status_code == 200, resp.content
    assert resp["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(resp.content)
    assert answer.partial_success.rejected_spans == 0
    turn = Turn.objects.get()
    assert (turn.external_id, turn.query, len(turn.contexts)) == (TRACE, "how do I reset my password?", 2)


def _as_proto_json(body: dict) -> dict:
    """OTLP/JSON -> protobuf's JSON mapping: ids are hex in OTLP/JSON, base64 in protobuf's."""
    import base64

    def fix(sp):
        out = dict(sp)
        for k in ("traceId", "spanId", "parentSpanId"):
            if k in out:
                out[k] = base64.b64encode(bytes.fromhex(out[k])).decode()
        return out

    return {"resourceSpans": [{**rs, "scopeSpans": [{**ss, "spans": [fix(x) for x in ss["spans"]]}
                                                    for ss in rs["scopeSpans"]]} for rs in body["resourceSpans"]]}


@pytest.mark.django_db
def test_the_source_is_the_service_name_unless_the_query_names_one(ingest_client):
    post(ingest_client, request(AGENT), )
    post(ingest_client, request(span("c000000000000001", "chat", {"openinference.span.kind": "LLM",
                                                                  "input.value": "hi", "output.value": "hello"},
                                     trace="7b8efff798038103d269b633813fc60c")),
         QUERY_STRING="source=other")
    assert sorted(Turn.objects.values_list("source__name", flat=True)) == ["other", "support-bot"]
    resp = post(ingest_client, request(AGENT, service="unknown_service:python"))
    assert resp.status_code == 400 and "service.name" in resp.json()["source"]


@pytest.mark.django_db
def test_a_body_that_is_not_otlp_is_a_400_and_no_token_a_401(ingest_client, client):
    resp = ingest_client.post("/api/otlp/v1/traces", data=b"\x00garbage", content_type="application/x-protobuf")
    assert resp.status_code == 400
    resp = ingest_client.post("/api/otlp/v1/traces", data=b"xx", content_type="application/json",
                              HTTP_CONTENT_ENCODING="gzip")
    assert resp.status_code == 400 and "gzip" in resp.json()["body"]
    assert post(client, request(AGENT)).status_code == 401
    assert Turn.objects.count() == 0


GENAI_TRACE = "9c8efff798038103d269b633813fc60c"


@pytest.mark.django_db
@pytest.mark.parametrize("attrs,events", [
    # the current conventions: messages as JSON attributes, parts inside
    ({"gen_ai.input.messages": json.dumps([{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                                           {"role": "user", "parts": [{"type": "text", "content": "cancel my plan"}]}]),
      "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                             "parts": [{"type": "text", "content": "Done: it ends on the 30th."}]}])},
     ()),
    # the older ones: a user-message event and a choice event
    ({}, (("gen_ai.system.message", {"content": "be brief"}), ("gen_ai.user.message", {"content": "cancel my plan"}),
          ("gen_ai.choice", {"message": json.dumps({"role": "assistant", "content": "Done: it ends on the 30th."}),
                             "index": 0}))),
    # older still (and OpenLLMetry): prompt and completion events ...
    ({}, (("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "cancel my plan"}])}),
          ("gen_ai.content.completion", {"gen_ai.completion": json.dumps(
              [{"role": "assistant", "content": "Done: it ends on the 30th."}])}))),
    # ... and indexed prompt/completion attributes
    ({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "cancel my plan",
      "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Done: it ends on the 30th."}, ()),
], ids=["input-output-messages", "message-events", "content-events", "indexed-attributes"])
def test_a_genai_semantic_conventions_span_becomes_a_turn(ingest_client, attrs, events):
    chat = span("d000000000000001", "chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 8, "gen_ai.conversation.id": "conv-5", **attrs},
        trace=GENAI_TRACE, events=events)
    resp = post(ingest_client, request(chat))
    assert resp.json()["evalgap"]["support-bot"]["created"] == 1, resp.json()
    turn = Turn.objects.select_related("session").get()
    assert (turn.external_id, turn.session.external_id) == (GENAI_TRACE, "conv-5")
    assert (turn.query, turn.response) == ("cancel my plan", "Done: it ends on the 30th.")
    assert turn.model == "gpt-4o-2024-08-06"
    assert turn.metadata["token_count"] == {"prompt": 50, "completion": 8, "total": 58}


@pytest.mark.django_db
def test_a_genai_agent_keeps_its_tool_calls_with_their_results(ingest_client):
    agent = span("e000000000000001", "invoke_agent support", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "is order 7 shipped?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Yes, today."}]}])},
        trace=GENAI_TRACE, end=500)
    tool = span("e000000000000002", "execute_tool order_status", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_status", "gen_ai.tool.call.id": "c-1",
        "gen_ai.tool.call.arguments": '{"order": 7}', "gen_ai.tool.call.result": '{"shipped": true}'},
        parent="e000000000000001", trace=GENAI_TRACE, start=100, end=200)
    post(ingest_client, request(tool, agent))
    turn = Turn.objects.get()
    assert (turn.query, turn.response, turn.metadata["trace"]["kind"]) == ("is order 7 shipped?", "Yes, today.", "AGENT")
    assert turn.metadata["tool_calls"] == [{"name": "order_status", "arguments": '{"order": 7}', "id": "c-1",
                                            "result": '{"shipped": true}'}]


@pytest.mark.django_db
def test_a_trace_under_an_http_root_span_takes_its_topmost_llm_span(ingest_client):
    http = span("f000000000000001", "POST /chat", {"http.request.method": "POST"}, end=1000)
    llm = span("f000000000000002", "chat", {"openinference.span.kind": "LLM", "input.value": "hi there",
                                            "output.value": "hello!"}, parent="f000000000000001", start=5, end=900)
    post(ingest_client, request(llm, http))
    turn = Turn.objects.get()
    assert (turn.query, turn.response, turn.metadata["trace"]["span_id"]) == ("hi there", "hello!", "f000000000000002")
    assert turn.timestamp.isoformat() == "2026-09-21T14:13:20+00:00"  # the root's start: when the user asked


@pytest.mark.django_db
def test_a_span_the_database_cannot_hold_is_rejected_and_its_trace_still_assembles(ingest_client):
    # given: a retriever span with a NUL character (PostgreSQL's JSON cannot hold one) next to its root
    poisoned = span("a000000000000005", "retrieve", {"openinference.span.kind": "RETRIEVER",
                                                     "retrieval.documents.0.document.content": "bad\x00byte"},
                    parent="a000000000000001")
    resp = post(ingest_client, request(AGENT, poisoned))
    # then: the span is a rejected line naming where the NUL is; the turn is made from the rest
    assert resp.status_code == 200
    assert resp.json()["partialSuccess"]["rejectedSpans"] == 1
    reject = RejectedLine.objects.get()
    assert reject.line_no == 2
    assert reject.reason == ("span.attributes.retrieval.documents.0.document.content: contains a NUL character "
                             "(\\u0000), which cannot be stored")
    assert Turn.objects.get().contexts == []
    assert TraceSpan.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("body,status", [
    ({"resourceSpans": 5}, 400),
    ({"resourceSpans": [{"scopeSpans": [{"spans": 7}]}]}, 400),
    ({"resourceSpans": [{"resource": {"attributes": [{"value": {}}]}, "scopeSpans": []}]}, 400),
    ([1, 2], 400),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12, "spanId": "x"}, "a string",
                                                   {**AGENT, "attributes": [{"key": "k"}], "startTimeUnixNano": "soon"}]}]}]},
     200),
], ids=["resourceSpans-not-a-list", "spans-not-a-list", "attribute-without-key", "an-array", "spans-all-broken"])
def test_malformed_otlp_json_is_a_400_or_rejected_spans_never_a_500(ingest_client, body, status):
    resp = ingest_client.post("/api/otlp/v1/traces?source=fuzz", data=json.dumps(body).encode(),
                              content_type="application/json")
    assert resp.status_code == status, resp.content
    if status == 200:
        assert resp.json()["partialSuccess"]["rejectedSpans"] == 3
        assert RejectedLine.objects.count() == 3
    assert Turn.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["Token", "Bearer", "Basic"])
def test_the_ingest_token_is_accepted_as_token_bearer_or_basic_and_a_wrong_one_refused(ingest_service, scheme):
    import base64

    key = Token.objects.get(user=ingest_service).key
    client = APIClient()
    credential = base64.b64encode(f"pk-any:{key}".encode()).decode() if scheme == "Basic" else key
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {credential}")
    assert post(client, request(AGENT)).status_code == 200
    wrong = base64.b64encode(b"pk-any:nope").decode() if scheme == "Basic" else "nope"
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {wrong}")
    resp = post(client, request(AGENT))
    assert resp.status_code == 401 and resp["WWW-Authenticate"] == "Bearer"
    assert Turn.objects.count() == 1
