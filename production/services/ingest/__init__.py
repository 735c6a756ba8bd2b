"""Ingest: read a production log into sessions, turns, events and rejected lines.

    turns_ingest_path(source_name=, path=)   a file, as the `ingest` command does; an IngestJob row records it
    turns_ingest_body(source=, body=)        an API body: JSON lines, or one JSON array
    ingest_job_spool / ingest_job_run        a large API body, spooled to disk and ingested by a worker
    turns_ingest_items(source=, items=, origin=)   the back half all of them share

Work goes in chunks (`chunks.py`), one transaction each, written by `CopyWriter` on PostgreSQL and
`OrmWriter` elsewhere (`writers.py`); reading and parsing overlap the writes on a thread of their
own. A crash keeps what was written and a re-run (keyed on source + turn id) picks up without
duplicates. Ingest only writes: signal detection is chained by whoever called it (the command, the
API view, the worker task) and caught up by a beat schedule, as dirty sessions are its queue.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from django.conf import settings
from django.db import transaction

from core.jobs import TRANSIENT_ERRORS, job_claim, job_fail, job_finish, job_held, job_progress, job_release

from ...contract import Limits
from ...models import IngestJob, Source
from ...readers import READERS, Item, detect_format, read_json_array
from .chunks import read_ahead, chunked
from .result import IngestError, IngestResult
from .writers import writer_for

__all__ = [
    "IngestError", "IngestResult", "limits", "source_get_or_create", "turns_ingest_items", "turns_ingest_stream",
    "turns_ingest_path", "turns_ingest_body", "ingest_job_spool", "ingest_job_run", "ingest_spool_purge",
]


def source_get_or_create(*, name: str) -> Source:
    name = (name or "").strip()
    if not name:
        raise IngestError("source: a non-empty source name is required")
    max_len = Source._meta.get_field("name").max_length
    if len(name) > max_len or "\x00" in name:
        raise IngestError(f"source: at most {max_len} characters, and no NUL character")
    source, _ = Source.objects.get_or_create(name=name)
    return source


def limits() -> Limits:
    """The sizes a record may have, from settings (docs/production-log.md, "Limits")."""
    return Limits(max_field_chars=settings.INGEST_MAX_FIELD_CHARS, max_line_bytes=settings.INGEST_MAX_LINE_BYTES)


def turns_ingest_items(
    *, source: Source, items: Iterable[Item], origin: str, job: IngestJob | None = None,
    batch_size: int | None = None,
) -> IngestResult:
    """Write parsed items in chunks; the shared back half of every ingest path."""
    writer = writer_for(source, origin, job)
    total = IngestResult()
    for chunk in read_ahead(chunked(items, batch_size or settings.INGEST_BATCH_SIZE), writer.prepare):
        total.add(writer.write(chunk))
        total.read = chunk.read
        if job is not None and not chunk.last:
            _job_progress(job, total)
    with transaction.atomic():
        writer.finish()
    return total


def turns_ingest_stream(
    *, source: Source, stream: BinaryIO, origin: str, fmt: str = "auto", job: IngestJob | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    if fmt == "auto":
        fmt = detect_format(stream, origin)
    if fmt not in READERS:
        raise IngestError(f"format: unknown format {fmt!r} (expected one of auto, jsonl, csv, messages)")
    return turns_ingest_items(source=source, items=READERS[fmt](stream, progress, limits()), origin=origin, job=job)


def turns_ingest_path(
    *, source_name: str, path: str | Path, fmt: str = "auto", progress_factory=None,
) -> IngestResult:
    """Ingest one file. Raises IngestError when the file cannot be opened at all."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise IngestError(f"{path}: cannot read ({e.strerror or e})") from None
    source = source_get_or_create(name=source_name)
    job = IngestJob.objects.create(source=source, origin=str(path), format=fmt)
    job_claim(IngestJob, job.pk)
    try:
        with f:
            size = path.stat().st_size if path.is_file() else None
            bar = progress_factory(size, path.name) if progress_factory else None
            try:
                result = turns_ingest_stream(source=source, stream=f, origin=str(path), fmt=fmt, job=job,
                                             progress=bar.update if bar else None)
            finally:
                if bar:
                    bar.close()
    except BaseException as e:
        _job_failed(job, e)
        raise
    _job_done(job, result)
    return result


def turns_ingest_body(*, source: Source, body: bytes | BinaryIO, job: IngestJob | None = None) -> IngestResult:
    """An API body (bytes, or a seekable binary stream such as a spool file): JSON lines, or one
    JSON array (element k is reported as line k), both read as a stream."""
    stream = io.BytesIO(body) if isinstance(body, (bytes, bytearray, memoryview)) else body
    if _first_byte(stream) == b"[":
        items = read_json_array(stream, limits())
    else:
        items = READERS["jsonl"](stream, None, limits())
    return turns_ingest_items(source=source, items=items, origin=f"api:job-{job.pk}" if job else "api", job=job)


def _first_byte(stream: BinaryIO) -> bytes:
    """The first byte that is not whitespace; the stream is left where it was."""
    start = stream.tell()
    try:
        while block := stream.read(65536):
            rest = block.lstrip()
            if rest:
                return rest[:1]
        return b""
    finally:
        stream.seek(start)


def ingest_job_spool(*, source: Source, body: bytes, user=None) -> IngestJob:
    """Keep a large API body on disk as a pending job of `user` (an ingest service sees its own jobs);
    the caller enqueues `ingest_job_run`."""
    spool = Path(settings.INGEST_SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True)
    job = IngestJob.objects.create(source=source, origin="api", format="jsonl",
                                   created_by=user if getattr(user, "pk", None) else None)
    path = spool / f"ingest-{job.pk}.jsonl"
    path.write_bytes(body)
    IngestJob.objects.filter(pk=job.pk).update(spool_path=str(path))
    job.spool_path = str(path)
    return job


def ingest_job_run(*, job_id: int) -> IngestResult | None:
    """Run a spooled API ingest. A finished job is never run again; one running in a live worker is
    left to it (`core.jobs.job_held`); one whose worker died is taken over at once and read again from
    the start of its spool file, which is safe because ingest is keyed on (source, turn id) and rejects
    on (origin, line). The database or broker unreachable: the job goes back to pending for the retry."""
    with job_held(IngestJob, job_id) as mine:
        if not mine:
            return None
        job = IngestJob.objects.select_related("source").get(pk=job_id)
        if not job.spool_path:
            _job_failed(job, "nothing to resume: this ingest ran in a command's process (run the command again)")
            return None
        try:
            with open(job.spool_path, "rb") as body:
                result = turns_ingest_body(source=job.source, body=body, job=job)
        except TRANSIENT_ERRORS as e:
            job_release(IngestJob, job_id, e)
            raise
        except BaseException as e:
            _job_failed(job, e)
            Path(job.spool_path).unlink(missing_ok=True)  # a failed job is never read again
            raise
        _job_done(job, result)
    Path(job.spool_path).unlink(missing_ok=True)
    return result


def ingest_spool_purge(*, now=None) -> dict:
    """Spool files hold raw API bodies (personal data): none outlives its use. The file of a job that
    is done or failed (however it failed: its task, the sweeper, the attempt cap) is deleted; a file
    older than INGEST_SPOOL_MAX_DAYS is deleted whatever its job, and a job still waiting on it is
    failed with the reason. Idempotent; run by the beat schedule (migration 0009) and safe any time."""
    from django.utils import timezone

    from core.jobs import JobStatus, job_fail

    now = now or timezone.now()
    spool = Path(settings.INGEST_SPOOL_DIR)
    cutoff = now.timestamp() - settings.INGEST_SPOOL_MAX_DAYS * 86400
    finished = expired = 0
    jobs = IngestJob.objects.exclude(spool_path="")
    for pk, status, path in jobs.values_list("pk", "status", "spool_path").iterator():
        f = Path(path)
        old = f.exists() and f.stat().st_mtime < cutoff
        if status in (JobStatus.DONE, JobStatus.FAILED) or old:
            if old and status not in (JobStatus.DONE, JobStatus.FAILED):
                job_fail(IngestJob, pk, f"spool file deleted unread after INGEST_SPOOL_MAX_DAYS "
                                        f"({settings.INGEST_SPOOL_MAX_DAYS}) days")
            f.unlink(missing_ok=True)
            IngestJob.objects.filter(pk=pk).update(spool_path="")
            finished += status in (JobStatus.DONE, JobStatus.FAILED)
            expired += old and status not in (JobStatus.DONE, JobStatus.FAILED)
    orphans = 0
    known = set(IngestJob.objects.exclude(spool_path="").values_list("spool_path", flat=True))
    for f in spool.glob("ingest-*.jsonl") if spool.is_dir() else ():
        if str(f) not in known and f.stat().st_mtime < now.timestamp() - 3600:  # not one being written now
            f.unlink(missing_ok=True)
            orphans += 1
    return {"finished": finished, "expired": expired, "orphans": orphans}


# The job row of an ingest, in one place: progress after each chunk, then done or failed. The error
# kept is `core.jobs.safe_error`'s first line, never the data it was about.

def _job_progress(job: IngestJob, total: IngestResult) -> None:
    job_progress(IngestJob, job.pk, **total.as_dict())


def _job_done(job: IngestJob, total: IngestResult) -> None:
    job_finish(IngestJob, job.pk, **total.as_dict())


def _job_failed(job: IngestJob, error: BaseException | str) -> None:
    job_fail(IngestJob, job.pk, error)
