from .models import ExportJob, TestItem, TestSet, TestSetVersion


def testset_list():
    return TestSet.objects.prefetch_related("versions").order_by("name")


def version_list(*, name: str):
    return TestSetVersion.objects.filter(testset__name=name).order_by("-number")


def latest_frozen(*, name: str = "production") -> TestSetVersion | None:
    return (TestSetVersion.objects.filter(testset__name=name, status=TestSetVersion.Status.FROZEN)
            .order_by("-number").first())


def testset_queries(*, name: str = "production") -> list[str]:
    """Every query in the test set (draft and frozen versions), for de-duplicating new cases."""
    return list(TestItem.objects.filter(version__testset__name=name).values_list("query", flat=True).distinct())


def export_formats() -> tuple[str, ...]:
    from .exports import FORMATS

    return FORMATS


def export_latest(*, version: TestSetVersion, fmt: str, options: dict | None = None) -> ExportJob | None:
    """The most recent export job of this version, format and options."""
    return (ExportJob.objects.filter(version=version, format=fmt, options=options or {})
            .select_related("version__testset").order_by("-pk").first())
