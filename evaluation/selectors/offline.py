"""Reads of offline runs, their scores, and alarms."""
from __future__ import annotations

from django.db.models import QuerySet

from ..models import Alarm, OfflineRun, OfflineScore


def offline_run_list(*, release: str | None = None) -> QuerySet[OfflineRun]:
    qs = OfflineRun.objects.select_related("release", "version__testset").order_by("-id")
    if release:
        qs = qs.filter(release__name=release)
    return qs


def offline_run_get(*, run_id: int) -> OfflineRun | None:
    return OfflineRun.objects.select_related("release", "version__testset").filter(pk=run_id).first()


def latest_offline_run(*, release: str, testset: str | None = None, version: int | None = None) -> OfflineRun | None:
    """The release's latest finished run with a score (on the given test set / version if given):
    the gate's offline evidence. Its version tells whether it is stale."""
    qs = OfflineRun.objects.select_related("release", "version__testset").filter(
        release__name=release, status=OfflineRun.Status.DONE, score__isnull=False)
    if testset:
        qs = qs.filter(version__testset__name=testset)
    if version is not None:
        qs = qs.filter(version__number=version)
    return qs.order_by("-version__number", "-id").first()


def offline_scores_of(run: OfflineRun) -> QuerySet[OfflineScore]:
    return run.scores.order_by("key")


def alarm_list(*, limit: int | None = None) -> list[Alarm]:
    qs = Alarm.objects.select_related("release").order_by("-raised_at", "-id")
    return list(qs[:limit] if limit else qs)
