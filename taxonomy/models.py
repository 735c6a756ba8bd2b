"""The failure taxonomy: a tree of failure modes that annotators tag answers with.

A code is never reused: retiring a mode keeps its row (and its code) so old labels stay readable.
"""
from django.core.validators import RegexValidator
from django.db import models

code_validator = RegexValidator(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$",
                                "codes are upper-case words joined by '.', e.g. RETRIEVAL.MISS")


class FailureMode(models.Model):
    code = models.CharField(max_length=100, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    active = models.BooleanField(default=True)
    # A regression on a critical mode blocks a release whatever else improved (the release gate
    # compares its rate, with its subtree, among the candidate's and the served answers).
    critical = models.BooleanField(default=False, help_text="a regression on this mode blocks a release")
    # Set by a merge: labels with this code now count as the surviving mode.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        permissions = [("govern_taxonomy", "Can change the failure taxonomy (admins)")]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class TaxonomyVersion(models.Model):
    """The taxonomy as it stood after a change; labels record the version they were made under."""

    number = models.PositiveIntegerField(unique=True)
    snapshot = models.JSONField(default=list)
    reason = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"taxonomy v{self.number}"


class TaxonomyChange(models.Model):
    """The audit trail: who changed what, when and why."""

    action = models.CharField(max_length=30)
    code = models.CharField(max_length=100)
    details = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=150)
    version = models.ForeignKey(TaxonomyVersion, on_delete=models.PROTECT, related_name="changes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class Proposal(models.Model):
    """A suggested new failure mode, grouped with others that say the same thing."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    text = models.TextField(help_text="the first wording proposed")
    key = models.CharField(max_length=300, db_index=True, help_text="normalised wording, for grouping")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Where it was raised: opaque references such as "annotation:42" (taxonomy knows no labelling).
    refs = models.JSONField(default=list, blank=True)
    wordings = models.JSONField(default=list, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decision_reason = models.TextField(blank=True, default="")
    created_mode = models.ForeignKey(FailureMode, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def count(self) -> int:
        return len(self.refs)
