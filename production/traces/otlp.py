"""OTLP/HTTP trace request bodies (protobuf or JSON, gzip or not) -> spans, each with its place in the body.

The encodings are the OTLP specification's (opentelemetry-proto, `ExportTraceServiceRequest`): in JSON,
trace and span ids are hex strings, 64-bit integers may be strings, enums are numbers, and attribute
values are `AnyValue` objects (`{"stringValue": ...}`); in protobuf the ids are raw bytes.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

UNNAMED_SERVICES = ("", "unknown_service")  # the SDK's default when no service.name is set


class OtlpBodyError(ValueError):
    """The body as a whole cannot be read (bad gzip, not protobuf, not JSON): a 400, nothing stored."""


class OtlpBodyTooLarge(OtlpBodyError):
    pass


@dataclass(slots=True)
class SpanIn:
    line_no: int  # the span's place in the body, from 1, across every resource and scope
    span: dict | None  # None when the span could not be read; `error` says why
    service: str
    error: str = ""
    raw: str = ""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """gzip (or none); never inflates past `limit` bytes, so a small bomb cannot fill the memory."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        data = body
    elif encoding == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise OtlpBodyError(f"body: not valid gzip ({e})") from None
        if not d.eof and len(data) <= limit:
            raise OtlpBodyError("body: gzip stream ends early")
    else:
        raise OtlpBodyError(f"Content-Encoding: {encoding!r} is not supported (send gzip or none)")
    if len(data) > limit:
        raise OtlpBodyTooLarge(f"body: larger than OTLP_MAX_BODY_BYTES ({limit} bytes) once decompressed")
    return data


def is_json(content_type: str) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf", "application/octet-stream"):
        return False
    if media == "application/json":
        return True
    raise OtlpBodyError(f"Content-Type: {media or 'none'!r} is not an OTLP encoding "
                        "(send application/x-protobuf or application/json)")


def read_request(data: bytes, json: bool) -> list[SpanIn]:
    if not json:
        return _read_protobuf(data)
    try:
        return _read_json(data)
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        # A span that cannot be read is rejected by itself (_read_json); this is the request's frame.
        raise OtlpBodyError(f"body: not an OTLP ExportTraceServiceRequest ({type(e).__name__}: {e})") from None


def response_body(rejected: int, message: str, json: bool, summary: dict) -> bytes:
    """ExportTraceServiceResponse: partial success names how many spans were rejected and why. In JSON,
    what evalgap did per source rides along under `evalgap` (OTLP clients ignore unknown fields)."""
    if json:
        body = {"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}} if rejected else {}
        return orjson.dumps({**body, "evalgap": summary})
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    return resp.SerializeToString()


# --- protobuf ----------------------------------------------------------------------------------

def _read_protobuf(data: bytes) -> list[SpanIn]:
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(data)
    except DecodeError as e:
        raise OtlpBodyError(f"body: not an OTLP protobuf ExportTraceServiceRequest ({e})") from None
    out: list[SpanIn] = []
    for rs in req.resource_spans:
        service = _service(_pb_attrs(rs.resource.attributes))
        for ss in rs.scope_spans:
            for s in ss.spans:
                span = {
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name, "start_ns": s.start_time_unix_nano or None, "end_ns": s.end_time_unix_nano or None,
                    "attributes": _pb_attrs(s.attributes),
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano or None,
                                "attributes": _pb_attrs(e.attributes)} for e in s.events],
                    "status": {"code": s.status.code, "message": s.status.message},
                    "service": service, "scope": ss.scope.name,
                }
                out.append(_checked(len(out) + 1, span, service))
    return out


def _pb_attrs(kvs) -> dict:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def _pb_value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


# --- JSON --------------------------------------------------------------------------------------

def _read_json(data: bytes) -> list[SpanIn]:
    try:
        req = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise OtlpBodyError(f"body: invalid JSON ({e})") from None
    if not isinstance(req, dict) or not isinstance(req.get("resourceSpans", []), list):
        raise OtlpBodyError("body: expected an ExportTraceServiceRequest object with a resourceSpans array")
    out: list[SpanIn] = []
    for rs in req.get("resourceSpans") or []:
        rs = rs if isinstance(rs, dict) else {}
        service = _service(_json_attrs((rs.get("resource") or {}).get("attributes")))
        for ss in rs.get("scopeSpans") or []:
            ss = ss if isinstance(ss, dict) else {}
            scope = (ss.get("scope") or {}).get("name", "") if isinstance(ss.get("scope"), dict) else ""
            for s in ss.get("spans") or []:
                line_no = len(out) + 1
                try:
                    span = _json_span(s, service, scope)
                except (TypeError, ValueError, AttributeError, KeyError) as e:
                    out.append(SpanIn(line_no, None, service, f"span: cannot be read ({type(e).__name__}: {e})",
                                      _raw(s)))
                    continue
                out.append(_checked(line_no, span, service))
    return out


def _json_span(s: dict, service: str, scope: str) -> dict:
    if not isinstance(s, dict):
        raise TypeError("expected an object")
    status = s.get("status") or {}
    return {
        "trace_id": _hex_id(s.get("traceId")), "span_id": _hex_id(s.get("spanId")),
        "parent_span_id": _hex_id(s.get("parentSpanId")), "name": str(s.get("name") or ""),
        "start_ns": _int(s.get("startTimeUnixNano")), "end_ns": _int(s.get("endTimeUnixNano")),
        "attributes": _json_attrs(s.get("attributes")),
        "events": [{"name": str(e.get("name") or ""), "time_ns": _int(e.get("timeUnixNano")),
                    "attributes": _json_attrs(e.get("attributes"))} for e in s.get("events") or []],
        "status": {"code": _status_code(status.get("code")), "message": str(status.get("message") or "")},
        "service": service, "scope": scope,
    }


def _json_attrs(kvs) -> dict:
    return {kv["key"]: _json_value(kv.get("value") or {}) for kv in kvs or []}


def _json_value(v: dict):
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [_json_value(x) for x in (v["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in v:
        return _json_attrs((v["kvlistValue"] or {}).get("values"))
    if "bytesValue" in v:
        return str(v["bytesValue"])  # base64, as OTLP/JSON sends it
    return None


def _hex_id(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise TypeError(f"an id must be a hex string, got {type(value).__name__}")
    return value.lower()


def _int(value) -> int | None:
    return int(value) if value not in (None, "", 0, "0") else None


def _status_code(value) -> int:
    names = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
    return names[value] if isinstance(value, str) and value in names else int(value or 0)


# --- both ----------------------------------------------------------------------------------------

def _service(resource: dict) -> str:
    name = str(resource.get("service.name") or "").strip()
    return "" if name.split(":")[0] in UNNAMED_SERVICES else name


def _is_hex(value: str, size: int) -> bool:
    if len(value) != size:
        return False
    try:
        return int(value, 16) != 0  # an all-zero id is invalid (OTLP)
    except ValueError:
        return False


def _checked(line_no: int, span: dict, service: str) -> SpanIn:
    """A span without a valid trace or span id belongs to no trace: it is rejected, by name of the field."""
    for field, size in (("trace_id", 32), ("span_id", 16)):
        if not _is_hex(span[field], size):
            return SpanIn(line_no, None, service, f"{field}: expected {size} hex digits, not all zero, "
                                                  f"got {span[field][:40]!r}", _raw(span))
    if span["parent_span_id"] and not _is_hex(span["parent_span_id"], 16):
        return SpanIn(line_no, None, service, f"parent_span_id: expected 16 hex digits, got "
                                              f"{span['parent_span_id'][:40]!r}", _raw(span))
    return SpanIn(line_no, span, service)


def _raw(value) -> str:
    try:
        return orjson.dumps(value, default=str).decode()[:2000]
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)[:2000]
