"""Exports of a test set version, for the eval tools that consume it.

Formats (each item carries `source`; generated cases have source = "generated"):

- ``jsonl``: canonical. One line per item, sorted by key, each the item's canonical JSON (sorted keys,
  every field of ``ITEM_FIELDS`` including ``provenance``). These are exactly the bytes the version's
  sha256 covers, so ``sha256(file) == version.sha256``.
- ``csv``: the same columns; nested fields (contexts, conversation, failure_modes, provenance) as
  canonical JSON text; UTF-8, RFC 4180 quoting.
- ``parquet``: the same columns with an explicit Arrow schema (lists stay lists; provenance, whose keys
  vary by source, is canonical JSON text).
- ``hf``: a folder that ``datasets.load_from_disk(path)`` reads (the layout ``Dataset.save_to_disk``
  writes: one Arrow stream file, ``dataset_info.json``, ``state.json``), with the same explicit schema as
  Parquet, so no type is guessed from the data (a JSONL file would make ``load_dataset("json")`` infer
  types from its first 10 MB, which breaks on e.g. all-empty lists there). If ``path`` ends in ``.zip``
  the folder is written into a zip archive instead (one top-level folder): that is the HTTP download.
- ``ragas``: JSONL with RAGAS ``SingleTurnSample`` columns ``user_input``, ``retrieved_contexts``,
  ``response``, ``reference`` (``EvaluationDataset.from_jsonl``), plus ``key``, ``source`` and a
  ``metadata`` object, which RAGAS ignores.
- ``deepeval``: a JSON array of goldens (``EvaluationDataset.add_goldens_from_json_file``): ``name``
  (the key), ``input``, ``expected_output``, ``context``, ``additional_metadata`` (source, verdict, …).
- ``promptfoo``: a tests file (``tests: file://…json`` in promptfooconfig.yaml): a JSON array of test
  cases ``{description, vars, assert, metadata}``. ``vars``: ``query``, ``context`` (the contexts
  joined by a blank line: an array var would make promptfoo expand it into several tests),
  ``conversation`` (the earlier turns the annotator saw, one ``role: content`` line each),
  ``reference_answer``; ``assert``: a ``factuality`` check against the reference answer where there is
  one; ``metadata``: key, source, verdict, failure modes, stratum, … (``--filter-metadata source=…``).

Items are read with a database iterator in chunks and written as they come, so memory stays bounded.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import orjson

from .models import ITEM_FIELDS, NESTED_FIELDS, TestSetVersion
from .selectors import TestSetError
from .services.promotion import canonical
from .services.versions import iter_items  # noqa: F401 (iter_items: re-exported)

FORMATS = ("jsonl", "csv", "parquet", "hf", "ragas", "deepeval", "promptfoo")
CHUNK = 2000
BATCH_ROWS = 5000

_DOWNLOADS = {
    "jsonl": ("application/x-ndjson", ".jsonl"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "parquet": ("application/vnd.apache.parquet", ".parquet"),
    "hf": ("application/zip", "-hf.zip"),
    "ragas": ("application/x-ndjson", "-ragas.jsonl"),
    "deepeval": ("application/json", "-deepeval.json"),
    "promptfoo": ("application/json", "-promptfoo-tests.json"),
}


def content_type_and_filename(version: TestSetVersion, fmt: str) -> tuple[str, str]:
    """The Content-Type and download filename of an export; every format downloads as ONE file
    (hf as a zip of its folder). ``export_version(version, fmt, dir / filename)`` writes that file."""
    _check_format(fmt)
    content_type, suffix = _DOWNLOADS[fmt]
    return content_type, f"{version.testset.name}-v{version.number}{suffix}"


def export_version(version: TestSetVersion, fmt: str, path: Path, *, allow_draft: bool = False) -> Path:
    """Write ``version`` in format ``fmt`` to ``path`` (a file, or for ``hf`` a folder unless ``path``
    ends in .zip) and return it. The write is atomic: ``path`` appears only when complete.
    Raises TestSetError for an unknown format or a draft version (a draft can still change)."""
    _check_format(fmt)
    if version.status != TestSetVersion.Status.FROZEN and not allow_draft:
        raise TestSetError(f"version: {version.testset.name} v{version.number} is a draft; freeze it first "
                           f"(an export must be reproducible)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        if fmt == "hf" and path.suffix == ".zip":
            _write_hf_zip(version, tmp)
        else:
            WRITERS[fmt](version, tmp)
        _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise TestSetError(f"format: unknown export format {fmt!r} (one of {', '.join(FORMATS)})")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _dumps(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _meta(version: TestSetVersion, item: dict, *extra: str) -> dict:
    meta = {"key": item["key"], "source": item["source"], "verdict": item["verdict"],
            "failure_modes": item["failure_modes"], "stratum": item["stratum"],
            "inclusion_probability": item["inclusion_probability"],
            "testset": version.testset.name, "version": version.number}
    for f in extra:
        meta[f] = item[f]
    return meta


# -- jsonl / csv -------------------------------------------------------------------------------------

def _write_jsonl(version: TestSetVersion, path: Path) -> None:
    from .services.versions import canonical_cache_path

    cached = canonical_cache_path(version.sha256) if version.sha256 else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, path)  # written at freeze: the same bytes, named by their sha256
        return
    with open(path, "wb") as f:
        buf = []
        for item in iter_items(version):
            buf.append(canonical(item))
            if len(buf) >= CHUNK:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")


def _csv_row(item: dict) -> list:
    row = []
    for f in ITEM_FIELDS:
        v = item[f]
        if f in NESTED_FIELDS:
            v = _dumps(v)
        elif f == "inclusion_probability":
            v = "" if v is None else repr(float(v))
        row.append(v)
    return row


def _write_csv(version: TestSetVersion, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(ITEM_FIELDS)
        for item in iter_items(version):
            w.writerow(_csv_row(item))


# -- parquet / hf (Arrow, explicit schema) --------------------------------------------------------

def arrow_schema():
    import pyarrow as pa

    s = pa.string()
    types = {"contexts": pa.list_(s), "failure_modes": pa.list_(s),
             "conversation": pa.list_(pa.struct([("role", s), ("content", s)])),
             "inclusion_probability": pa.float64()}
    return pa.schema([(f, types.get(f, s)) for f in ITEM_FIELDS])


def _arrow_row(item: dict) -> dict:
    row = dict(item)
    row["contexts"] = [str(c) for c in item["contexts"] or []]
    row["failure_modes"] = [str(c) for c in item["failure_modes"] or []]
    row["conversation"] = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                           for m in item["conversation"] or []]
    row["provenance"] = _dumps(item["provenance"])
    return row


def _record_batches(version: TestSetVersion, schema):
    import pyarrow as pa

    def batch(rows):
        return pa.RecordBatch.from_pydict({f: [r[f] for r in rows] for f in schema.names}, schema=schema)

    rows = []
    for item in iter_items(version):
        rows.append(_arrow_row(item))
        if len(rows) >= BATCH_ROWS:
            yield batch(rows)
            rows = []
    if rows:
        yield batch(rows)


def _write_parquet(version: TestSetVersion, path: Path) -> None:
    import pyarrow.parquet as pq

    schema = arrow_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        wrote = False
        for batch in _record_batches(version, schema):
            w.write_batch(batch)
            wrote = True
        if not wrote:
            w.write_table(schema.empty_table())


def _hf_features(schema) -> dict:
    """`datasets` Features JSON for the Arrow schema (strings, float64, lists of strings, list of
    {role, content})."""
    import pyarrow as pa

    def feature(t):
        if pa.types.is_list(t):
            return {"feature": feature(t.value_type), "_type": "List"}
        if pa.types.is_struct(t):
            return {t.field(i).name: feature(t.field(i).type) for i in range(t.num_fields)}
        return {"dtype": "float64" if pa.types.is_float64(t) else "string", "_type": "Value"}

    return {f.name: feature(f.type) for f in schema}


def _write_hf(version: TestSetVersion, path: Path) -> None:
    """The folder `Dataset.save_to_disk` writes, one shard: `datasets.load_from_disk(path)` reads it."""
    import pyarrow as pa

    path.mkdir(parents=True)
    schema = arrow_schema()
    features = _hf_features(schema)
    schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    data_file = "data-00000-of-00001.arrow"
    with pa.OSFile(str(path / data_file), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
        for batch in _record_batches(version, schema):
            w.write_batch(batch)
    info = {"builder_name": None, "citation": "", "config_name": None,
            "description": f"evalgap test set {version.testset.name} v{version.number} "
                           f"(sha256 {version.sha256})",
            "features": features, "homepage": "", "license": ""}
    (path / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    state = {"_data_files": [{"filename": data_file}], "_fingerprint": (version.sha256 or "draft")[:16],
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": None}
    (path / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))


def _write_hf_zip(version: TestSetVersion, path: Path) -> None:
    folder_name = f"{version.testset.name}-v{version.number}-hf"
    with tempfile.TemporaryDirectory(dir=path.parent) as d:
        folder = Path(d) / folder_name
        _write_hf(version, folder)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.iterdir()):
                z.write(f, f"{folder_name}/{f.name}")


# -- ragas / deepeval / promptfoo --------------------------------------------------------------------

def ragas_row(version: TestSetVersion, item: dict) -> dict:
    return {"user_input": item["query"], "retrieved_contexts": list(item["contexts"] or []),
            "response": item["response"], "reference": item["reference_answer"] or None,
            "key": item["key"], "source": item["source"],
            "metadata": _meta(version, item, "conversation", "provenance")}


def deepeval_golden(version: TestSetVersion, item: dict) -> dict:
    return {"name": item["key"], "input": item["query"], "expected_output": item["reference_answer"] or None,
            "context": list(item["contexts"] or []),
            "additional_metadata": _meta(version, item, "response", "conversation", "provenance")}


def promptfoo_test(version: TestSetVersion, item: dict) -> dict:
    reference = item["reference_answer"]
    return {"description": item["key"],
            "vars": {"query": item["query"], "context": "\n\n".join(item["contexts"] or []),
                     "conversation": "\n".join(f"{m.get('role', '')}: {m.get('content', '')}"
                                               for m in item["conversation"] or []),
                     "reference_answer": reference},
            "assert": [{"type": "factuality", "value": reference}] if reference.strip() else [],
            "metadata": _meta(version, item, "response", "conversation")}


def _write_lines(version: TestSetVersion, path: Path, row) -> None:
    with open(path, "wb") as f:
        for item in iter_items(version):
            f.write(orjson.dumps(row(version, item), option=orjson.OPT_SORT_KEYS) + b"\n")


def _write_json_array(version: TestSetVersion, path: Path, row) -> None:
    """A JSON array written item by item (one element a line), never held whole in memory."""
    with open(path, "wb") as f:
        f.write(b"[")
        sep = b"\n"
        for item in iter_items(version):
            f.write(sep + orjson.dumps(row(version, item), option=orjson.OPT_SORT_KEYS))
            sep = b",\n"
        f.write(b"\n]\n")


WRITERS = {
    "jsonl": _write_jsonl,
    "csv": _write_csv,
    "parquet": _write_parquet,
    "hf": _write_hf,
    "ragas": lambda v, p: _write_lines(v, p, ragas_row),
    "deepeval": lambda v, p: _write_json_array(v, p, deepeval_golden),
    "promptfoo": lambda v, p: _write_json_array(v, p, promptfoo_test),
}

