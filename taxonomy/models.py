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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"
