"""Exports as jobs: a large version is exported by the worker (202, a job to poll, then a download), a
small one in the request; every served file is checked against the sha256 recorded when it was written."""
import hashlib
import json
import time

import pytest
from django.test import override_settings

from conftest import user_with_role
from testsets.models import ExportJob, TestItem, TestSet, TestSetVersion
from testsets.services.exports import export_job_run, export_path
from testsets.services.promotion import canonical
from testsets.services.versions import testset_freeze

NAME = "jobs-demo"


def make_items(n: int) -> list[dict]:
    return [{"key": f"k:{i:04d}", "source": "generated" if i % 5 == 0 else "prod", "query": f"question {i}?",
             "response": f"answer {i}", "reference_answer": "" if i % 3 == 0 else f"reference {i}",
             "contexts": [f"context {i}"] * (i % 3), "conversation": [], "verdict": "correct",
             "failure_modes": [], "stratum": "none", "inclusion_probability": 0.5, "provenance": {"i": i}}
            for i in range(n)]


def freeze(n: int = 12, name: str = NAME) -> TestSetVersion:
    testset = TestSet.objects.create(name=name)
    draft = TestSetVersion.objects.create(testset=testset, number=1)
    TestItem.objects.bulk_create([TestItem(version=draft, content_sha256=hashlib.sha256(canonical(i)).hexdigest(), **i)
                                  for i in make_items(n)])
    return testset_freeze(name=name)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_done(job_id: int, timeout: float = 90.0) -> ExportJob:
    deadline = time.monotonic() + timeout
    while True:
        job = ExportJob.objects.get(pk=job_id)
        if job.is_finished or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


@pytest.mark.django_db
def test_a_small_version_downloads_in_the_request_and_its_file_hash_is_recorded(api):
    version = freeze()
    url = f"/api/testsets/{NAME}/versions/1/export/jsonl/"
    first = api.get(url)
    assert first.status_code == 200 and first["Content-Disposition"].endswith(f'{NAME}-v1.jsonl"')
    data = body(first)
    assert sha(data) == version.sha256
    (job,) = ExportJob.objects.all()
    assert (job.status, job.format, job.sha256, job.size) == ("done", "jsonl", sha(data), len(data))
    # served again from the same file (checked, not rewritten)
    assert body(api.get(url)) == data and ExportJob.objects.count() == 1


@pytest.mark.django_db
def test_post_of_a_small_version_answers_with_the_finished_job_and_its_download(api):
    freeze()
    response = api.post(f"/api/testsets/{NAME}/versions/1/exports/", {"format": "ragas"}, format="json")
    assert response.status_code == 200, response.content
    job = response.json()
    assert job["status"] == "done" and job["testset"] == NAME and job["version"] == 1 and job["format"] == "ragas"
    data = body(api.get(job["download_url"]))
    assert sha(data) == job["sha256"] and len(data) == job["size"]
    assert [json.loads(line)["key"] for line in data.splitlines()] == [i["key"] for i in make_items(12)]
    raw = api.post(f"/api/testsets/{NAME}/versions/1/exports/", {"format": "csv", "csv_raw": True}, format="json")
    assert raw.json()["options"] == {"csv_raw": True} and raw.json()["download_url"].endswith("/download/")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_large_version_is_exported_by_the_worker_then_downloaded(api):
    # given: a version over the synchronous limit
    version = freeze(n=40)
    with override_settings(EXPORT_SYNC_MAX_ITEMS=10):
        # when: an export is asked for
        response = api.post(f"/api/testsets/{NAME}/versions/1/exports/", {"format": "deepeval"}, format="json")
        assert response.status_code == 202, response.content
        job = response.json()
        assert response["Location"] == job["url"] and job["status"] in ("pending", "running", "done")
        # the old download link answers with the same job instead of exporting in the request
        again = api.get(f"/api/testsets/{NAME}/versions/1/export/deepeval/")
        assert again.status_code == 202 and again.json()["id"] == job["id"]
        # then: the worker (another process) writes the file and records its hash
        done = wait_done(job["id"])
        assert done.status == "done", done.error
        polled = api.get(job["url"]).json()
        assert polled["status"] == "done" and polled["download_url"]
        data = body(api.get(polled["download_url"]))
    assert sha(data) == done.sha256 and len(data) == done.size
    goldens = json.loads(data)
    assert [g["name"] for g in goldens] == [i["key"] for i in make_items(40)]
    assert {g["additional_metadata"]["testset"] for g in goldens} == {NAME}
    assert export_path(done).is_file() and version.export_jobs.count() == 1


@pytest.mark.django_db
def test_a_changed_file_is_never_served(api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    freeze()
    url = f"/api/testsets/{NAME}/versions/1/export/csv/"
    good = body(api.get(url))
    job = ExportJob.objects.get()
    export_path(job).write_bytes(good.replace(b"question", b"QUESTION"))  # same size, other bytes
    # a small version: exported again in the request, by a new job
    assert body(api.get(url)) == good
    assert ExportJob.objects.count() == 2 and ExportJob.objects.latest("pk").sha256 == sha(good)
    # a large one: the download of the changed file answers 202 and a new job instead
    latest = ExportJob.objects.latest("pk")
    export_path(latest).write_bytes(b"tampered")
    with override_settings(EXPORT_SYNC_MAX_ITEMS=5):
        response = api.get(f"/api/testsets/exports/{latest.pk}/download/")
    assert response.status_code == 202 and response.json()["id"] != latest.pk


@pytest.mark.django_db
def test_drafts_unknown_formats_unfinished_and_unknown_jobs_are_refused(api):
    version = freeze()
    TestSetVersion.objects.create(testset=version.testset, number=2)
    draft = api.post(f"/api/testsets/{NAME}/versions/2/exports/", {"format": "jsonl"}, format="json")
    assert draft.status_code == 400 and "draft" in draft.json()["version"]
    assert api.get(f"/api/testsets/{NAME}/versions/2/export/jsonl/").status_code == 400
    bad = api.post(f"/api/testsets/{NAME}/versions/1/exports/", {"format": "xlsx"}, format="json")
    assert bad.status_code == 400 and "format" in bad.json()
    assert api.post(f"/api/testsets/{NAME}/versions/9/exports/", {"format": "csv"}, format="json").status_code == 404
    pending = ExportJob.objects.create(version=version, format="csv")
    response = api.get(f"/api/testsets/exports/{pending.pk}/download/")
    assert response.status_code == 409 and response.json()["status"] == "pending"
    assert api.get("/api/testsets/exports/999999/").status_code == 404
    assert not ExportJob.objects.exclude(pk=pending.pk).exists()


@pytest.mark.django_db
def test_an_export_that_fails_marks_its_job_failed_with_the_reason(api, monkeypatch):
    import testsets.exports

    freeze()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device\nDETAIL: row data that must not be kept")

    monkeypatch.setattr(testsets.exports, "export_version", disk_full)
    response = api.post(f"/api/testsets/{NAME}/versions/1/exports/", {"format": "parquet"}, format="json")
    assert response.status_code == 500
    job = ExportJob.objects.get()
    assert job.status == "failed" and job.error == "OSError: No space left on device" and not job.sha256


@pytest.mark.django_db
def test_the_dashboard_links_a_large_version_to_its_export_page(client, django_capture_on_commit_callbacks):
    version = freeze()
    client.force_login(user_with_role("viewer", "viewer", password="pw-viewer-1"))
    listing = client.get("/testsets/").content.decode()
    assert f'href="/api/testsets/{NAME}/versions/1/export/parquet/"' in listing  # small: a direct download
    with override_settings(EXPORT_SYNC_MAX_ITEMS=5):
        listing = client.get("/testsets/").content.decode()
        page_url = f"/exports/{NAME}/v1/parquet/"
        assert f'href="{page_url}"' in listing
        assert b"Prepare the parquet file" in client.get(page_url).content
        with django_capture_on_commit_callbacks() as sent:
            assert client.post(page_url).status_code == 302
        job = ExportJob.objects.get()
        assert job.status == "pending" and len(sent) == 1  # its task is sent when the request commits
        assert b"Export pending" in client.get(page_url).content
        export_job_run(job_id=job.pk)  # what the worker does with it
        job.refresh_from_db()
        assert job.status == "done"
        page = client.get(page_url).content.decode()
        assert f'href="/api/testsets/exports/{job.pk}/download/"' in page
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(body(client.get(f"/api/testsets/exports/{job.pk}/download/"))))
    assert table.num_rows == version.item_count
