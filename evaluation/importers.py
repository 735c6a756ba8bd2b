"""Readers for per-item scores computed by other eval tools, each in the form that tool writes.

- ``scores-jsonl``: one ``{"key": K, "score": X}`` object a line (other fields ignored; ``--metric``
  reads another field than ``score``).
- ``ragas``: the table ``EvaluationResult.to_pandas()`` gives, saved as CSV (``df.to_csv``) or JSON
  lines (``df.to_json(orient="records", lines=True)``): the sample columns (``user_input``,
  ``retrieved_contexts``, ``response``, ``reference``, …) and one column per metric. RAGAS drops
  the export's ``key`` column when it builds its samples, so a row is matched to its item by
  ``key`` when the table still has it, else by its ``user_input`` and ``reference`` (rows with the
  same content go to the items with that content in key order, the order of the export).
- ``deepeval``: a test run as DeepEval saves it (``DEEPEVAL_RESULTS_FOLDER/test_run_*.json``,
  ``.deepeval/.latest_run_full.json``, or ``.deepeval/.latest_test_run.json`` which wraps it in
  ``testRunData``): ``testCases[*]`` with ``name``, ``metadata`` (the golden's
  ``additional_metadata``, which carries ``key``) and ``metricsData[*]`` ``{name, score, error}``.
- ``promptfoo``: the output of ``promptfoo eval -o out.json``: ``results.results[*]`` with
  ``testCase`` (its ``metadata`` carries ``key``; ``description`` is the key too), ``score``,
  ``namedScores`` (``--metric``), ``success``, ``failureReason`` (2 = the provider errored) and
  ``response.output``.

Each reader returns rows; matching rows to a version's items is the service's job.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from core.jsonl import JsonLineError, json_objects

FORMATS = ("scores-jsonl", "ragas", "deepeval", "promptfoo")

# Columns of a RAGAS sample (SingleTurnSample / MultiTurnSample) and of our ragas export: never metrics.
RAGAS_SAMPLE_COLUMNS = {
    "user_input", "retrieved_contexts", "reference_contexts", "retrieved_context_ids", "reference_context_ids",
    "response", "multi_responses", "reference", "rubrics", "rubric", "persona_name", "query_style",
    "query_length", "reference_tool_calls", "reference_topics", "key", "source", "metadata",
}
PROMPTFOO_ERROR = 2  # ResultFailureReason.ERROR: the provider failed, nothing was graded


class ImportFormatError(ValueError):
    """The file is not what the format says; the message names the line or field."""


@dataclass
class Row:
    """One scored item as the file has it. ``key`` is None when the file carries no item key
    (a RAGAS table): ``query`` and ``reference`` then find the item."""

    position: int  # line or element number in the file, 1-based, for messages
    key: str | None
    score: float | None
    error: str = ""
    answer: str = ""
    rationale: str = ""
    query: str | None = None
    reference: str | None = None


def _number(value, what: str) -> tuple[float | None, str]:
    """A finite float, or (None, why not): tools write NaN/null for a metric that failed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"no {what}"
    if isinstance(value, bool):
        return None, f"{what} is a boolean, not a number"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None, f"{what} {value!r} is not a number"
    if not math.isfinite(x):
        return None, f"{what} is {value}"
    return x, ""


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ImportFormatError(f"{path}: not UTF-8 ({e})") from None
    except ValueError as e:
        raise ImportFormatError(f"{path}: not JSON ({e})") from None


def _json_lines(path: Path) -> list[tuple[int, dict]]:
    try:
        return list(json_objects(path))
    except JsonLineError as e:
        raise ImportFormatError(str(e)) from None


# --- scores-jsonl ----------------------------------------------------------------------------

def read_scores_jsonl(path: Path, metric: str | None) -> tuple[list[Row], str]:
    field = metric or "score"
    rows = []
    for n, obj in _json_lines(path):
        key = obj.get("key")
        if not isinstance(key, str) or not key:
            raise ImportFormatError(f"line {n}: no \"key\" (a string: the export's item key)")
        if field not in obj:
            raise ImportFormatError(f"line {n}: no {field!r} field")
        score, why = _number(obj[field], field)
        rows.append(Row(n, key, score, error=why))
    return rows, field


# --- ragas -----------------------------------------------------------------------------------

def _ragas_records(path: Path) -> list[tuple[int, dict]]:
    head = path.read_text(encoding="utf-8", errors="replace")[:4096].lstrip()
    if head.startswith("{"):
        return _json_lines(path)
    if head.startswith("["):  # df.to_json(orient="records") without lines=True
        data = _load_json(path)
        return [(i + 1, r) for i, r in enumerate(data) if isinstance(r, dict)]
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "user_input" not in reader.fieldnames:
            raise ImportFormatError(f"{path}: not a RAGAS result table (no user_input column); "
                                    f"save it with result.to_pandas().to_csv(path)")
        # A header row is line 1; pandas may add an unnamed index column (to_csv without index=False).
        return [(i + 2, {k: v for k, v in r.items() if k}) for i, r in enumerate(reader)]


def _ragas_metric(records: list[tuple[int, dict]], metric: str | None) -> str:
    columns = list(dict.fromkeys(k for _, r in records for k in r))
    if metric:
        if metric not in columns:
            raise ImportFormatError(f"--metric {metric!r} is not a column (columns: {', '.join(columns)})")
        return metric
    candidates = [c for c in columns if c not in RAGAS_SAMPLE_COLUMNS and not c.startswith("Unnamed")]
    numeric = [c for c in candidates if any(_number(r.get(c), c)[0] is not None for _, r in records)]
    if len(numeric) != 1:
        raise ImportFormatError(
            "pick the metric column with --metric (" + (f"metric columns: {', '.join(numeric)}" if numeric
                                                        else "no numeric metric column found") + ")")
    return numeric[0]


def read_ragas(path: Path, metric: str | None) -> tuple[list[Row], str]:
    records = _ragas_records(path)
    if not records:
        raise ImportFormatError(f"{path}: no rows")
    metric = _ragas_metric(records, metric)
    rows = []
    for n, r in records:
        if "user_input" not in r:
            raise ImportFormatError(f"row {n}: no user_input")
        meta = r.get("metadata")
        if isinstance(meta, str) and meta.strip().startswith("{"):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = None
        key = r.get("key") or (meta.get("key") if isinstance(meta, dict) else None) or None
        score, why = _number(r.get(metric), metric)
        reference = r.get("reference")
        if isinstance(reference, float) and math.isnan(reference):
            reference = None
        rows.append(Row(n, key if isinstance(key, str) else None, score, error=why and f"RAGAS gave {why}",
                        answer=_text(r.get("response")), query=_text(r.get("user_input")),
                        reference=_text(reference) if reference not in (None, "") else ""))
    return rows, metric


# --- deepeval --------------------------------------------------------------------------------

def read_deepeval(path: Path, metric: str | None) -> tuple[list[Row], str]:
    data = _load_json(path)
    if isinstance(data, dict) and "testRunData" in data:  # .deepeval/.latest_test_run.json
        data = data["testRunData"]
    if isinstance(data, dict) and "test_cases_lookup_map" in data:
        raise ImportFormatError("this is DeepEval's cache (.deepeval/.deepeval-cache.json), which has no item "
                                "keys: import the test run (DEEPEVAL_RESULTS_FOLDER/test_run_*.json or "
                                ".deepeval/.latest_test_run.json)")
    if not isinstance(data, dict) or not isinstance(data.get("testCases"), list):
        raise ImportFormatError("not a DeepEval test run: expected a \"testCases\" list")
    cases = data["testCases"]
    names = list(dict.fromkeys(m.get("name") for c in cases for m in (c.get("metricsData") or [])
                               if isinstance(m, dict)))
    if metric is None:
        if len(names) != 1:
            raise ImportFormatError("pick the metric with --metric (metrics in the run: "
                                    f"{', '.join(map(str, names)) or 'none'})")
        metric = names[0]
    elif metric not in names:
        raise ImportFormatError(f"--metric {metric!r} is not in the run (metrics: {', '.join(map(str, names))})")
    rows = []
    for i, case in enumerate(cases, 1):
        meta = case.get("metadata") or case.get("additionalMetadata") or case.get("additional_metadata") or {}
        key = (meta.get("key") if isinstance(meta, dict) else None) or case.get("name")
        if not isinstance(key, str) or not key:
            raise ImportFormatError(f"test case {i}: no item key (metadata.key or name)")
        data_for = [m for m in case.get("metricsData") or [] if isinstance(m, dict) and m.get("name") == metric]
        if not data_for:
            rows.append(Row(i, key, None, error=f"no {metric} result for this test case",
                            answer=_text(case.get("actualOutput"))))
            continue
        m = data_for[0]
        score, why = _number(m.get("score"), metric)
        error = f"DeepEval: {m['error']}" if m.get("error") else (why and f"DeepEval gave {why}")
        rows.append(Row(i, key, None if m.get("error") else score, error=error or "",
                        answer=_text(case.get("actualOutput")), rationale=_text(m.get("reason"))))
    return rows, metric


# --- promptfoo -------------------------------------------------------------------------------

def read_promptfoo(path: Path, metric: str | None) -> tuple[list[Row], str]:
    data = _load_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if isinstance(results, dict):  # `promptfoo eval -o out.json`: {evalId, results: {version, results, ...}}
        results = results.get("results")
    if not isinstance(results, list):
        raise ImportFormatError("not a promptfoo output file: expected results.results (promptfoo eval -o out.json)")
    rows, combos = [], {}
    for i, r in enumerate(results, 1):
        test = r.get("testCase") or {}
        meta = test.get("metadata") or r.get("metadata") or {}
        key = meta.get("key") or test.get("description") or r.get("description")
        if not isinstance(key, str) or not key:
            raise ImportFormatError(f"result {i}: no item key (testCase.metadata.key or description)")
        provider = r.get("provider") or {}
        prompt = r.get("prompt") or {}
        combos.setdefault(key, set()).add((str(provider.get("label") or provider.get("id")),
                                           str(prompt.get("label") or r.get("promptIdx"))))
        response = r.get("response") or {}
        answer = _text(response.get("output"))
        grading = r.get("gradingResult") or {}
        if r.get("failureReason") == PROMPTFOO_ERROR:
            rows.append(Row(i, key, None, error=f"promptfoo: {_text(r.get('error') or response.get('error'))}",
                            answer=answer))
            continue
        if metric:
            named = r.get("namedScores") or grading.get("namedScores") or {}
            if metric not in named:
                rows.append(Row(i, key, None, error=f"no named score {metric!r}", answer=answer))
                continue
            score, why = _number(named[metric], metric)
        else:
            score, why = _number(r.get("score"), "score")
        rows.append(Row(i, key, score, error=why, answer=answer, rationale=_text(grading.get("reason"))))
    several = {k: v for k, v in combos.items() if len(v) > 1}
    if several:
        key, pairs = next(iter(several.items()))
        raise ImportFormatError(
            f"the eval holds several results per test ({len(pairs)} for {key!r}: "
            f"{', '.join(f'{p} / {q}' for p, q in sorted(pairs))}); a release is one provider and prompt: "
            f"run the release alone (promptfoo eval --filter-providers …) and import that file")
    return rows, metric or "score"


READERS = {"scores-jsonl": read_scores_jsonl, "ragas": read_ragas, "deepeval": read_deepeval,
           "promptfoo": read_promptfoo}


def read_rows(path: str | Path, fmt: str, metric: str | None = None) -> tuple[list[Row], str]:
    """The file's rows and the metric read. Raises ImportFormatError."""
    if fmt not in READERS:
        raise ImportFormatError(f"--format: one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    try:
        rows, used = READERS[fmt](path, metric or None)
    except UnicodeDecodeError as e:
        raise ImportFormatError(f"{path}: not UTF-8 ({e})") from None
    seen: dict[str, int] = {}
    for row in rows:
        if row.key is not None:
            if row.key in seen:
                raise ImportFormatError(f"key {row.key!r} appears twice (rows {seen[row.key]} and {row.position})")
            seen[row.key] = row.position
    return rows, used
