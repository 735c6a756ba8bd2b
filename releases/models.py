"""Releases: named model configurations (model, prompt version, endpoint, system prompt).

A release is what a shadow run asks, what an offline run scores and what the gate decides about.
Production turns are matched to a release by `metadata.release` (its name), else by `model`
(see `releases.selectors.release_turns`).
"""
from django.core.validators import RegexValidator
from django.db import models


class Release(models.Model):
    class DataBoundary(models.TextChoices):
        # The candidate endpoint may receive raw production text: replay sends exactly the served
        # model's input, so the two answers answer the same text.
        SAME = "same"
        # It may not: replay sends redacted text (LLM_REDACT_PII), and the report and the gate say
        # the comparison is on redacted input (the served model saw the raw text).
        REDACTED = "redacted"

    name = models.CharField(max_length=200, unique=True, validators=[
        RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$", "letters, digits and . _ : @ / + - only")])
    model = models.CharField(max_length=255, help_text="the model name sent to the endpoint, and matched to turns")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    base_url = models.CharField(max_length=500, blank=True, default="",
                                help_text="OpenAI-compatible endpoint; empty: OPENAI_BASE_URL")
    # The NAME of an environment variable holding the key: keys are never stored in the database.
    api_key_env = models.CharField(max_length=100, blank=True, default="",
                                   validators=[RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "an environment variable name")])
    system_prompt = models.TextField(blank=True, default="")
    # Replayed daily by the beat schedule (shadow_run for the day before).
    shadow_enabled = models.BooleanField(default=False)
    data_boundary = models.CharField(max_length=10, choices=DataBoundary.choices, default=DataBoundary.REDACTED)
    notes = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name
