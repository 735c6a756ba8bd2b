"""Export jobs: a frozen version exported to a file once, the file's sha256 recorded, and the file
checked against it each time it is served.

A version of more than EXPORT_SYNC_MAX_ITEMS items is exported by a worker (``export_request``
then the task ``export_job_run``); a smaller one inside the request (``export_now``). Both leave an
ExportJob with the file's path, size and sha256; a request for the same export reuses it while its
file is there. Files live in ``MEDIA_ROOT/exports/<version sha256>/<download filename>``.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from core.jobs import JobStatus, job_claim, job_fail, job_finish

from ..models import ExportJob, TestSetVersion
from ..selectors import TestSetError


class ExportFileChanged(Exception):
    """An export's file is missing or no longer has the sha256 recorded when it was written."""


def exported_in_background(version: TestSetVersion) -> bool:
    return version.exported_in_background


def export_options(*, fmt: str, csv_raw: bool = False) -> dict:
    return {"csv_raw": True} if fmt == "csv" and csv_raw else {}


def export_path(job: ExportJob) -> Path:
    """Where the job's file goes: named as it downloads, under the version's sha256."""
    from ..exports import content_type_and_filename

    _, filename = content_type_and_filename(job.version, job.format)
    if job.options.get("csv_raw"):
        filename = filename.removesuffix(".csv") + "-raw.csv"
    root = (Path(settings.MEDIA_ROOT) / "exports").resolve()
    path = (root / job.version.sha256 / filename).resolve()
    # Test set names are slugs; still, a name from the database never leads out of the export folder.
    if not job.version.sha256 or path.parent != root / job.version.sha256:
        raise TestSetError(f"version: {job.version} cannot be exported here (no sha256, or an unsafe name)")
    return path


def _check(version: TestSetVersion, fmt: str) -> None:
    from ..exports import check_format

    check_format(fmt)
    if version.status != TestSetVersion.Status.FROZEN:
        raise TestSetError(f"version: {version.testset.name} v{version.number} is a draft: only frozen versions "
                           f"are exported")


def _present(job: ExportJob) -> bool:
    try:
        return job.size is not None and export_path(job).stat().st_size == job.size
    except OSError:
        return False


def export_request(*, version: TestSetVersion, fmt: str, csv_raw: bool = False, user=None) -> ExportJob:
    """The export job of (version, format, options): one finished whose file is still there, one
    pending or running, or a new pending one. The caller sends the task for a pending job (a second
    message for the same job is harmless: one claim wins)."""
    _check(version, fmt)
    options = export_options(fmt=fmt, csv_raw=csv_raw)
    job = (ExportJob.objects.filter(version=version, format=fmt, options=options)
           .exclude(status=JobStatus.FAILED).order_by("-pk").first())
    if job is not None and (job.status != JobStatus.DONE or _present(job)):
        return job
    return ExportJob.objects.create(version=version, format=fmt, options=options,
                                    requested_by=user if getattr(user, "pk", None) else None)


def export_now(*, version: TestSetVersion, fmt: str, csv_raw: bool = False, user=None) -> ExportJob:
    """The export of a small version, done in this process unless a finished one still has its file
    (its hash is checked when it is served)."""
    job = export_request(version=version, fmt=fmt, csv_raw=csv_raw, user=user)
    if job.status == JobStatus.DONE:
        return job
    if job.status != JobStatus.PENDING or not export_job_run(job_id=job.pk):
        # Under way in another process: a small export takes less time than waiting for it.
        job = ExportJob.objects.create(version=version, format=fmt, options=job.options, requested_by=job.requested_by)
        export_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def export_redo(*, job: ExportJob, now: bool = False) -> ExportJob:
    """A new job for the same export (its file changed or went missing); run here when ``now``."""
    again = ExportJob.objects.create(version=job.version, format=job.format, options=job.options,
                                     requested_by=job.requested_by)
    if now:
        export_job_run(job_id=again.pk)
        again.refresh_from_db()
    return again


def export_job_run(*, job_id: int) -> dict | None:
    """Claim the job and write its file: the export, then its sha256 and size recorded. Safe to run
    twice: a job already claimed or finished is left alone (None)."""
    from ..exports import export_version
    from ..exports.store import file_sha256

    if not job_claim(ExportJob, job_id):
        return None
    job = ExportJob.objects.select_related("version__testset").get(pk=job_id)
    tmp = None
    try:
        path = export_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        export_version(job.version, job.format, tmp, csv_raw=bool(job.options.get("csv_raw")), verify=True)
        sha, size = file_sha256(tmp), tmp.stat().st_size
        # Another job for the same export writes the same bytes (exports are deterministic), so
        # replacing its file leaves its recorded hash true.
        os.replace(tmp, path)
    except DatabaseError:
        raise  # the job cannot be recorded now: the task's failure (or the sweeper) does it
    except Exception as e:  # noqa: BLE001 - whatever stops an export is recorded on its job (first line only)
        job_fail(ExportJob, job_id, e)
        return {"job": job_id, "status": JobStatus.FAILED, "error": ExportJob.objects.get(pk=job_id).error}
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    relative = str(path.relative_to(Path(settings.MEDIA_ROOT).resolve()))
    job_finish(ExportJob, job_id, path=relative, sha256=sha, size=size)
    return {"job": job_id, "status": JobStatus.DONE, "sha256": sha, "size": size}


def export_open(job: ExportJob):
    """The job's file, open for reading, after checking it has the sha256 recorded when it was
    written (checked on the open file, so what is served is what was checked)."""
    import hashlib

    if job.status != JobStatus.DONE or not job.sha256:
        raise ExportFileChanged(f"export {job.pk} is {job.status}")
    try:
        f = open(export_path(job), "rb")
    except OSError:
        raise ExportFileChanged(f"export {job.pk}: its file is missing") from None
    h = hashlib.sha256()
    while block := f.read(1 << 20):
        h.update(block)
    if h.hexdigest() != job.sha256:
        f.close()
        raise ExportFileChanged(f"export {job.pk}: its file no longer has the sha256 it was written with")
    f.seek(0)
    return f
