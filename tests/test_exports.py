"""Exports of a frozen test set version, each loaded back with the tool that consumes it.

pandas/pyarrow run here; Hugging Face datasets, RAGAS and DeepEval run in a separate venv
(scripts/consumers_venv.sh; tests find its python through EVALGAP_CONSUMERS_PYTHON) because they pull
langchain & co. They run offline, with telemetry off.
"""
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from testsets.exports import FORMATS, content_type_and_filename, export_version
from testsets.models import ITEM_FIELDS, TestItem, TestSet, TestSetVersion
from testsets.selectors import TestSetError
from testsets.services.promotion import canonical
from testsets.services.versions import items_canonical, testset_freeze

NAME = "export-demo"
TRICKY = 'Ünïcödé — 東京 🚀, "quoted", comma,\nnew line\r\nand CRLF; tab\there'

ITEMS = [
    {"key": "turn:prod:1", "source": "prod", "query": "How do I reset my password?, asked " + TRICKY,
     "response": "Click \"Forgot\",\nthen wait.", "reference_answer": "Use the reset link — it expires in 1h.",
     "contexts": ["ctx, with comma", 'line1\nline2 "quoted" 東京'], "conversation": [],
     "verdict": "incorrect", "failure_modes": ["hallucination", "incomplete"], "stratum": "failure",
     "inclusion_probability": 0.125,
     "provenance": {"turn_id": "1", "source": "prod", "annotators": ["ann1", "ann2"],
                    "signals": {"followed_up": True}, "generation": None}},
    {"key": "generated:paraphrase:7", "source": "generated", "query": "¿Cómo reinicio la contraseña?",
     "response": "", "reference_answer": "Usa el enlace de restablecimiento.", "contexts": [],
     "conversation": [{"role": "user", "content": "hi, there"}, {"role": "assistant", "content": "hello\n\"you\""}],
     "verdict": "correct", "failure_modes": [], "stratum": "generated", "inclusion_probability": None,
     "provenance": {"generation": {"method": "paraphrase", "of": "turn:prod:1", "model": "m-1"}}},
    {"key": "turn:prod:2", "source": "prod", "query": TRICKY, "response": "ok\r\n",
     "reference_answer": "", "contexts": [], "conversation": [], "verdict": "correct",
     "failure_modes": [], "stratum": "none", "inclusion_probability": 1.0, "provenance": {}},
]
BY_KEY = {i["key"]: i for i in ITEMS}
CONSUMER_ENV = {"DEEPEVAL_TELEMETRY_OPT_OUT": "YES", "RAGAS_DO_NOT_TRACK": "true", "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                "ANONYMIZED_TELEMETRY": "false", "DEEPEVAL_DISABLE_DOTENV": "1"}


@pytest.fixture
def version(db):
    testset = TestSet.objects.create(name=NAME)
    draft = TestSetVersion.objects.create(testset=testset, number=1)
    TestItem.objects.bulk_create([
        TestItem(version=draft, content_sha256=hashlib.sha256(canonical(i)).hexdigest(), **i) for i in ITEMS
    ])
    return testset_freeze(name=NAME, note="export test")


def consumers_python() -> str:
    py = os.environ.get("EVALGAP_CONSUMERS_PYTHON", "")
    if not py or not Path(py).exists():
        pytest.fail("EVALGAP_CONSUMERS_PYTHON is not set (or does not exist): create the consumers venv with "
                    "`export EVALGAP_CONSUMERS_PYTHON=$(scripts/consumers_venv.sh)` (datasets, ragas, deepeval; "
                    "scripts/test.sh does this)", pytrace=False)
    return py


def run_consumer(script: str, path: Path, tmp_path: Path) -> dict:
    """Run `script` in the consumers venv with the export's path as argv[1]; it prints one JSON object."""
    env = {**os.environ, **CONSUMER_ENV, "HF_HOME": str(tmp_path / "hf"), "HOME": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run([consumers_python(), "-c", textwrap.dedent(script), str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export(version, fmt, tmp_path, name=None):
    return export_version(version, fmt, tmp_path / (name or f"out-{fmt}"))


@pytest.mark.django_db
def test_jsonl_is_canonical_with_every_field(version, tmp_path):
    path = export(version, "jsonl", tmp_path)
    data = path.read_bytes()
    # the canonical form, written out here independently of the code under test: one item per line,
    # by key, keys sorted, compact, UTF-8
    expected = b"".join(json.dumps(BY_KEY[k], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
                        + b"\n" for k in sorted(BY_KEY))
    assert data == expected
    assert hashlib.sha256(expected).hexdigest() == version.sha256
    assert b"".join(line + b"\n" for line in items_canonical(version)) == expected
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert [r["key"] for r in rows] == sorted(BY_KEY)
    for r in rows:
        assert set(r) == set(ITEM_FIELDS)
        assert r == BY_KEY[r["key"]]
    assert {r["key"]: r["source"] for r in rows}["generated:paraphrase:7"] == "generated"


@pytest.mark.django_db
def test_csv_loads_with_pandas(version, tmp_path):
    import pandas as pd

    path = export(version, "csv", tmp_path)
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert list(df.columns) == list(ITEM_FIELDS)
    assert len(df) == len(ITEMS)
    for row in df.to_dict(orient="records"):
        item = BY_KEY[row["key"]]
        for f in ("source", "query", "response", "reference_answer", "verdict", "stratum"):
            assert row[f] == item[f], f
        for f in ("contexts", "conversation", "failure_modes", "provenance"):
            assert json.loads(row[f]) == item[f], f
        p = item["inclusion_probability"]
        assert row["inclusion_probability"] == ("" if p is None else repr(p))
    assert df.set_index("key").loc["generated:paraphrase:7", "source"] == "generated"
    # The standard library reads the same rows (quoting of commas, quotes, newlines, CRLF).
    with open(path, encoding="utf-8", newline="") as f:
        assert [r["query"] for r in csv.DictReader(f)] == [BY_KEY[k]["query"] for k in sorted(BY_KEY)]


@pytest.mark.django_db
def test_parquet_loads_with_pyarrow_and_pandas(version, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    path = export(version, "parquet", tmp_path)
    table = pq.read_table(path)
    assert table.column_names == list(ITEM_FIELDS)
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == sorted(BY_KEY)
    for r in rows:
        item = BY_KEY[r["key"]]
        assert json.loads(r.pop("provenance")) == item["provenance"]
        assert r == {f: item[f] for f in ITEM_FIELDS if f != "provenance"}
    df = pd.read_parquet(path)
    assert len(df) == len(ITEMS) and set(df["source"]) == {"prod", "generated"}


@pytest.mark.django_db
def test_the_same_items_stored_in_another_order_export_to_the_same_bytes(version, tmp_path):
    import pyarrow.parquet as pq

    # given the same items frozen again in another test set, inserted in reverse order (other row ids)
    other = TestSet.objects.create(name=f"{NAME}-b")
    draft = TestSetVersion.objects.create(testset=other, number=1)
    for i in reversed(ITEMS):
        TestItem.objects.create(version=draft, content_sha256=hashlib.sha256(canonical(i)).hexdigest(), **i)
    again = testset_freeze(name=other.name, note="same items, other order")
    assert again.sha256 == version.sha256

    # then every format has the same bytes (those naming their test set differ in that name only)
    for fmt in ("jsonl", "csv", "ragas", "deepeval", "promptfoo"):
        a = export(version, fmt, tmp_path, f"a-{fmt}").read_bytes()
        b = export(again, fmt, tmp_path, f"b-{fmt}").read_bytes()
        if fmt in ("ragas", "deepeval", "promptfoo"):
            assert b.count(b'"testset":"export-demo-b"') == len(ITEMS), fmt
            b = b.replace(b'"testset":"export-demo-b"', b'"testset":"export-demo"')
        assert a == b, fmt
    a, b = export(version, "parquet", tmp_path, "a.parquet"), export(again, "parquet", tmp_path, "b.parquet")
    assert pq.read_table(a).equals(pq.read_table(b))
    assert pq.read_schema(a).equals(pq.read_schema(b))
    assert pq.read_table(a).column("key").to_pylist() == sorted(BY_KEY)


HF_SCRIPT = """
    import json, sys
    from datasets import load_from_disk
    ds = load_from_disk(sys.argv[1])
    print(json.dumps({"n": len(ds), "columns": ds.column_names, "rows": ds.to_list(),
                      "features": {k: str(v) for k, v in ds.features.items()}}))
"""


def check_hf(out):
    assert out["n"] == len(ITEMS)
    assert out["columns"] == list(ITEM_FIELDS)
    for r in out["rows"]:
        item = BY_KEY[r["key"]]
        assert json.loads(r.pop("provenance")) == item["provenance"]
        assert r == {f: item[f] for f in ITEM_FIELDS if f != "provenance"}
    assert "List" in out["features"]["contexts"] and "string" in out["features"]["contexts"]


@pytest.mark.consumers
@pytest.mark.django_db
def test_hf_loads_with_datasets_load_from_disk(version, tmp_path):
    folder = export(version, "hf", tmp_path)
    assert folder.is_dir()
    check_hf(run_consumer(HF_SCRIPT, folder, tmp_path))
    # The download: the same folder zipped.
    _, filename = content_type_and_filename(version, "hf")
    archive = export_version(version, "hf", tmp_path / "dl" / filename)
    assert archive.is_file()
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unzipped")
    (top,) = (tmp_path / "unzipped").iterdir()
    check_hf(run_consumer(HF_SCRIPT, top, tmp_path))


@pytest.mark.consumers
@pytest.mark.django_db
def test_ragas_loads_as_evaluation_dataset(version, tmp_path):
    path = export(version, "ragas", tmp_path)
    out = run_consumer("""
        import json, sys
        from ragas import EvaluationDataset
        from ragas.dataset_schema import SingleTurnSample
        ds = EvaluationDataset.from_jsonl(sys.argv[1])
        assert all(isinstance(s, SingleTurnSample) for s in ds.samples)
        raw = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
        print(json.dumps({"n": len(ds), "samples": [s.model_dump(exclude_none=True) for s in ds.samples],
                          "sources": [r["metadata"]["source"] for r in raw], "source": [r["source"] for r in raw],
                          "keys": [r["key"] for r in raw],
                          "conversations": [r["metadata"]["conversation"] for r in raw]}))
    """, path, tmp_path)
    assert out["n"] == len(ITEMS)
    assert out["keys"] == sorted(BY_KEY) and out["sources"] == out["source"]
    for key, sample, source, conversation in zip(out["keys"], out["samples"], out["sources"], out["conversations"]):
        item = BY_KEY[key]
        assert conversation == item["conversation"]
        assert sample["user_input"] == item["query"]
        assert sample["retrieved_contexts"] == item["contexts"]
        assert sample["response"] == item["response"]
        assert sample.get("reference") == (item["reference_answer"] or None)
        assert source == item["source"]


@pytest.mark.consumers
@pytest.mark.django_db
def test_deepeval_builds_goldens(version, tmp_path):
    path = export(version, "deepeval", tmp_path)
    out = run_consumer("""
        import json, sys
        from deepeval.dataset import EvaluationDataset, Golden
        ds = EvaluationDataset()
        ds.add_goldens_from_json_file(sys.argv[1])
        # and Goldens built directly from the file's objects
        direct = [Golden(**g) for g in json.load(open(sys.argv[1], encoding="utf-8"))]
        assert [g.input for g in direct] == [g.input for g in ds.goldens]
        print(json.dumps({"n": len(ds.goldens), "goldens": [
            {"name": g.name, "input": g.input, "expected_output": g.expected_output, "context": g.context,
             "additional_metadata": g.additional_metadata} for g in ds.goldens]}))
    """, path, tmp_path)
    assert out["n"] == len(ITEMS)
    assert [g["name"] for g in out["goldens"]] == sorted(BY_KEY)
    for g in out["goldens"]:
        item = BY_KEY[g["name"]]
        assert g["input"] == item["query"]
        assert g["expected_output"] == (item["reference_answer"] or None)
        assert g["context"] == item["contexts"]
        meta = g["additional_metadata"]
        assert meta["source"] == item["source"] and meta["key"] == item["key"]
        assert meta["verdict"] == item["verdict"] and meta["provenance"] == item["provenance"]
        assert meta["conversation"] == item["conversation"]
        assert meta["testset"] == NAME and meta["version"] == 1


@pytest.mark.django_db
def test_promptfoo_tests_file_follows_the_documented_schema(version, tmp_path):
    """promptfoo test cases (promptfoo.dev/docs/configuration/test-cases): a tests file is a list of
    {description?, vars: {name: value}, assert?: [{type, value?}], metadata?: {…}}; loaded with
    `tests: file://tests.json`. An array var would be expanded into several tests: none here."""
    path = export(version, "promptfoo", tmp_path)
    assert path.suffix == "" or path.suffix == ".json"
    tests = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(tests, list) and len(tests) == len(ITEMS)
    allowed = {"description", "vars", "assert", "metadata", "options", "threshold", "provider", "providers"}
    for t in tests:
        assert set(t) <= allowed and isinstance(t["description"], str)
        item = BY_KEY[t["description"]]
        assert isinstance(t["vars"], dict)
        assert all(isinstance(v, str) for v in t["vars"].values()), "vars must be scalars (arrays expand)"
        assert t["vars"]["query"] == item["query"]
        assert t["vars"]["context"] == "\n\n".join(item["contexts"])
        assert t["vars"]["conversation"] == "\n".join(f"{m['role']}: {m['content']}" for m in item["conversation"])
        assert t["metadata"]["conversation"] == item["conversation"]
        assert isinstance(t["assert"], list)
        for a in t["assert"]:
            assert isinstance(a, dict) and isinstance(a["type"], str)
        if item["reference_answer"]:
            assert t["assert"] == [{"type": "factuality", "value": item["reference_answer"]}]
        else:
            assert t["assert"] == []
        assert isinstance(t["metadata"], dict)
        assert t["metadata"]["source"] == item["source"] and t["metadata"]["key"] == item["key"]
    assert {t["metadata"]["source"] for t in tests} == {"prod", "generated"}
    # With promptfoo installed (npm install promptfoo in EVALGAP_PROMPTFOO_DIR), its own schema too.
    pf_dir = os.environ.get("EVALGAP_PROMPTFOO_DIR")
    if pf_dir:
        check = Path(pf_dir) / "evalgap-check-tests.mjs"
        check.write_text("import { TestCaseSchema } from 'promptfoo';\nimport fs from 'fs';\n"
                         "const tests = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));\n"
                         "const bad = tests.map(t => TestCaseSchema.safeParse(t)).filter(r => !r.success);\n"
                         "console.log(JSON.stringify({n: tests.length, bad: bad.map(r => r.error.issues)}));\n")
        proc = subprocess.run(["node", str(check), str(path)], cwd=pf_dir, capture_output=True, text=True,
                              env={**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1"}, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out == {"n": len(ITEMS), "bad": []}


@pytest.mark.django_db
def test_every_format_downloads_as_one_file(version, tmp_path):
    for fmt in FORMATS:
        content_type, filename = content_type_and_filename(version, fmt)
        assert filename.startswith(f"{NAME}-v1") and content_type
        out = export_version(version, fmt, tmp_path / filename)
        assert out == tmp_path / filename and out.is_file(), fmt
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.django_db
def test_command_exports_and_prints_json(version, tmp_path):
    out = io.StringIO()
    target = tmp_path / "cmd.jsonl"
    call_command("export_testset", NAME, "--version", "1", "--format", "jsonl", "--output", str(target), "--json",
                 stdout=out)
    assert json.loads(out.getvalue()) == {"testset": NAME, "version": 1, "format": "jsonl",
                                          "output": str(target), "items": len(ITEMS)}
    assert hashlib.sha256(target.read_bytes()).hexdigest() == version.sha256


@pytest.mark.django_db
def test_unknown_version_or_format_fails_clearly(version, tmp_path, capsys):
    with pytest.raises(CommandError, match=r"--version: test set 'export-demo' has no version 7"):
        call_command("export_testset", NAME, "--version", "7", "--format", "csv", "--output", str(tmp_path / "x"))
    with pytest.raises(CommandError, match=r"--version: test set 'nope' has no version 1"):
        call_command("export_testset", "nope", "--version", "1", "--format", "csv", "--output", str(tmp_path / "x"))
    with pytest.raises(CommandError, match=r"--format: unknown format 'xlsx'"):
        call_command("export_testset", NAME, "--version", "1", "--format", "xlsx", "--output", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    # From the command line: exit status non-zero and the message on stderr.
    with pytest.raises(SystemExit) as exc:
        execute_from_command_line([sys.argv[0], "export_testset", NAME, "--version", "7", "--format", "csv",
                                   "--output", str(tmp_path / "x")])
    assert exc.value.code != 0
    assert "--version" in capsys.readouterr().err
    with pytest.raises(TestSetError, match="format"):
        export_version(version, "xlsx", tmp_path / "y")


@pytest.mark.django_db
def test_draft_is_not_exported(version, tmp_path):
    draft = TestSetVersion.objects.create(testset=version.testset, number=2)
    with pytest.raises(TestSetError, match="draft"):
        export_version(draft, "jsonl", tmp_path / "d.jsonl")


@pytest.mark.django_db
def test_streamed_items_equal_the_orm_values(version):
    from testsets.exports import iter_items

    assert list(iter_items(version)) == list(version.items.order_by("key").values(*ITEM_FIELDS))


@pytest.mark.django_db
def test_jsonl_written_at_freeze_and_written_anew_are_the_same_bytes(version, tmp_path):
    from testsets.services.versions import canonical_cache_path

    cached = canonical_cache_path(version.sha256)
    assert cached.exists()  # the freeze kept the canonical bytes under their hash
    from_cache = export_version(version, "jsonl", tmp_path / "a.jsonl").read_bytes()
    cached.unlink()
    fresh = export_version(version, "jsonl", tmp_path / "b.jsonl").read_bytes()
    assert from_cache == fresh
    assert hashlib.sha256(fresh).hexdigest() == version.sha256


# --- the column writers against the row-by-row definitions (testsets/exports/rows.py) ---------------------

AWKWARD_TEXT = ['', 'plain', 'ends in a quote and comma ",', '"', '\\', 'a\\",\\"b', '","",', 'quote " and backslash \\ and both \\"', 'ctl \x01\x07\x08\x0b\x0c\x1b\x1f end',
                'tab\tnl\ncr\r', 'del \x7f ls \u2028 ps \u2029 nbsp \xa0', '東京 🚀 ünï', '\u3000 \x85',
                '","', '["a","b"]', ',"query":"x"', '=1+1', '-2', '@x', '\ttab first', ' ', '\x1c\x1d']
PLAIN_EXTRA = [
    # nested fields whose JSON holds the keys of the item itself
    {"contexts": [',"conversation":', '","', "", '\\'], "conversation": [{"role": "user", "content": ',"key":'}],
     "provenance": {"query": ',"query":', "source": {"key": "k"}, "verdict": [1, 2.5, None, True], "z": ""}},
    {"contexts": [], "conversation": [], "failure_modes": [], "provenance": {}, "inclusion_probability": -0.0},
    {"inclusion_probability": 1e-05, "reference_answer": " \t\n"},
    {"inclusion_probability": 1e16, "reference_answer": "\u2003"},
    {"provenance": "a string", "inclusion_probability": 2},
    {"provenance": [1, {"a": "b"}]},
    {"contexts": ["only one"]},
]
# rows the JSON writers make one at a time (but the last, whose failure modes they copy as they are)
NOT_PLAIN = [
    {"contexts": ["a", 3, {"x": "y"}]},
    {"contexts": ["a", ["x", "y", "z"], "b"]},
    {"conversation": [{"role": "user", "content": "c", "name": "extra key"}]},
    {"conversation": [{"role": "user"}]},
    {"conversation": [{"role": 1, "content": "c"}]},
    {"failure_modes": ["A", 2]},
]


def awkward_items() -> list[dict]:
    base = ITEMS[0]
    out = []
    for i, text in enumerate(AWKWARD_TEXT):
        out.append({**base, "key": f"awk:{i:03d}:{text}", "source": text or "s", "query": text, "response": text[::-1],
                    "reference_answer": text, "contexts": [text, text + "!"], "verdict": text[:30] or "v",
                    "failure_modes": [text], "stratum": text[:20], "inclusion_probability": i / 7,
                    "conversation": [{"role": text, "content": text}], "provenance": {text: text, "n": i}})
    for j, extra in enumerate(PLAIN_EXTRA + NOT_PLAIN):
        out.append({**base, "key": f"odd:{j:03d}", **extra})
    return out


@pytest.fixture
def awkward_version(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    testset = TestSet.objects.create(name="awkward")
    draft = TestSetVersion.objects.create(testset=testset, number=3)
    TestItem.objects.bulk_create([
        TestItem(version=draft, content_sha256=hashlib.sha256(canonical(i)).hexdigest(), **i) for i in awkward_items()
    ])
    return testset_freeze(name="awkward")


def reference_output(version, fmt: str) -> bytes:
    """The export made one item at a time from the database, as the writers before the column store did."""
    from testsets.exports import iter_items, rows

    items = list(iter_items(version))
    row = rows.JSON_ROWS[fmt]
    dumped = [rows.dumps(row(version.testset.name, version.number, item)) for item in items]
    if fmt == "ragas":
        return b"".join(d + b"\n" for d in dumped)
    return b"[" + b"".join((b"\n" if k == 0 else b",\n") + d for k, d in enumerate(dumped)) + b"\n]\n"


@pytest.mark.django_db
def test_store_cuts_every_fields_json_exactly_where_the_canonical_line_has_it(awkward_version):
    from testsets.exports import iter_items, rows
    from testsets.exports.store import SORTED, store_open

    items = list(iter_items(awkward_version))
    store = store_open(awkward_version)
    (chunk,) = store.chunks()
    for field in SORTED:
        assert chunk.fragment(field).to_pylist() == [rows.dumps(i[field]) for i in items], field
    # rows whose contexts are not all text, or whose messages are not exactly {role, content} text, are
    # made one at a time by the JSON writers
    assert list(chunk.plain) == [all(isinstance(c, str) for c in i["contexts"]) and all(
        set(m) == {"role", "content"} and all(isinstance(v, str) for v in m.values()) for m in i["conversation"])
        for i in items]
    assert sum(not p for p in chunk.plain) == len(NOT_PLAIN) - 1  # failure_modes ["A", 2] is plain


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["ragas", "deepeval", "promptfoo"])
def test_json_formats_are_the_bytes_of_the_row_by_row_definition(awkward_version, fmt, tmp_path):
    new = export_version(awkward_version, fmt, tmp_path / fmt).read_bytes()
    assert new == reference_output(awkward_version, fmt)
    json.loads(new) if fmt != "ragas" else [json.loads(line) for line in new.splitlines()]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [False, True])
def test_csv_cells_are_those_of_the_row_by_row_definition(awkward_version, raw, tmp_path):
    from testsets.exports import iter_items, rows

    path = export_version(awkward_version, "csv", tmp_path / "x.csv", csv_raw=raw)
    with open(path, encoding="utf-8", newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == list(ITEM_FIELDS)
    assert got[1:] == [rows.csv_row(item, raw) for item in iter_items(awkward_version)]


@pytest.mark.django_db
def test_parquet_and_hf_columns_are_those_of_the_row_by_row_definition(awkward_version, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from testsets.exports import iter_items, rows

    expected = pa.Table.from_pylist([rows.arrow_row(i) for i in iter_items(awkward_version)],
                                    schema=rows.arrow_schema())
    assert pq.read_table(export_version(awkward_version, "parquet", tmp_path / "x.parquet")).equals(expected)
    folder = export_version(awkward_version, "hf", tmp_path / "hf")
    with pa.memory_map(str(folder / "data-00000-of-00001.arrow")) as source:
        assert pa.ipc.open_stream(source).read_all().replace_schema_metadata(None).equals(expected)


@pytest.mark.django_db
def test_a_missing_cut_or_changed_store_is_written_again_from_the_database(awkward_version, tmp_path):
    from testsets.exports.store import folder

    def store_file(ext):
        return folder() / f"{awkward_version.sha256}.{ext}"

    first = {fmt: export_version(awkward_version, fmt, tmp_path / f"a-{fmt}").read_bytes()
             for fmt in ("deepeval", "parquet")}
    kept = {ext: store_file(ext).read_bytes() for ext in ("jsonl", "arrow", "parquet", "json")}
    store_file("arrow").unlink()  # missing
    assert export_version(awkward_version, "deepeval", tmp_path / "b").read_bytes() == first["deepeval"]
    store_file("jsonl").write_bytes(kept["jsonl"][:-10])  # cut
    assert export_version(awkward_version, "deepeval", tmp_path / "c").read_bytes() == first["deepeval"]
    parquet = bytearray(kept["parquet"])
    parquet[len(parquet) // 2] ^= 0xFF  # one byte changed: same size, another digest
    store_file("parquet").write_bytes(bytes(parquet))
    assert export_version(awkward_version, "parquet", tmp_path / "d").read_bytes() == first["parquet"]
    assert {ext: store_file(ext).read_bytes() for ext in kept} == kept
    assert not [p for p in folder().iterdir() if p.name.startswith(".store-")]


@pytest.mark.django_db
def test_a_draft_exports_through_a_store_of_its_own(awkward_version, tmp_path):
    draft = TestSetVersion.objects.create(testset=awkward_version.testset, number=4)
    TestItem.objects.bulk_create([TestItem(version=draft, content_sha256="0", **i) for i in awkward_items()[:5]])
    out = export_version(draft, "promptfoo", tmp_path / "d.json", allow_draft=True).read_bytes()
    assert out == reference_output(draft, "promptfoo")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".draft-store-")]


@pytest.mark.parametrize("item", awkward_items(), ids=lambda i: i["key"][:12])
def test_a_canonical_line_is_its_fields_json_between_their_keys(item):
    from testsets.exports.store import LINE, fields_json

    parts, _ = fields_json(item)
    assert LINE % parts == canonical(item)
