"""Targeted case generation: runs that ask an LLM (or the offline rules) for new queries that would
trigger a known failure mode, and the cases they produced with their review state.

A generated case is not a test item: it becomes a turn of source "generated" and kind "generated"
(never counted as production: docs/architecture-data.md), goes to the review project in Label
Studio, and is promoted by the normal rules.
"""
from django.db import models

from core.jobs import Job


class GenerationRun(Job):
    task_name = "generation.tasks.generation_run_execute"

    failure_mode = models.CharField(max_length=100, db_index=True, help_text="the failure mode's code")
    n = models.PositiveIntegerField(help_text="cases asked for")
    model = models.CharField(max_length=200, blank=True, default="", help_text="LLM model; empty when offline")
    offline = models.BooleanField(default=False)
    prompt_version = models.CharField(max_length=40)
    temperature = models.FloatField(default=0.0)
    seed_item_ids = models.JSONField(default=list, blank=True, help_text="BatchItem ids shown as examples")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    llm_requests = models.PositiveIntegerField(default=0, help_text="LLM requests made, retries included")
    generated = models.PositiveIntegerField(default=0)
    duplicates_dropped = models.PositiveIntegerField(default=0)
    # The review batch (labelling.LabellingBatch id); kept as a plain id, set once.
    review_batch_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.failure_mode} ({self.status})"


class GeneratedCase(models.Model):
    class Status(models.TextChoices):
        GENERATED = "generated"
        DUPLICATE = "duplicate"
        SENT_FOR_REVIEW = "sent_for_review"
        APPROVED = "approved"
        REJECTED = "rejected"

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField(help_text="order in the run; the turn id is gen-<run>-<position>")
    query = models.TextField()
    reference_answer = models.TextField(blank=True, default="")
    rationale = models.TextField(blank=True, default="")
    technique = models.CharField(max_length=40, help_text="'llm', or the offline rule that made it")
    seed_item_ids = models.JSONField(default=list, blank=True)
    # What it duplicates: "case:<position>" of the same run or "testset:<query>", with the score.
    duplicate_of = models.TextField(blank=True, default="")
    duplicate_score = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.GENERATED, db_index=True)
    turn_id = models.BigIntegerField(null=True, blank=True, help_text="production Turn id created for review")
    review_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="generatedcase_run_position_uniq")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.position}: {self.query[:60]}"

    @property
    def external_id(self) -> str:
        return f"gen-{self.run_id}-{self.position}"
