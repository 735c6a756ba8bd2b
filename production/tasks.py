from celery import shared_task

from .services import ingest


@shared_task(acks_late=True)
def ingest_job_run(job_id: int) -> dict | None:
    result = ingest.ingest_job_run(job_id=job_id)
    return result.as_dict() if result else None
