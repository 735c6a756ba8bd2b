from celery import shared_task
from django.db import transaction

from core.jobs import TRANSIENT_ERRORS, JobTask
from llm.client import LLMUnavailable

# Only named transient errors are retried: the run was left pending with its usage recorded.
RETRY = {"autoretry_for": (LLMUnavailable, *TRANSIENT_ERRORS), "retry_backoff": 60, "retry_backoff_max": 1800,
         "retry_kwargs": {"max_retries": 6}, "acks_late": True}


@shared_task(base=JobTask, job_model="generation.GenerationRun", **RETRY)
def generation_run_execute(run_id: int) -> dict:
    from labelling.tasks import batch_push

    from . import services

    run = services.generation_run_execute(run_id=run_id)
    if run.review_batch_id:
        batch_push.delay(run.review_batch_id)
    return services.summary(run)


@shared_task(acks_late=True)
def generate_for_failure_mode(code: str, n: int | None = None, offline: bool = False, user: str = "") -> int:
    """One run for one mode (the admin action and schedules call this)."""
    from . import services

    run = services.generation_run_create(failure_mode=code, n=n, offline=offline, user=user)
    transaction.on_commit(lambda: generation_run_execute.delay(run.pk))
    return run.pk


@shared_task(acks_late=True)
def generated_cases_review_sync() -> dict:
    from . import services

    return services.generated_cases_review_sync()
