"""offline_import: per-item scores written by RAGAS, DeepEval and promptfoo (files those tools wrote,
tests/fixtures/offline_import/make_fixtures.py) and by hand (scores-jsonl), matched to the items of
a frozen version; unknown keys reported, never dropped silently."""
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core import stats
from evaluation.importers import ImportFormatError, read_rows
from evaluation.models import OfflineRun
from evaluation.services.offline import OfflineError, offline_import
from tests.evaluation_helpers import frozen_version, release
from tests.fixtures.offline_import import make_fixtures

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "offline_import"
FX = make_fixtures.fixture()
SUMMARY_KEYS = {"release", "testset", "version", "items", "score", "ci_low", "ci_high"}
UNKNOWN = FX["unknown"]["key"]


@pytest.fixture
def version():
    release("rel-a")
    return frozen_version(FX["testset"], FX["items"])


def run_import(path, fmt, *extra) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("offline_import", str(path), "--release", "rel-a", "--testset", FX["testset"], "--version", "1",
                 "--format", fmt, *extra, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def per_key(run: OfflineRun) -> dict:
    return {s.key: s.score for s in run.scores.all()}


def expected_summary() -> tuple[float, float, float]:
    """Mean of the scored items; interval resampling conversations (t1 and t2 share session s1)."""
    prov = {i["key"]: i["provenance"] for i in FX["items"]}
    keys = sorted(k for k, v in FX["scores"].items() if v is not None)
    values = [FX["scores"][k] for k in keys]
    clusters = [f"s:{prov[k]['source']}:{prov[k]['session_id']}" if prov[k].get("session_id") else f"item:{k}"
                for k in keys]
    return tuple(stats.cluster_bootstrap_mean(values, clusters))


def check(result: dict, err: str, *, unknown_reported: bool = True):
    run = OfflineRun.objects.get()
    assert set(result) == SUMMARY_KEYS
    assert (result["release"], result["testset"], result["version"]) == ("rel-a", FX["testset"], 1)
    want = {k: v for k, v in FX["scores"].items()}
    assert per_key(run) == want  # t3: no score (the tool failed on it), recorded with the reason
    assert run.scores.get(key="turn:prod:t3").error
    assert result["items"] == 5 and run.failed == 1 and run.missing == 0
    mean, lo, hi = expected_summary()
    assert result["score"] == pytest.approx(mean) and (result["ci_low"], result["ci_high"]) == pytest.approx((lo, hi))
    if unknown_reported:
        assert len(run.unknown_keys) == 1 and "unknown" in err
    return run


def test_scores_jsonl_lines_keyed_by_the_export_key(version, tmp_path):
    path = tmp_path / "scores.jsonl"
    lines = [{"key": k, "score": v} for k, v in FX["scores"].items()] + [{"key": UNKNOWN, "score": 0.9}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result, err = run_import(path, "scores-jsonl")
    run = check(result, err)
    assert run.unknown_keys == [UNKNOWN] and UNKNOWN in err
    assert run.mode == OfflineRun.Mode.IMPORT and run.status == OfflineRun.Status.DONE and len(run.origin_sha256) == 64


@pytest.mark.parametrize("name", ["ragas_result.csv", "ragas_result.jsonl"])
def test_ragas_result_table_is_matched_by_content_since_ragas_drops_the_key(version, name):
    result, err = run_import(FIXTURES / name, "ragas")
    run = check(result, err)
    assert run.metric == "fixture_correctness"
    # two items with the same user_input and reference: rows go to them in key order (the export's)
    assert run.scores.get(key="turn:prod:t4").answer == "candidate answer for turn:prod:t4"
    line = 8 if name.endswith(".csv") else 7  # the CSV has a header line
    assert run.unknown_keys == [f"line {line}: no item with this user_input and reference "
                                f"('Is this item in the version?')"]


@pytest.mark.parametrize("name", ["deepeval_test_run.json", "deepeval_latest_test_run.json"])
def test_deepeval_test_run_keyed_by_the_goldens_metadata(version, name):
    result, err = run_import(FIXTURES / name, "deepeval")
    run = check(result, err)
    assert run.metric == "Correctness (fixture)" and run.unknown_keys == [UNKNOWN]
    assert "grader timed out" in run.scores.get(key="turn:prod:t3").error
    assert run.scores.get(key="turn:prod:t1").rationale == "fixture score 0.5"


@pytest.mark.parametrize("metric", [None, "correctness"])
def test_promptfoo_output_keyed_by_the_test_cases_metadata(version, metric):
    result, err = run_import(FIXTURES / "promptfoo_out.json", "promptfoo", *(["--metric", metric] if metric else []))
    run = check(result, err)
    assert run.unknown_keys == [UNKNOWN]
    # a failed assertion is a score (0); a provider error is not: the item is recorded as failed
    assert run.scores.get(key="turn:prod:t2").score == 0.0
    assert "upstream timeout" in run.scores.get(key="turn:prod:t3").error


@pytest.mark.consumers
def test_the_same_file_rewritten_by_the_installed_tools_imports_the_same(version, tmp_path):
    """The committed fixtures against ragas and deepeval as installed now (the consumers venv)."""
    python = os.environ.get("EVALGAP_CONSUMERS_PYTHON", "")
    if not python or not Path(python).exists():
        pytest.fail("EVALGAP_CONSUMERS_PYTHON is not set: `export EVALGAP_CONSUMERS_PYTHON=$(scripts/consumers_venv.sh)`"
                    " (scripts/test.sh does this)", pytrace=False)
    csv_path, _ = make_fixtures.write_ragas(python, tmp_path)
    run_path, _ = make_fixtures.write_deepeval(python, tmp_path)
    first, _ = run_import(csv_path, "ragas")
    second, _ = run_import(run_path, "deepeval")
    runs = list(OfflineRun.objects.order_by("id"))
    assert per_key(runs[0]) == per_key(runs[1]) == FX["scores"]
    assert first["score"] == second["score"]


def test_a_file_matching_no_item_is_refused_and_nothing_is_stored(version, tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"key": "turn:elsewhere:1", "score": 1}) + "\n")
    with pytest.raises(CommandError, match="none of the 1 rows") as e:
        run_import(path, "scores-jsonl")
    assert e.value.returncode == 2 and not OfflineRun.objects.exists()


def test_formats_that_cannot_be_read_say_why(version, tmp_path):
    cache = tmp_path / ".deepeval-cache.json"
    cache.write_text(json.dumps({"test_cases_lookup_map": {}}))
    with pytest.raises(ImportFormatError, match="DeepEval's cache"):
        read_rows(cache, "deepeval")
    two = tmp_path / "two.csv"
    shutil.copy(FIXTURES / "ragas_result.csv", two)
    text = two.read_text().splitlines()
    two.write_text("\n".join([text[0] + ",faithfulness"] + [line + ",0.5" for line in text[1:]]) + "\n")
    with pytest.raises(ImportFormatError, match="metric columns: fixture_correctness, faithfulness"):
        read_rows(two, "ragas")
    rows, metric = read_rows(two, "ragas", "faithfulness")
    assert metric == "faithfulness" and {r.score for r in rows} == {0.5}
    pf = json.loads((FIXTURES / "promptfoo_out.json").read_text())
    extra = dict(pf["results"]["results"][0], provider={"id": "openai:other", "label": ""})
    pf["results"]["results"].append(extra)
    (tmp_path / "pf.json").write_text(json.dumps(pf))
    with pytest.raises(ImportFormatError, match="several results per test"):
        read_rows(tmp_path / "pf.json", "promptfoo")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "score": 1}\nnot json\n')
    with pytest.raises(ImportFormatError, match="line 2: not JSON"):
        read_rows(bad, "scores-jsonl")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"key": "a", "score": 1}\n{"key": "a", "score": 0}\n')
    with pytest.raises(ImportFormatError, match="appears twice"):
        read_rows(dup, "scores-jsonl")


def test_a_draft_version_or_an_unknown_release_is_a_usage_error(version, tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"key": "turn:prod:t1", "score": 1}) + "\n")
    with pytest.raises(CommandError, match="no release named 'nope'") as e:
        call_command("offline_import", str(path), "--release", "nope", "--testset", FX["testset"], "--version", "1",
                     "--format", "scores-jsonl", stdout=io.StringIO(), stderr=io.StringIO())
    assert e.value.returncode == 2
    with pytest.raises(OfflineError, match="has no version 9"):
        offline_import(path=path, release="rel-a", testset=FX["testset"], version=9, fmt="scores-jsonl")
