"""What one item becomes in each format: the definition of every export, one item at a time.

The writers (``writers.py``) build whole columns at once from the frozen version's column store; for
an item whose nested fields are not plain (a context that is not text, a conversation message with
other keys…) they fall back to these functions, and the tests compare both on every format.
"""
from __future__ import annotations

import orjson

from ..models import ITEM_FIELDS, NESTED_FIELDS

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets (OWASP: CSV
# injection); production text is whatever users typed.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def dumps(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def csv_cell_safe(value: str) -> str:
    """A cell a spreadsheet would evaluate (=, +, -, @, tab, CR first) gets a leading ' : Excel,
    LibreOffice and Sheets then show the text instead of running it."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_row(item: dict, raw: bool = False) -> list:
    """ITEM_FIELDS in order: nested fields as canonical JSON text, the probability as repr() or ""."""
    row = []
    for f in ITEM_FIELDS:
        v = item[f]
        if f in NESTED_FIELDS:
            v = dumps(v).decode()
        elif f == "inclusion_probability":
            v = "" if v is None else repr(float(v))
        elif not raw and isinstance(v, str):
            v = csv_cell_safe(v)
        row.append(v)
    return row


def arrow_schema():
    """Parquet and HF columns: lists stay lists; provenance, whose keys vary by source, is JSON text."""
    import pyarrow as pa

    s = pa.string()
    types = {"contexts": pa.list_(s), "failure_modes": pa.list_(s),
             "conversation": pa.list_(pa.struct([("role", s), ("content", s)])),
             "inclusion_probability": pa.float64()}
    return pa.schema([(f, types.get(f, s)) for f in ITEM_FIELDS])


def arrow_row(item: dict) -> dict:
    row = dict(item)
    row["contexts"] = [str(c) for c in item["contexts"] or []]
    row["failure_modes"] = [str(c) for c in item["failure_modes"] or []]
    row["conversation"] = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                           for m in item["conversation"] or []]
    row["provenance"] = dumps(item["provenance"]).decode()
    return row


def meta(testset: str, version: int, item: dict, *extra: str) -> dict:
    out = {"key": item["key"], "source": item["source"], "verdict": item["verdict"],
           "failure_modes": item["failure_modes"], "stratum": item["stratum"],
           "inclusion_probability": item["inclusion_probability"], "testset": testset, "version": version}
    for f in extra:
        out[f] = item[f]
    return out


def ragas_row(testset: str, version: int, item: dict) -> dict:
    return {"user_input": item["query"], "retrieved_contexts": list(item["contexts"] or []),
            "response": item["response"], "reference": item["reference_answer"] or None,
            "key": item["key"], "source": item["source"],
            "metadata": meta(testset, version, item, "conversation", "provenance")}


def deepeval_golden(testset: str, version: int, item: dict) -> dict:
    return {"name": item["key"], "input": item["query"], "expected_output": item["reference_answer"] or None,
            "context": list(item["contexts"] or []),
            "additional_metadata": meta(testset, version, item, "response", "conversation", "provenance")}


def _text(value) -> str:
    return value if isinstance(value, str) else dumps(value).decode()


def promptfoo_test(testset: str, version: int, item: dict) -> dict:
    reference = item["reference_answer"]
    # A context that is not text (never written by promotion) joins as its JSON.
    return {"description": item["key"],
            "vars": {"query": item["query"], "context": "\n\n".join(_text(c) for c in item["contexts"] or []),
                     "conversation": "\n".join(f"{m.get('role', '')}: {m.get('content', '')}"
                                               for m in item["conversation"] or []),
                     "reference_answer": reference},
            "assert": [{"type": "factuality", "value": reference}] if reference.strip() else [],
            "metadata": meta(testset, version, item, "response", "conversation")}


JSON_ROWS = {"ragas": ragas_row, "deepeval": deepeval_golden, "promptfoo": promptfoo_test}
