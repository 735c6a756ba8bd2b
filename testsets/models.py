"""Versioned test sets grown from labelled production items.

A test set has one draft and frozen versions v1, v2, …; a frozen version's items never change —
enforced by database triggers (migration 0002), not only here.
"""
from django.conf import settings
from django.db import models

from core.jobs import Job


class TestSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class TestSetVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        FROZEN = "frozen"

    testset = models.ForeignKey(TestSet, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(help_text="the N of vN this draft becomes, or became")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    note = models.TextField(blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    item_count = models.PositiveIntegerField(default=0)
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    # False for a version frozen before promotion stored redacted text (set by migration 0005): it holds
    # raw text, so only admins read it (core.roles.TESTSETS_UNREDACTED); `redact_version` freezes a
    # redacted successor. Fixed once frozen (the database's guard).
    redacted = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["testset", "number"], name="testsetversion_number_uniq"),
            models.UniqueConstraint(fields=["testset"], condition=models.Q(status="draft"),
                                    name="testsetversion_one_draft"),
        ]
        ordering = ["testset", "number"]

    def __str__(self) -> str:
        return f"{self.testset.name} v{self.number}{' (draft)' if self.status == 'draft' else ''}"

    @property
    def exported_in_background(self) -> bool:
        """Exports of this version run as jobs (202 and a job to poll), not inside the request."""
        return self.item_count > settings.EXPORT_SYNC_MAX_ITEMS


# A test item's content, in the order of every export's columns: what the version's sha256 covers
# (each item's canonical JSON), what promotion writes, and what a new draft copies.
ITEM_FIELDS = ("key", "source", "query", "response", "reference_answer", "contexts", "conversation", "verdict",
               "failure_modes", "stratum", "inclusion_probability", "provenance")
# Of those, the ones holding lists or objects (CSV writes them as JSON text).
NESTED_FIELDS = ("contexts", "conversation", "failure_modes", "provenance")


class TestItem(models.Model):
    """One eval case in one version. `key` is stable across versions (e.g. turn:<source>:<turn id>).
    `conversation` is what came before the query, as the annotator saw it
    ([{"role": "user" | "assistant", "content": ...}], empty for a first turn)."""

    version = models.ForeignKey(TestSetVersion, on_delete=models.PROTECT, related_name="items")
    key = models.CharField(max_length=400)
    source = models.CharField(max_length=200, help_text="production source name, or 'generated'")
    query = models.TextField()
    response = models.TextField(blank=True, default="", help_text="the answer that was served")
    reference_answer = models.TextField(blank=True, default="")
    contexts = models.JSONField(default=list, blank=True)
    conversation = models.JSONField(default=list, blank=True)
    verdict = models.CharField(max_length=30)
    failure_modes = models.JSONField(default=list, blank=True)
    stratum = models.CharField(max_length=20, blank=True, default="")
    inclusion_probability = models.FloatField(null=True, blank=True)
    provenance = models.JSONField(default=dict, blank=True)
    content_sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="testitem_version_key_uniq")]
        ordering = ["version", "key"]

    def __str__(self) -> str:
        return self.key


class PromotionHold(models.Model):
    """A judged item that a promotion rule kept out, and why (replaced on every promote run)."""

    item = models.OneToOneField("labelling.BatchItem", on_delete=models.CASCADE, related_name="promotion_hold")
    reason = models.TextField()
    checked_at = models.DateTimeField(auto_now=True)


class ExportJob(Job):
    """One export of a frozen version in one format, written to a file under MEDIA_ROOT by a worker
    (or in the request, for a version of at most EXPORT_SYNC_MAX_ITEMS items); the file's sha256 is
    recorded, and checked before the file is served."""

    task_name = "testsets.tasks.export_job_run"

    version = models.ForeignKey(TestSetVersion, on_delete=models.PROTECT, related_name="export_jobs")
    format = models.CharField(max_length=20)
    options = models.JSONField(default=dict, blank=True, help_text='e.g. {"csv_raw": true}')
    path = models.CharField(max_length=500, blank=True, default="", help_text="relative to MEDIA_ROOT")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        indexes = [models.Index(fields=["version", "format"], name="exportjob_version_format")]

    def __str__(self) -> str:
        return f"{self.version} {self.format} ({self.status})"
