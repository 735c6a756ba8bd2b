"""Reads over test sets: versions, changelogs between them, coverage against production, the
promotion rules' verdict on a judgement, and the export formats on offer."""
from __future__ import annotations

from collections import Counter

from labelling import selectors as labelling
from labelling.vocabulary import FAILED_VERDICTS, STRATA

from core.roles import TESTSETS_UNREDACTED, has

from .models import ExportJob, TestItem, TestSet, TestSetVersion


class TestSetError(ValueError):
    """A test set, version or export that does not exist or cannot be made; the message names the field."""


def testset_list():
    return TestSet.objects.prefetch_related("versions").order_by("name")


def version_list(*, name: str):
    return TestSetVersion.objects.filter(testset__name=name).order_by("-number")


def version_get(*, name: str, number: int) -> TestSetVersion:
    try:
        return TestSetVersion.objects.select_related("testset").get(testset__name=name, number=number)
    except TestSetVersion.DoesNotExist:
        raise TestSetError(f"version: test set {name!r} has no version {number}") from None


def version_readable(version: TestSetVersion, user) -> bool:
    """A version frozen before promotion redacted holds raw text: only admins read or export it."""
    return version.redacted or has(user, TESTSETS_UNREDACTED)


def version_unreadable_reason(version: TestSetVersion) -> str:
    return (f"version: {version.testset.name} v{version.number} was frozen before test sets stored redacted text "
            f"and holds raw text: only admins read it (an admin can run "
            f"`redact_version {version.testset.name} {version.number}` to freeze a redacted successor)")


def erased_subject_items(version: TestSetVersion) -> int:
    """How many of the version's items came from subjects erased since (production's tombstones keep
    the user pseudonyms test items carry). The items stay: they hold only redacted text."""
    return erased_subject_items_by_version([version.pk]).get(version.pk, 0)


def erased_subject_items_by_version(version_ids: list[int]) -> dict[int, int]:
    """{version id: items from erased subjects} in two queries, whatever the number of versions."""
    from django.db.models import Count

    from production.models import ErasureTombstone

    erased = {p for ps in ErasureTombstone.objects.values_list("user_pseudonyms", flat=True) for p in ps or ()}
    if not erased:
        return {}
    return dict(TestItem.objects.filter(version_id__in=version_ids, provenance__user_id__in=sorted(erased))
                .values("version_id").annotate(n=Count("id")).values_list("version_id", "n"))


def unredacted_items_of(turn_keys: list[tuple[str, str]]) -> int:
    """Items of versions frozen with raw text (redacted false) that came from these turns: the database
    keeps them as frozen, so an erasure reports them (docs/privacy.md, known limits)."""
    keys = [f"turn:{source}:{turn_id}" for source, turn_id in turn_keys]
    if not keys:
        return 0
    return TestItem.objects.filter(version__redacted=False, key__in=keys).count()


def latest_frozen(*, name: str = "production") -> TestSetVersion | None:
    return (TestSetVersion.objects.filter(testset__name=name, status=TestSetVersion.Status.FROZEN)
            .order_by("-number").first())


def testset_queries(*, name: str = "production") -> list[str]:
    """Every query in the test set (draft and frozen versions), for de-duplicating new cases."""
    return list(TestItem.objects.filter(version__testset__name=name).values_list("query", flat=True).distinct())


def export_formats() -> tuple[str, ...]:
    from .exports import FORMATS

    return FORMATS


def promotion_hold_reason(judgement: labelling.Judgement) -> str:
    """Why a judged item stays out of the test set under the promotion rules, or "" when it goes in:
    `cannot_judge` is held back, and a failed answer needs a reference answer. (That a judgement
    exists at all — a verdict, agreement or an admin's resolution — is labelling's call.)"""
    if judgement.cannot_judge:
        return f"verdict is {judgement.verdict}"
    if judgement.verdict in FAILED_VERDICTS and not judgement.reference_answer.strip():
        return f"verdict is {judgement.verdict} but there is no reference answer"
    return ""


def _mode_and_stratum_counts(version: TestSetVersion) -> tuple[Counter, Counter]:
    modes, strata = Counter(), Counter()
    for fm, stratum in version.items.values_list("failure_modes", "stratum"):
        modes.update(fm)
        strata[stratum] += 1
    return modes, strata


def changelog(*, name: str, old: int, new: int) -> dict:
    a, b = version_get(name=name, number=old), version_get(name=name, number=new)
    before = dict(a.items.values_list("key", "content_sha256"))
    after = dict(b.items.values_list("key", "content_sha256"))
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    (ma, sa), (mb, sb) = _mode_and_stratum_counts(a), _mode_and_stratum_counts(b)
    return {
        # What the newer version says about itself (a redacted successor says why it was made).
        "note": b.note, "redacted": {"from": a.redacted, "to": b.redacted},
        "testset": name, "from": old, "to": new, "added": added, "removed": removed, "changed": changed,
        "failure_modes": {m: {"from": ma[m], "to": mb[m], "delta": mb[m] - ma[m]} for m in sorted(ma | mb)},
        "strata": {s: {"from": sa[s], "to": sb[s], "delta": sb[s] - sa[s]} for s in sorted(sa | sb)},
    }


def coverage(*, name: str, number: int) -> dict:
    """Failure modes and strata in the version next to their estimated rates in production.

    Production rates of failure modes are Horvitz–Thompson estimates from every judged sampled
    item (weight 1 / inclusion probability); strata rates are shares of all detected turns.
    """
    version = version_get(name=name, number=number)
    n = version.items.count()
    in_set_modes, in_set_strata = _mode_and_stratum_counts(version)
    prod_modes = labelling.failure_mode_production_rates()
    strata_prod = labelling.strata_production_counts()
    turns = sum(strata_prod.values())
    modes = sorted(set(in_set_modes) | set(prod_modes or ()))
    return {
        "testset": name, "version": number, "items": n,
        "failure_modes": [{"code": m, "items": in_set_modes[m], "share_in_set": round(in_set_modes[m] / n, 4) if n else 0,
                           "production_rate": round(prod_modes.get(m, 0.0), 4) if prod_modes is not None else None}
                          for m in modes],
        "strata": [{"stratum": s, "items": in_set_strata[s], "share_in_set": round(in_set_strata[s] / n, 4) if n else 0,
                    "production_rate": round(strata_prod.get(s, 0) / turns, 4) if turns else None}
                   for s in STRATA],
    }


def export_latest(*, version: TestSetVersion, fmt: str, options: dict | None = None) -> ExportJob | None:
    """The most recent export job of this version, format and options."""
    return (ExportJob.objects.filter(version=version, format=fmt, options=options or {})
            .select_related("version__testset").order_by("-pk").first())
