"""Traces in: OTLP/HTTP bodies (`otlp.py`) and the trace exports of Langfuse, LangSmith and Phoenix
(`importers.py`) become spans of one shape (`Span`, a plain dict that is also what the database keeps of
a span waiting for the rest of its trace), and a trace's spans become one turn record of the production
-log contract (`mapping.py`). Nothing here touches the database: `production.services.traces` stores,
assembles and ingests.

A span, as every reader here returns it:

    {"trace_id": hex, "span_id": hex, "parent_span_id": hex or "", "name": str,
     "start_ns": int or None, "end_ns": int or None, "attributes": {key: value},
     "events": [{"name": str, "time_ns": int or None, "attributes": {...}}],
     "status": {"code": int, "message": str}, "service": str, "scope": str}
"""
