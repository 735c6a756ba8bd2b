from celery import shared_task


@shared_task(acks_late=True)
def jobs_sweep() -> dict:
    """Beat: re-queue or fail jobs stuck "running" (their worker died)."""
    from .jobs import jobs_sweep as sweep

    return sweep()
