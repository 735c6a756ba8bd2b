"""Celery adapters: ids in, services do the work."""
from celery import shared_task

from core.jobs import JobTask
from llm.client import LLMUnavailable

# Only the named transient error is retried: the run was left pending with what it scored.
RETRY = {"autoretry_for": (LLMUnavailable,), "retry_backoff": 60, "retry_backoff_max": 1800,
         "retry_kwargs": {"max_retries": 6}, "acks_late": True}


@shared_task(base=JobTask, job_model="evaluation.OfflineRun", **RETRY)
def offline_run_execute(run_id: int) -> dict:
    from .services import offline

    run = offline.offline_run_execute(run_id=run_id)
    return offline.run_summary(run)


@shared_task(acks_late=True)
def alarm_post(alarm_id: int) -> bool:
    from .services.alarms import alarm_post as post

    return post(alarm_id=alarm_id)


@shared_task(acks_late=True)
def alarms_post_pending() -> dict:
    from .services.alarms import alarms_post_pending as post_pending

    return post_pending()


@shared_task(acks_late=True)
def correlation_check() -> dict:
    """Daily: compute the correlation report and store (and post) what it finds."""
    from . import selectors
    from .services.alarms import alarms_record
    from .services.rollup import turn_day_counts_refresh as refresh

    refresh()
    data = selectors.correlation_data()
    return {"found": len(data["alarms"]), "new": len(alarms_record(found=data["alarms"]))}


@shared_task(acks_late=True)
def turn_day_counts_refresh() -> dict:
    from .services.rollup import turn_day_counts_refresh as refresh

    return refresh()


@shared_task(acks_late=True)
def failure_model_fit() -> dict:
    """Monthly (beat) and on demand: refit the failure model on the labels; a no-op on the same labels."""
    from .services.failure_model import failure_model_fit as fit

    out = fit()
    return {k: out[k] for k in ("status", "message", "version", "n_labelled")}
