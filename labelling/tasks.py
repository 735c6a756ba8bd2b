from celery import shared_task

from core.jobs import TRANSIENT_ERRORS, JobTask

from .client import LabelStudioUnavailable

# Label Studio, the database or the broker unreachable: retried with backoff; anything else fails.
RETRY = {"autoretry_for": (LabelStudioUnavailable, *TRANSIENT_ERRORS), "retry_backoff": 5, "retry_backoff_max": 300,
         "retry_kwargs": {"max_retries": 8}, "acks_late": True}


@shared_task(**RETRY)
def projects_sync_config() -> int:
    from .services.projects import projects_sync_config as sync

    return sync()


@shared_task(base=JobTask, job_model="labelling.LabellingBatch", **RETRY)
def batch_push(batch_id: int) -> dict:
    from .services.push import batch_push as push

    return push(batch_id=batch_id)


@shared_task(**RETRY)
def annotations_pull() -> dict:
    from .services.annotations import annotations_pull as pull

    return pull()


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=120, retry_kwargs={"max_retries": 10},
             acks_late=True)
def webhook_delivery_process(delivery_id: int) -> str:
    from .services.annotations import webhook_delivery_process as process

    return process(delivery_id=delivery_id)


@shared_task(acks_late=True)
def monthly_sample() -> dict:
    """Beat, on the 1st of each month: failures plus the monthly sample of last month, pushed."""
    from .services.selection import batch_select_monthly

    batch = batch_select_monthly()
    batch_push.delay(batch.pk)
    return {"batch": batch.pk}
