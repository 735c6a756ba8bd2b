"""Celery adapters over ids: they call a service, then chain what follows it. Services never enqueue."""
from celery import shared_task
from django.conf import settings
from django.db import transaction

from core.jobs import JobTask

from .services import ingest


@shared_task(base=JobTask, job_model="production.IngestJob", acks_late=True)
def ingest_job_run(job_id: int) -> dict | None:
    result = ingest.ingest_job_run(job_id=job_id)
    signals_detect_after_ingest(result)
    return result.as_dict() if result else None


@shared_task(acks_late=True)
def ingest_spool_purge() -> dict:
    # Beat: hourly (migration 0009). Spool files hold raw API bodies; none is kept past its use.
    return ingest.ingest_spool_purge()


@shared_task(acks_late=True)
def signals_detect() -> dict:
    # Idempotent: it works on whatever sessions are dirty when it runs. Also run by the beat schedule
    # (every 5 minutes), which catches up on anything ingested without a chained run.
    from .services.signals import signals_detect as detect

    return detect().as_dict()


def signals_detect_after_ingest(result: "ingest.IngestResult | None") -> None:
    """Chain signal detection after an ingest that stored something (SIGNALS_DETECT_AFTER_INGEST)."""
    if result is not None and settings.SIGNALS_DETECT_AFTER_INGEST and (result.created or result.events):
        transaction.on_commit(signals_detect.delay, robust=True)  # the beat row catches up if the broker is down


@shared_task(acks_late=True)
def retention_apply() -> dict:
    # The daily beat row (migration 0009): idempotent, it drops only text still held past RAW_RETENTION_DAYS.
    from .services.privacy import retention_apply as apply

    return apply()
