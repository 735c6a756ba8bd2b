"""Test data factories (factory_boy): a row with sensible defaults and only what a test cares about
said in the test. Ids that stand for Label Studio's (tasks, annotations, projects) come from one
sequence far above anything a real Label Studio in the test run hands out."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import factory
from django.contrib.auth.models import User

from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, Resolution, TaskLink
from production.models import Session, Source, Turn, TurnSignals
from releases.models import Release
from testsets.models import TestItem, TestSet, TestSetVersion

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)
_LS_IDS = factory.Sequence(lambda n: 900_000_000 + n)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-test-1")


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = "prod"


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    source = factory.SubFactory(SourceFactory)
    external_id = factory.Sequence(lambda n: f"s{n}")
    dirty = False


class TurnFactory(factory.django.DjangoModelFactory):
    """A turn; its session's turns are a minute apart in creation order."""

    class Meta:
        model = Turn

    session = factory.SubFactory(SessionFactory)
    source = factory.SelfAttribute("session.source")
    external_id = factory.Sequence(lambda n: f"t{n}")
    timestamp = factory.Sequence(lambda n: T0 + timedelta(minutes=n))
    query = factory.Sequence(lambda n: f"question {n}?")
    response = factory.Sequence(lambda n: f"answer {n}.")
    model = "model-a"


class TurnSignalsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TurnSignals

    turn = factory.SubFactory(TurnFactory)


class LabelStudioProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelStudioProject
        django_get_or_create = ("title",)

    title = "evalgap: production answers"
    ls_project_id = _LS_IDS


class LabellingBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabellingBatch

    month = "2026-09"


class BatchItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchItem

    batch = factory.SubFactory(LabellingBatchFactory)
    turn = factory.SubFactory(TurnFactory)
    stratum = "failure"
    inclusion_probability = 1.0
    query_key = factory.SelfAttribute("turn.external_id")


class TaskLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskLink

    item = factory.SubFactory(BatchItemFactory)
    project = factory.SubFactory(LabelStudioProjectFactory)
    ls_task_id = _LS_IDS


class AnnotationFactory(factory.django.DjangoModelFactory):
    """A live judgement; its task link is made when the item has none."""

    class Meta:
        model = Annotation

    ls_annotation_id = _LS_IDS
    item = factory.SubFactory(BatchItemFactory)
    project = factory.LazyAttribute(lambda o: o.item.task.project if hasattr(o.item, "task")
                                    else TaskLinkFactory(item=o.item).project)
    ls_task_id = factory.LazyAttribute(lambda o: o.item.task.ls_task_id)
    annotator = "ann-1"
    verdict = "incorrect"
    failure_modes = factory.LazyFunction(lambda: ["INTENT"])
    reference_answer = factory.LazyAttribute(lambda o: f"The right answer to: {o.item.turn.query}")
    taxonomy_version = 1


class ResolutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Resolution

    item = factory.SubFactory(BatchItemFactory)
    verdict = "incorrect"
    failure_modes = factory.LazyFunction(lambda: ["INTENT"])
    reference_answer = "the resolved answer"
    reason = "annotators disagreed"
    resolved_by = factory.SubFactory(UserFactory, username="resolver")


class TestSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TestSet
        django_get_or_create = ("name",)

    name = "production"


class TestSetVersionFactory(factory.django.DjangoModelFactory):
    """A draft; freeze it with testsets.services.versions.testset_freeze (the database guards frozen ones)."""

    class Meta:
        model = TestSetVersion

    testset = factory.SubFactory(TestSetFactory)
    number = factory.Sequence(lambda n: n + 1)


class TestItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TestItem

    version = factory.SubFactory(TestSetVersionFactory)
    key = factory.Sequence(lambda n: f"turn:prod:t{n}")
    source = "prod"
    query = factory.Sequence(lambda n: f"question {n}?")
    response = "served"
    reference_answer = "reference"
    verdict = "incorrect"
    failure_modes = factory.LazyFunction(lambda: ["INTENT"])
    stratum = "failure"
    inclusion_probability = 1.0
    content_sha256 = factory.Sequence(lambda n: f"{n:064x}")


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"release-{n}")
    model = "model-a"
