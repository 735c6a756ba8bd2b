"""One way to run a job: an abstract model, one claim, one finish/fail, one base task, one sweeper.

Every long piece of work (an ingest, a push, a generation run, a shadow or offline run, an export)
is a row of a concrete subclass of `Job`. A Celery task takes the row's id, the service claims the
row with a conditional UPDATE and does the work; a crash leaves the row "running" with a heartbeat
that stops, and `jobs_sweep` later re-queues or fails it visibly.

    class IngestJob(Job):
        task_name = "production.tasks.ingest_job_run"  # what the sweeper re-queues
        ...

    if not job_claim(IngestJob, pk):      # someone else has it, or it is finished
        return
    ... job_progress(IngestJob, pk, read=n) ...
    job_finish(IngestJob, pk, created=n)

On PostgreSQL a job that must never run twice at once is held with `job_held`: the claim plus a
session advisory lock kept for the whole run. The lock dies with its holder's connection (worker
killed, database restarted), so a redelivered task takes over at once instead of waiting for the
heartbeat to go stale, and the sweeper never re-queues a job whose holder is alive.

Transient errors (`TRANSIENT_ERRORS`: the database or the broker unreachable) are retried with
backoff by `JobTask`; the service puts the job back to pending (`job_release`) first. Any other
error is recorded on the job (`job_fail`, first line only) and the job is failed.
"""
from __future__ import annotations

import logging
import zlib
from contextlib import contextmanager
from datetime import timedelta
from typing import ClassVar, Iterator

from celery import Task
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, models
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

# Errors that say "not now" rather than "never": the database or the broker could not be reached or
# went away mid-statement. Tasks retry these with backoff; every other error fails the job.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, BrokerError)

logger = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(models.Model):
    Status = JobStatus

    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="times the job was claimed (started or resumed)")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The Celery task (dotted name, taking the job id) that runs the job; the sweeper re-queues a
    # stuck job through it. Empty: the job runs in a command's process and cannot be re-queued.
    task_name: ClassVar[str] = ""
    # A running job whose heartbeat is older than this is presumed dead (worker killed, host lost).
    stale_after_seconds: ClassVar[int | None] = None  # None: settings.JOB_STALE_SECONDS
    # Claims (starts + resumes) after which a stuck job is failed instead of re-queued.
    max_attempts: ClassVar[int] = 3
    # A pending job always has a task on its way (it was enqueued when created): one still pending
    # past the stale limit lost its message (broker down at enqueue) and the sweeper sends it again.
    resend_pending: ClassVar[bool] = False

    class Meta:
        abstract = True

    @classmethod
    def stale_after(cls) -> timedelta:
        return timedelta(seconds=cls.stale_after_seconds or settings.JOB_STALE_SECONDS)

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)


def job_claim(model: type[Job], pk, *, statuses=(JobStatus.PENDING,), take_stale: bool = True,
              take_running: bool = False) -> bool:
    """Mark the job running if it is in one of `statuses` (or running with a stale heartbeat: its
    owner died; `take_running`: running at all, for a caller that knows the owner is dead). One
    conditional UPDATE, so of two workers given the same job exactly one wins.

    A job is taken over from a dead owner only while it has attempts left (`max_attempts`): a job
    that kills its worker (out of memory) would otherwise be redelivered forever. Past the cap the
    job is failed, and the error and the log name it and say why."""
    now = timezone.now()
    cond = Q(status__in=statuses)
    takeover = Q(status=JobStatus.RUNNING) & ~Q(status__in=statuses)
    if not take_running:
        takeover &= Q(heartbeat_at__lt=now - model.stale_after())
    if take_running or take_stale:
        cond |= takeover & Q(attempts__lt=model.max_attempts)
    if model.objects.filter(cond, pk=pk).update(
            status=JobStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now, error="") == 1:
        return True
    if take_running or take_stale:
        _fail_over_cap(model, pk, takeover & Q(attempts__gte=model.max_attempts), now)
    return False


def _fail_over_cap(model: type[Job], pk, cond: Q, now) -> None:
    name = f"{model._meta.label} {pk}"
    why = (f"{name} failed: its worker died in each of {model.max_attempts} attempts (killed by this job, "
           f"e.g. out of memory?); not redelivered again")
    if model.objects.filter(cond, pk=pk).update(status=JobStatus.FAILED, finished_at=now, heartbeat_at=now, error=why):
        logger.error("job attempt cap: %s", why)


def _lock_key(model: type[Job], pk) -> tuple[int, int]:
    # Two int4 keys: the model (a stable hash of its label) and the job id.
    klass = zlib.crc32(model._meta.label.encode()) - 2**31
    return klass, int(pk) % 2**31


def _try_lock(model: type[Job], pk) -> bool:
    with connection.cursor() as c:
        c.execute("SELECT pg_try_advisory_lock(%s, %s)", list(_lock_key(model, pk)))
        return bool(c.fetchone()[0])


def _unlock(model: type[Job], pk) -> None:
    try:
        with connection.cursor() as c:
            c.execute("SELECT pg_advisory_unlock(%s, %s)", list(_lock_key(model, pk)))
    except DatabaseError:
        pass  # the connection is gone, and the lock went with it


@contextmanager
def job_held(model: type[Job], pk, *, statuses=(JobStatus.PENDING,)) -> Iterator[bool]:
    """Claim the job and hold it for the whole `with` block; yields whether this caller has it.

        with job_held(LabellingBatch, batch_id, statuses=(...)) as mine:
            if not mine:
                return  # another live worker runs it, or it is not in `statuses`

    On PostgreSQL the holder keeps a session advisory lock: a "running" job whose lock is free has no
    live holder (its process or its connection died), so it is taken over at once. Elsewhere (the
    SQLite demo, one process) this is `job_claim`.
    """
    if connection.vendor != "postgresql":
        yield job_claim(model, pk, statuses=statuses)
        return
    if not _try_lock(model, pk):
        yield False
        return
    try:
        # The lock is ours, so a "running" job has no live holder: take it over (attempts permitting).
        yield job_claim(model, pk, statuses=statuses, take_stale=False, take_running=True)
    finally:
        _unlock(model, pk)


def job_progress(model: type[Job], pk, **fields) -> None:
    """Record progress (any of the model's own fields) and beat the heart."""
    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now(), **fields)


def job_finish(model: type[Job], pk, **fields) -> None:
    now = timezone.now()
    model.objects.filter(pk=pk).update(status=JobStatus.DONE, finished_at=now, heartbeat_at=now, error="", **fields)


def safe_error(error: BaseException | str, limit: int = 500) -> str:
    """What a job or a log keeps of an error: its type and first line, never the data it was about.

    Database errors carry the offending row in DETAIL/CONTEXT lines (a COPY error quotes the whole
    turn); only the first line, which names the constraint or the encoding problem, is kept.
    """
    if isinstance(error, BaseException):
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text[:limit]


def job_fail(model: type[Job], pk, error: BaseException | str, **fields) -> None:
    now = timezone.now()
    model.objects.filter(pk=pk).update(status=JobStatus.FAILED, finished_at=now, heartbeat_at=now,
                                       error=safe_error(error), **fields)


def job_release(model: type[Job], pk, error: BaseException | str = "") -> None:
    """Put a claimed job back to pending (a transient failure the task will retry)."""
    model.objects.filter(pk=pk, status=JobStatus.RUNNING).update(
        status=JobStatus.PENDING, error=safe_error(error) if error else "")


class JobTask(Task):
    """Base for tasks that run one job: `@shared_task(base=JobTask, job_model="app.Model")`.

    Transient errors (TRANSIENT_ERRORS) are retried with exponential backoff (a task that names its
    own `autoretry_for` should include them). When the task fails for good (retries exhausted, or an
    error it does not retry), the job row is marked failed with the reason, so no job stays
    "running" because its task raised.
    """

    job_model: str = ""
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 300
    retry_kwargs = {"max_retries": 8}
    acks_late = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: D401 - Celery hook
        job_id = kwargs.get("job_id", args[0] if args else None)
        if self.job_model and job_id is not None:
            model = apps.get_model(self.job_model)
            model.objects.filter(pk=job_id).exclude(status=JobStatus.DONE).update(
                status=JobStatus.FAILED, finished_at=timezone.now(), error=safe_error(exc))
        super().on_failure(exc, task_id, args, kwargs, einfo)


def job_models() -> list[type[Job]]:
    return [m for m in apps.get_models() if issubclass(m, Job)]


def jobs_sweep(*, now=None, stale_seconds: int | None = None, enqueue=None) -> dict:
    """Find jobs stuck "running" past their limit: re-queue them (back to pending, task sent) while
    they have attempts left, else fail them with the reason. Returns counts per model.

    `enqueue(task_name, job_id)` defaults to sending the Celery task; a job without a task (it ran
    in a command's process) is failed: nothing can resume it but its user.
    """
    from celery import current_app

    now = now or timezone.now()
    enqueue = enqueue or (lambda name, pk: current_app.send_task(name, args=[pk]))
    out: dict[str, dict[str, int]] = {}
    for model in job_models():
        limit = timedelta(seconds=stale_seconds) if stale_seconds is not None else model.stale_after()
        stuck = model.objects.filter(status=JobStatus.RUNNING).filter(
            Q(heartbeat_at__lt=now - limit) | Q(heartbeat_at__isnull=True, started_at__lt=now - limit))
        requeued = failed = resent = 0
        for pk, attempts, beat in stuck.values_list("pk", "attempts", "heartbeat_at"):
            if not _holder_dead(model, pk):
                continue  # slow, not dead: its holder still has the lock
            if model.task_name and attempts < model.max_attempts:
                # Conditional on the heartbeat we saw: a job that came back to life meanwhile is left alone.
                if model.objects.filter(pk=pk, status=JobStatus.RUNNING, heartbeat_at=beat).update(
                        status=JobStatus.PENDING, error="re-queued by the sweeper: no heartbeat"):
                    enqueue(model.task_name, pk)
                    requeued += 1
            else:
                why = ("stuck: no heartbeat and no task to resume it" if not model.task_name
                       else f"stuck: no heartbeat after {attempts} attempts")
                failed += model.objects.filter(pk=pk, status=JobStatus.RUNNING, heartbeat_at=beat).update(
                    status=JobStatus.FAILED, finished_at=now, error=why)
        if model.task_name and model.resend_pending:
            lost = model.objects.filter(status=JobStatus.PENDING, created_at__lt=now - limit).filter(
                Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - limit))
            for pk in lost.values_list("pk", flat=True):
                # A second message for a job whose first is still queued is harmless: one claim wins.
                model.objects.filter(pk=pk, status=JobStatus.PENDING).update(heartbeat_at=now)
                enqueue(model.task_name, pk)
                resent += 1
        if requeued or failed or resent:
            logger.warning("jobs_sweep %s: %d re-queued, %d failed, %d re-sent", model._meta.label, requeued,
                           failed, resent)
        out[model._meta.label] = {"requeued": requeued, "failed": failed, "resent": resent}
    return out


def _holder_dead(model: type[Job], pk) -> bool:
    """No live process holds the job's advisory lock (always true off PostgreSQL, and for jobs run
    without `job_held`, whose liveness is their heartbeat alone)."""
    if connection.vendor != "postgresql":
        return True
    if not _try_lock(model, pk):
        return False
    _unlock(model, pk)
    return True
