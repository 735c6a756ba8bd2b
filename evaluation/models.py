"""Offline scores of releases on frozen test-set versions, and the alarms the correlation raises.

An offline run scores one release on one frozen test-set version: by answering every item and
grading the answers (mode generate), by grading the answers production served (mode served), or
by importing per-item scores computed elsewhere (mode import). Its items' scores are kept one row
each, so a release's score can be recomputed, compared item by item, and matched to production.
"""
from django.db import models

from core.jobs import Job
from production.models import Source, Turn
from releases.models import Release
from testsets.models import TestItem, TestSetVersion


class OfflineRun(Job):
    task_name = "evaluation.tasks.offline_run_execute"

    class Mode(models.TextChoices):
        GENERATE = "generate"
        SERVED = "served"
        IMPORT = "import"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="offline_runs")
    version = models.ForeignKey(TestSetVersion, on_delete=models.PROTECT, related_name="offline_runs")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    # Import: the tool that wrote the file, the metric read, and the file's path and sha256.
    format = models.CharField(max_length=20, blank=True, default="")
    metric = models.CharField(max_length=200, blank=True, default="")
    origin = models.CharField(max_length=500, blank=True, default="")
    origin_sha256 = models.CharField(max_length=64, blank=True, default="")
    grader_model = models.CharField(max_length=200, blank=True, default="")
    candidate_model = models.CharField(max_length=200, blank=True, default="")
    # Items of the version scored, items whose scoring failed, and items not scored because the
    # mode does not apply to them (served: not from production, or served by another release).
    items = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # Import: keys in the file that the version does not hold (kept, never silently dropped), and
    # items of the version the file has no score for.
    unknown_keys = models.JSONField(default=list, blank=True)
    missing = models.PositiveIntegerField(default=0)
    score = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    llm_requests = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["release", "version", "status"])]

    def __str__(self) -> str:
        return f"offline run {self.pk}: {self.release_id} on version {self.version_id} ({self.mode}, {self.status})"


class OfflineScore(models.Model):
    """One item's score in one run. `score` is null when scoring the item failed (`error` says why)."""

    run = models.ForeignKey(OfflineRun, on_delete=models.CASCADE, related_name="scores")
    key = models.CharField(max_length=400)
    item = models.ForeignKey(TestItem, on_delete=models.PROTECT, related_name="offline_scores")
    # The production turn the item came from (null for generated cases): item-level correlation
    # joins the served answer's score to that turn's failure flag.
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    score = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=30, blank=True, default="")
    rationale = models.TextField(blank=True, default="")
    answer = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="offlinescore_run_key_uniq")]
        ordering = ["run", "key"]

    def __str__(self) -> str:
        return f"{self.key}: {self.score}"


class Alarm(models.Model):
    """Something the correlation found that a person should look at now; raised once (fingerprint)."""

    class Kind(models.TextChoices):
        DISCORDANT_RELEASE = "discordant_release"
        ITEM_AUC_DROP = "item_auc_drop"
        ITEM_AUC_LOW = "item_auc_low"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms")
    # What makes two raisings the same alarm (kind + releases / week): a report run twice raises nothing new.
    fingerprint = models.CharField(max_length=300, unique=True)
    detail = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Webhook delivery: a failed post keeps the alarm; the beat task retries it after next_post_at.
    posted_at = models.DateTimeField(null=True, blank=True)
    post_attempts = models.PositiveIntegerField(default=0)
    post_error = models.TextField(blank=True, default="")
    next_post_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail[:80]}"


class TurnDayCount(models.Model):
    """Turns and their signal flags counted per (release key, source, day): a rollup of
    production.Turn + TurnSignals, kept current by evaluation.services.rollup (a turn's release key
    is its metadata.release when it names one, else its model; releases are mapped at read time).

    Production quality per release reads these few rows instead of joining a million turns to their
    signals on every report. Flags are counted by name, so new signals need no migration here."""

    named = models.BooleanField(help_text="key is the turn's metadata.release (else its model)")
    key = models.CharField(max_length=255)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="UTC")
    turns = models.PositiveIntegerField(default=0)
    detected = models.PositiveIntegerField(default=0, help_text="turns whose signals were detected")
    failure_candidate = models.PositiveIntegerField(default=0)
    flags = models.JSONField(default=dict, help_text="signal name -> turns carrying it")
    failure_probability_sum = models.FloatField(default=0)
    failure_probability_n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["named", "key", "source", "day"], name="turndaycount_uniq")]
        indexes = [models.Index(fields=["day"])]


class RollupState(models.Model):
    """One row: how far TurnDayCount is current (signals detected up to `detected_mark`)."""

    detected_mark = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    days_recomputed = models.PositiveIntegerField(default=0, help_text="by the last refresh")
    # Postgres: inserts + updates + deletes on production_turnsignals when last refreshed; unchanged
    # means nothing was detected since, and the refresh skips its scan.
    changes_seen = models.BigIntegerField(null=True, blank=True)


class FailureModel(models.Model):
    """One fit of P(answer judged incorrect | signals) on the labelled production turns
    (services.failure_model): its coefficients, held-out metrics and the re-ask prior estimated
    with it. The active one's parameters are handed to production, which computes
    failure_probability with them."""

    version = models.PositiveIntegerField(unique=True)
    fitted_at = models.DateTimeField(auto_now_add=True)
    n_labelled = models.PositiveIntegerField()
    coefficients = models.JSONField()  # {"intercept": b0, "features": {name: b}}
    metrics = models.JSONField(default=dict)  # held-out AUC / Brier, reliability, lifts, re-ask prior
    rephrase_prior = models.FloatField(null=True, blank=True)
    data_hash = models.CharField(max_length=40)  # the inputs it was fitted on: a refit on the same is a no-op
    active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"failure model v{self.version} (n={self.n_labelled}{', active' if self.active else ''})"
