"""Celery adapters over ids; the services claim their job rows, so a redelivered task does nothing twice."""
import logging

from celery import shared_task
from django.db import transaction

from core.jobs import JobTask
from labelling.client import LabelStudioUnavailable

log = logging.getLogger(__name__)


@shared_task(base=JobTask, job_model="shadow.ShadowRun", acks_late=True)
def shadow_run_execute(run_id: int) -> dict:
    from .services import replay

    return replay.shadow_run_execute(run_id=run_id).summary()


@shared_task(acks_late=True)
def shadow_runs_daily() -> list[int]:
    """Beat, daily: replay yesterday on every release marked for shadowing."""
    from .services import replay

    ids = replay.shadow_runs_daily()
    for pk in ids:
        transaction.on_commit(lambda pk=pk: shadow_run_execute.delay(pk))
    return ids


@shared_task(acks_late=True)
def mirror_pairs_sync() -> dict:
    from .services.mirror import mirror_pairs_sync as sync

    return sync()


@shared_task(base=JobTask, job_model="shadow.JudgeRun", acks_late=True)
def shadow_judge_execute(run_id: int) -> dict:
    from .services import judge

    return judge.shadow_judge(run_id=run_id).summary()


@shared_task(acks_late=True)
def shadow_judge_daily() -> int | None:
    """Beat, daily after the replays: pair mirrored answers, then judge every unjudged pair."""
    from llm.client import LLMNotConfigured

    from .services import judge
    from .services.mirror import mirror_pairs_sync as sync

    sync()
    try:
        run = judge.judge_run_create(user="beat")
    except LLMNotConfigured as e:
        log.warning("shadow judge not run: %s", e)
        return None
    transaction.on_commit(lambda: shadow_judge_execute.delay(run.pk))
    return run.pk


@shared_task(acks_late=True, autoretry_for=(LabelStudioUnavailable,), retry_backoff=30, retry_backoff_max=1800,
             retry_kwargs={"max_retries": 8})
def audit_push(audit_id: int) -> dict:
    from .services import audit

    return audit.audit_push(audit_id=audit_id)


@shared_task(acks_late=True)
def monthly_audit() -> int:
    """Beat, on the 2nd of each month: last month's judged pairs, a sample to people in Label Studio."""
    from .services import audit

    a = audit.audit_create()
    transaction.on_commit(lambda: audit_push.delay(a.pk))
    return a.pk
