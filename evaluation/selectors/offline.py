"""Reads of offline runs, their scores, and alarms."""
from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from core import stats
from testsets.models import TestSet, TestSetVersion

from ..models import Alarm, OfflineRun, OfflineScore


def offline_run_list(*, release: str | None = None) -> QuerySet[OfflineRun]:
    qs = OfflineRun.objects.select_related("release", "version__testset").order_by("-id")
    if release:
        qs = qs.filter(release__name=release)
    return qs


def offline_run_get(*, run_id: int) -> OfflineRun | None:
    return OfflineRun.objects.select_related("release", "version__testset").filter(pk=run_id).first()


def latest_offline_run(*, release: str, testset: str | None = None, version: int | None = None,
                       finished_before: datetime | None = None) -> OfflineRun | None:
    """The release's latest finished run with a score (on the given test set / version if given;
    finished before `finished_before` if given: the gate's as-of): the gate's offline evidence. Its
    version tells whether it is stale."""
    qs = _finished_before(OfflineRun.objects.select_related("release", "version__testset").filter(
        release__name=release, status=OfflineRun.Status.DONE, score__isnull=False), finished_before)
    if testset:
        qs = qs.filter(version__testset__name=testset)
    if version is not None:
        qs = qs.filter(version__number=version)
    return qs.order_by("-version__number", "-id").first()


def _finished_before(qs: QuerySet[OfflineRun], end: datetime | None) -> QuerySet[OfflineRun]:
    return qs if end is None else qs.filter(finished_at__lt=end)


def testset_latest_frozen(*, testset: str, frozen_before: datetime | None = None) -> dict | None:
    """None when no test set has that name; else `{"testset": name, "latest_frozen": N or None}` —
    an offline score on an older version than N is stale (counting versions frozen before
    `frozen_before` if given)."""
    if not TestSet.objects.filter(name=testset).exists():
        return None
    versions = TestSetVersion.objects.filter(testset__name=testset, status=TestSetVersion.Status.FROZEN)
    if frozen_before is not None:
        versions = versions.filter(frozen_at__lt=frozen_before)
    number = versions.order_by("-number").values_list("number", flat=True).first()
    return {"testset": testset, "latest_frozen": number}


def offline_runs_on(*, release: str, testset: str, version: int,
                    finished_before: datetime | None = None) -> list[OfflineRun]:
    """The release's finished, scored runs on that frozen version, newest first."""
    return list(_finished_before(OfflineRun.objects.select_related("release", "version__testset")
                                 .filter(release__name=release, version__testset__name=testset,
                                         version__number=version, status=OfflineRun.Status.DONE,
                                         score__isnull=False), finished_before).order_by("-id"))


def scoring_of(run: OfflineRun) -> str:
    """What a run's scores mean: two runs compare only when this is the same (the same grader
    model, or the same imported tool and metric)."""
    if run.mode == OfflineRun.Mode.IMPORT:
        return f"import:{run.format}:{run.metric or 'score'}"
    return f"grader:{run.grader_model}"


def offline_difference(candidate: OfflineRun, baseline: OfflineRun) -> dict:
    """Candidate minus baseline, item by item over the keys both runs scored (runs on one frozen
    version): the mean difference with a 95 % bootstrap interval that resamples whole
    conversations, as each run's own interval does. Pairing items removes the items' difficulty
    from the comparison, so the interval is much narrower than two overlapping run intervals.
    `{"n", "value", "ci_low", "ci_high", "candidate_only", "baseline_only"}` (None without items)."""
    def scored(run):
        return {k: (s, f"s:{src}:{sess}" if sess else f"item:{k}") for k, s, src, sess in
                run.scores.filter(score__isnull=False)
                .values_list("key", "score", "item__provenance__source", "item__provenance__session_id")}

    a, b = scored(candidate), scored(baseline)
    keys = sorted(a.keys() & b.keys())
    diffs = [a[k][0] - b[k][0] for k in keys]
    est = stats.guarded(len(keys), 2, stats.cluster_bootstrap_mean, diffs, [a[k][1] for k in keys])
    value = est.value if est else (sum(diffs) / len(diffs) if diffs else None)
    return {"n": len(keys), "value": value, "ci_low": est.lo if est else None, "ci_high": est.hi if est else None,
            "candidate_only": len(a.keys() - b.keys()), "baseline_only": len(b.keys() - a.keys())}


def offline_scores_of(run: OfflineRun) -> QuerySet[OfflineScore]:
    return run.scores.order_by("key")


def alarm_list(*, limit: int | None = None) -> list[Alarm]:
    qs = Alarm.objects.select_related("release").order_by("-raised_at", "-id")
    return list(qs[:limit] if limit else qs)
