"""Production logs as evalgap holds them: sources, sessions, turns, events, rejected lines.

A turn's identity is (source, external_id): the id the source system gave it. Ingest is keyed
on it, so re-reading a log creates nothing new.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from core.jobs import Job

from .contract import MAX_EVENT_TYPE, MAX_ID, MAX_RELEASE
from .signal_definitions import SIGNAL_NAMES, current_definition_version


class Source(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # Per-source switch read by labelling before anything leaves for Label Studio.
    redact_pii = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Session(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="sessions")
    external_id = models.CharField(max_length=MAX_ID)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    # Set by ingest when turns or events arrive; signal detection re-reads only dirty sessions.
    dirty = models.BooleanField(default=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="session_source_external_id_uniq"),
            # What a turn's composite foreign key (source, session) refers to (migration 0008).
            models.UniqueConstraint(fields=["source", "id"], name="session_source_id_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.external_id}"


class TurnQuerySet(models.QuerySet):
    def production(self) -> "TurnQuerySet":
        """Turns of real traffic: what every rate, release, stratum and signal counts (docs/architecture-data.md)."""
        return self.filter(kind=Turn.Kind.PRODUCTION)

    def generated(self) -> "TurnQuerySet":
        return self.filter(kind=Turn.Kind.GENERATED)


class Turn(models.Model):
    class Kind(models.TextChoices):
        PRODUCTION = "production"
        # A case written for review (generation), stored as a turn so it is labelled and promoted like
        # one; it was never served to a user, so no production number may count it.
        GENERATED = "generated"

    # No single-column indexes on the two keys: the unique (source, external_id) and the
    # (session, timestamp, position) indexes lead with them, and every index slows ingest.
    # On PostgreSQL one composite foreign key, (source, session) -> session (source, id), replaces
    # the two single ones (migration 0008): it also holds a turn's session to the turn's own source,
    # and COPY checks one key a row instead of two (benchmarks/README.md). Django's cascades are
    # unchanged: they never relied on the database's constraint.
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="turns", db_index=False,
                               db_constraint=False)
    external_id = models.CharField(max_length=MAX_ID)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="turns", db_index=False,
                                db_constraint=False)
    timestamp = models.DateTimeField(null=True, blank=True, db_index=True)
    # Order inside the session for inputs without timestamps (OpenAI messages).
    position = models.IntegerField(null=True, blank=True)
    query = models.TextField()
    response = models.TextField(blank=True, default="")
    user_id = models.CharField(max_length=MAX_ID, blank=True, default="")
    contexts = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=MAX_ID, blank=True, default="")
    response_timestamp = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A database default, so COPY need not send it.
    ingested_at = models.DateTimeField(db_default=Now())
    # When its raw text was dropped (erasure or RAW_RETENTION_DAYS: production.services.privacy);
    # its signals, labels and ids stay.
    raw_dropped_at = models.DateTimeField(null=True, blank=True)
    # Also a database default: ingest writes production turns; production.services.generated marks the others.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PRODUCTION,
                            db_default=Kind.PRODUCTION)

    objects = TurnQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="turn_source_external_id_uniq")
        ]
        indexes = [models.Index(fields=["session", "timestamp", "position"])]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    """A user or agent action on a turn's answer. May arrive before its turn (turn is then null)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="events")
    turn_external_id = models.CharField(max_length=MAX_ID)
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=MAX_EVENT_TYPE, db_index=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    corrected_response = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=MAX_ID, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    # sha1 of the canonical event object: the same event read twice is stored once.
    fingerprint = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "turn_external_id", "fingerprint"], name="event_source_turn_fingerprint_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} on {self.turn_external_id}"


class MirroredAnswer(models.Model):
    """A candidate release's answer to a production turn's query, mirrored by the gateway (LiteLLM
    `silent_model`, Envoy/Istio request mirroring) and sent in the log as a `shadow` line; never shown to
    users. Like an event it may arrive before its turn (turn is then null) and is attached when the turn
    arrives. Production knows nothing of releases: `release` is the name the line gave, and the shadow
    app pairs these with their turns."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="mirrored_answers")
    turn_external_id = models.CharField(max_length=MAX_ID)
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.CASCADE, related_name="mirrored_answers")
    release = models.CharField(max_length=MAX_RELEASE)
    response = models.TextField(blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            # The first line wins; a repeat is a duplicate.
            models.UniqueConstraint(fields=["source", "turn_external_id", "release"],
                                    name="mirrored_source_turn_release_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.release} on {self.turn_external_id}"


class IngestJob(Job):
    """One ingest: of a file by the command (runs in its process), or of a spooled API body (a task)."""

    task_name = "production.tasks.ingest_job_run"
    resend_pending = True  # a spooled job is enqueued when created; the command's run "running" at once

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="ingest_jobs")
    origin = models.CharField(max_length=500, help_text="file path, or 'api'")
    # Who posted it (API); an ingest service token sees only its own jobs.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    format = models.CharField(max_length=20, default="auto")
    spool_path = models.CharField(max_length=500, blank=True, default="")
    read = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    events = models.IntegerField(default=0)
    shadow = models.IntegerField(default=0, help_text="mirrored answers stored (shadow lines)")

    def summary(self) -> dict:
        return {
            "read": self.read,
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "events": self.events,
            "shadow": self.shadow,
        }


class RejectedLine(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="rejected_lines")
    job = models.ForeignKey(IngestJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="rejects")
    origin = models.CharField(max_length=500)
    line_no = models.IntegerField()
    reason = models.TextField()
    # The raw line as far as it could be decoded (invalid bytes shown as \\xNN), capped.
    raw = models.TextField(blank=True, default="")
    raw_sha1 = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "origin", "line_no", "raw_sha1"], name="reject_source_origin_line_uniq"
            )
        ]
        ordering = ["origin", "line_no"]

    def __str__(self) -> str:
        return f"{self.origin}:{self.line_no}: {self.reason}"


class TurnSignals(models.Model):
    """What users and agents did after a turn's answer, and why each flag was set.

    Recomputed per session by signal detection; a late event re-dirties the session. The flags
    mean what ``signal_definitions`` says for ``definition_version`` (see its CHANGELOG).
    """

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, primary_key=True, related_name="signals")
    rephrased = models.BooleanField(default=False)
    followed_up = models.BooleanField(default=False)
    abandoned = models.BooleanField(default=False)
    session_ended = models.BooleanField(default=False)
    copied = models.BooleanField(default=False)
    thumbs_up = models.BooleanField(default=False)
    thumbs_down = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    human_override = models.BooleanField(default=False)
    failure_candidate = models.BooleanField(default=False, db_index=True)
    # P(the answer failed | its signals): orders failure candidates, strongest first.
    failure_probability = models.FloatField(default=0.0)
    # Rows written before versions existed were computed by the version-1 definitions.
    definition_version = models.PositiveSmallIntegerField(default=current_definition_version)
    corrected_response = models.TextField(blank=True, default="")
    evidence = models.JSONField(default=dict, blank=True)
    detected_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "turn signals"
        indexes = [
            # Candidates are a small share of turns: a partial index serves "strongest first".
            models.Index(fields=["-failure_probability", "turn"], condition=Q(failure_candidate=True),
                         name="signals_candidate_prob_idx"),
        ]

    def flags(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in SIGNAL_NAMES}


class TraceSpan(models.Model):
    """A span received over OTLP (or read from a trace export), kept so that a trace whose spans arrive
    in several requests becomes one turn: the trace is assembled again from all its spans whenever one
    arrives (production.services.traces). `payload` is the span as `production.traces` reads it."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="trace_spans")
    trace_id = models.CharField(max_length=64)
    span_id = models.CharField(max_length=64)
    parent_span_id = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            # The first copy of a span wins: an exporter's retry or the same trace sent twice adds nothing.
            models.UniqueConstraint(fields=["source", "trace_id", "span_id"], name="tracespan_source_trace_span_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}/{self.span_id}"


class PublishableKey(models.Model):
    """A key a web page carries in the open (evalgap-events.js): it can only add browser events (copy,
    thumbs, leaving the page) to turns of its one source, from the origins it lists, at a bounded
    rate. It reads nothing and is no user: DRF never authenticates it. Like a publishable payment
    key it is not a secret, so it is stored as is; a leaked one is revoked."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="publishable_keys")
    key = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True, default="")
    # Exact browser origins ("https://app.example.com", scheme://host[:port]); a request from any
    # other origin is refused.
    allowed_origins = models.JSONField(default=list)
    rate_per_minute = models.PositiveIntegerField(default=600)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name or self.key[:10]} ({self.source_id})"


class ErasureTombstone(models.Model):
    """That a subject (a production user id) was erased: when, by whom, how much. No raw identity: the
    subject is a keyed hash (core.pii.pseudonym, kind "subject"), and `user_pseudonyms` are the per-source
    pseudonyms test items and Label Studio knew the user by, so a frozen version can say how many of its
    items came from erased subjects."""

    subject_sha256 = models.CharField(max_length=64, unique=True)
    user_pseudonyms = models.JSONField(default=list, blank=True)
    erased_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    first_erased_at = models.DateTimeField(auto_now_add=True)
    last_erased_at = models.DateTimeField(auto_now=True)
    counts = models.JSONField(default=dict, blank=True, help_text="rows erased, summed over runs")

    def __str__(self) -> str:
        return f"erased subject {self.subject_sha256[:12]}"


class PrivacyAudit(models.Model):
    """One row per run of erase_subject or apply_retention (a re-run that changes nothing still gets one)."""

    class Action(models.TextChoices):
        ERASE_SUBJECT = "erase_subject"
        APPLY_RETENTION = "apply_retention"

    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.CharField(max_length=150, blank=True, default="", help_text="username; empty: the beat schedule")
    subject_sha256 = models.CharField(max_length=64, blank=True, default="")
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} at {self.created_at:%Y-%m-%d %H:%M}"


class FailureModelParameters(models.Model):
    """The parameters signal detection computes ``failure_probability`` with, handed over by the
    app that fits them on labels (evaluation's fit_failure_model; production never imports it).

    At most one row is active; with none, detection uses the stated event weights
    (SIGNALS_FAILURE_PROBABILITY) and the hand-set SIGNALS_REPHRASE_PRIOR.
    """

    version = models.PositiveIntegerField(unique=True)
    # {"intercept": b0, "features": {name: coefficient}} over services.failure_model.FEATURES
    coefficients = models.JSONField()
    # The re-ask base rate estimated from the labels, used instead of SIGNALS_REPHRASE_PRIOR.
    rephrase_prior = models.FloatField(null=True, blank=True)
    active = models.BooleanField(default=False, db_index=True)
    set_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "failure model parameters"

    def __str__(self) -> str:
        return f"failure model v{self.version}{' (active)' if self.active else ''}"
