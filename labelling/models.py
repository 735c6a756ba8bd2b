"""Labelling: batches of production turns sent to Label Studio, and the judgements that come back."""
from django.conf import settings
from django.db import models

from core.jobs import Job
from production.models import Turn

from . import vocabulary


class LabellingBatch(Job):
    """A selection of turns for Label Studio; as a job, its push (pending -> running -> done)."""

    task_name = "labelling.tasks.batch_push"

    month = models.CharField(max_length=7, blank=True, default="", help_text="YYYY-MM of the sample")
    seed = models.BigIntegerField(null=True, blank=True)
    sample_size = models.IntegerField(default=0)
    include_failures = models.BooleanField(default=False)
    failures = models.IntegerField(default=0)
    sampled = models.IntegerField(default=0)
    skipped_duplicates = models.IntegerField(default=0)
    # The Label Studio project this batch goes to; empty: settings.LABEL_STUDIO_PROJECT_TITLE.
    project_title = models.CharField(max_length=200, blank=True, default="")
    pushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "labelling batches"

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.month or 'failures'})"


class BatchItem(models.Model):
    # The strata are defined in labelling.vocabulary; these are their choices.
    Stratum = models.TextChoices("Stratum", [(s.upper(), s) for s in vocabulary.STRATA])

    batch = models.ForeignKey(LabellingBatch, on_delete=models.CASCADE, related_name="items")
    # A turn is sent for labelling once, ever.
    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="labelling_item")
    stratum = models.CharField(max_length=20, choices=Stratum.choices)
    # Probability that this turn was selected; 1.0 for failure candidates taken in full.
    # Rates estimated from labels weight each item by 1 / inclusion_probability.
    inclusion_probability = models.FloatField()
    query_key = models.CharField(max_length=500, db_index=True, help_text="normalised query, for near-duplicates")
    # Set before the import request is sent: an item with this set and no task link may or may
    # not be in Label Studio (the push crashed) and is looked up before it is imported again.
    push_attempted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.turn.external_id} ({self.stratum})"


class LabelStudioProject(models.Model):
    class Kind(models.TextChoices):
        TURNS = "turns"  # one production answer per task, judged against the taxonomy
        PAIRWISE = "pairwise"  # two answers per task: people pick A, B or tie

    title = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TURNS)
    ls_project_id = models.IntegerField(unique=True)
    config_sha256 = models.CharField(max_length=64, blank=True, default="")
    config_synced_at = models.DateTimeField(null=True, blank=True)
    webhook_id = models.IntegerField(null=True, blank=True)
    # Adopted from Label Studio (found by title, not created by this database): its tasks may
    # already hold our items, so the next push looks every item up before importing.
    needs_reconcile = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.title} (#{self.ls_project_id})"


class TaskLink(models.Model):
    item = models.OneToOneField(BatchItem, on_delete=models.CASCADE, related_name="task")
    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="tasks")
    ls_task_id = models.IntegerField()
    pushed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "ls_task_id"], name="tasklink_project_task_uniq")]


def live_q(prefix: str = "") -> models.Q:
    """The live-annotation condition (not deleted in Label Studio, not cancelled), also across a
    relation: ``live_q("annotations__")``."""
    return models.Q(**{f"{prefix}deleted": False, f"{prefix}was_cancelled": False})


class AnnotationQuerySet(models.QuerySet):
    def live(self):
        """Judgements that count: not deleted in Label Studio, not cancelled (skipped) there."""
        return self.filter(live_q())

    def with_verdict(self):
        return self.live().exclude(verdict="")


class Annotation(models.Model):
    """One annotator's judgement of one item, as last seen in Label Studio."""

    objects = AnnotationQuerySet.as_manager()

    ls_annotation_id = models.IntegerField(unique=True)
    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(BatchItem, on_delete=models.CASCADE, related_name="annotations")
    ls_task_id = models.IntegerField()
    annotator = models.CharField(max_length=255, blank=True, default="")
    verdict = models.CharField(max_length=30, blank=True, default="")
    failure_modes = models.JSONField(default=list, blank=True)
    reference_answer = models.TextField(blank=True, default="")
    proposed_failure_mode = models.TextField(blank=True, default="")
    notes = models.TextField(blank=True, default="")
    lead_time = models.FloatField(null=True, blank=True)
    was_cancelled = models.BooleanField(default=False)
    ls_created_at = models.DateTimeField(null=True, blank=True)
    ls_updated_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=list, blank=True)
    # The taxonomy version in force when this judgement was (last) received.
    taxonomy_version = models.PositiveIntegerField(null=True, blank=True)
    # A value the config does not offer (LS does not check) is kept, with the reason, not applied.
    invalid_reason = models.TextField(blank=True, default="")
    deleted = models.BooleanField(default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"annotation {self.ls_annotation_id} on {self.item_id}: {self.verdict}"


class Resolution(models.Model):
    """An admin's decision for an item annotators disagreed on; it is the item's judgement from then
    on (labelling.selectors.item_judgement). Was testsets.Resolution (same table, moved)."""

    item = models.OneToOneField(BatchItem, on_delete=models.CASCADE, related_name="resolution")
    verdict = models.CharField(max_length=30)
    failure_modes = models.JSONField(default=list, blank=True)
    reference_answer = models.TextField(blank=True, default="")
    reason = models.TextField()
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    resolved_at = models.DateTimeField(auto_now_add=True)


class WebhookDelivery(models.Model):
    """A webhook body as received; processed by a task so Label Studio's 1 s timeout is never hit."""

    action = models.CharField(max_length=50)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")


class PairwiseTask(models.Model):
    """One pairwise comparison sent to Label Studio for another app (the shadow audit). Labelling
    knows nothing of what the two answers are: the caller's stable `key` is all it keeps of them."""

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="pairwise_tasks")
    key = models.CharField(max_length=200, help_text="the caller's id; sent as data.evalgap_key")
    # What was sent (already redacted), so a re-push sends the same bytes.
    data = models.JSONField(default=dict)
    ls_task_id = models.IntegerField(null=True, blank=True)
    # As for BatchItem: set before the import request; attempted and unlinked is looked up first.
    push_attempted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="pairwisetask_project_key_uniq"),
            models.UniqueConstraint(fields=["project", "ls_task_id"], name="pairwisetask_project_task_uniq"),
        ]

    def __str__(self) -> str:
        return f"pairwise {self.key} (#{self.ls_task_id})"


class PairwiseAnnotation(models.Model):
    """One person's pick on a pairwise task, as last seen in Label Studio."""

    ls_annotation_id = models.IntegerField(unique=True)
    task = models.ForeignKey(PairwiseTask, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.CharField(max_length=255, blank=True, default="")
    pick = models.CharField(max_length=3, blank=True, default="", help_text='"a", "b" or "tie"')
    notes = models.TextField(blank=True, default="")
    result = models.JSONField(default=list, blank=True)
    invalid_reason = models.TextField(blank=True, default="")
    was_cancelled = models.BooleanField(default=False)
    lead_time = models.FloatField(null=True, blank=True)
    ls_updated_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"pick {self.pick} on {self.task_id}"
