from celery import shared_task
from django.db import transaction

from core.jobs import JobStatus, JobTask


@shared_task(base=JobTask, job_model="testsets.ExportJob", acks_late=True)
def export_job_run(job_id: int) -> dict | None:
    from .services.exports import export_job_run as run

    return run(job_id=job_id)


def export_job_enqueue(job) -> None:
    """Send a pending export job's task once the transaction that made it commits."""
    if job.status == JobStatus.PENDING:
        pk = job.pk
        transaction.on_commit(lambda: export_job_run.delay(pk))
