from celery import shared_task

from core.jobs import JobTask

from .services import ingest


@shared_task(base=JobTask, job_model="production.IngestJob", acks_late=True)
def ingest_job_run(job_id: int) -> dict | None:
    result = ingest.ingest_job_run(job_id=job_id)
    return result.as_dict() if result else None


@shared_task(acks_late=True)
def signals_detect() -> dict:
    # Idempotent: it works on whatever sessions are dirty when it runs.
    from .services.signals import signals_detect as detect

    return detect().as_dict()
