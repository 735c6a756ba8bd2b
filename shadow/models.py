"""Shadow evaluation: a candidate release's answer to a real production turn, next to the answer
that was served, judged pairwise.

One model of a pair for both ways in: *mirror* (the gateway sent the candidate's answer in the
production log) and *replay* (evalgap asked the candidate itself). A pair is (served turn,
candidate release), once.
"""
from django.db import models

from core.jobs import Job
from production.models import Session, Turn
from releases.models import Release


class Outcome(models.TextChoices):
    """A pair's combined verdict over the two orders the judge saw it in."""

    CANDIDATE = "candidate_win"
    SERVED = "served_win"
    TIE = "tie"
    INCONSISTENT = "inconsistent"  # the two orders disagree: counts as a tie
    UNJUDGED = "unjudged"  # not judged (malformed output, a field over the judge's cap); the reason says why
    # Replay only: the candidate called a tool production never called with those arguments, so
    # there is no recorded result to give it. Not judged, not a loss; counted in the report.
    DIVERGED = "diverged"


# Outcome -> the candidate's score (1 win, 0 loss, 0.5 tie); unjudged pairs have none.
SCORES = {Outcome.CANDIDATE: 1.0, Outcome.SERVED: 0.0, Outcome.TIE: 0.5, Outcome.INCONSISTENT: 0.5}
JUDGED = tuple(SCORES)


class ShadowRun(Job):
    """One replay of a release on one day's sample of production turns."""

    task_name = "shadow.tasks.shadow_run_execute"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="shadow_runs")
    day = models.DateField(help_text="the production day whose turns are replayed")
    sample_size = models.PositiveIntegerField()
    salt = models.CharField(max_length=100)
    sampled = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Sampled turns not sent because the daily budget was reached.
    not_sent = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    budget_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    budget_stopped = models.BooleanField(default=False)
    budget_reason = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"shadow run {self.pk}: {self.release_id} on {self.day}"

    def summary(self) -> dict:
        """The `shadow_run --json` line: exactly these keys."""
        return {"release": self.release.name, "day": self.day.isoformat(), "sampled": self.sampled,
                "answered": self.answered, "failed": self.failed, "cost_usd": float(self.cost_usd)}


class ShadowPair(models.Model):
    class Origin(models.TextChoices):
        MIRROR = "mirror"
        REPLAY = "replay"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="shadow_pairs")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="shadow_pairs")
    origin = models.CharField(max_length=10, choices=Origin.choices)
    run = models.ForeignKey(ShadowRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs")
    # The production MirroredAnswer row it came from (mirror pairs); a plain id so that this app
    # does not need the row to live as long as the pair.
    mirrored_answer_id = models.BigIntegerField(null=True, blank=True)
    # Denormalised from the turn: the report groups by day and resamples whole conversations.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="shadow_pairs")
    day = models.DateField(db_index=True)
    candidate_answer = models.TextField(blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # The candidate could not answer (replay); such a pair is not judged, and a later replay retries it.
    error = models.TextField(blank=True, default="")
    # Empty until judged (or given up on). See Outcome.
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default="", db_index=True)
    outcome_reason = models.TextField(blank=True, default="")
    judged_at = models.DateTimeField(null=True, blank=True)
    # What the candidate was sent: "raw" (the served model's input, as production saw it) or
    # "redacted" (PII replaced: the release's data boundary is redacted); "" before it was asked.
    candidate_input = models.CharField(max_length=10, blank=True, default="")
    # Failure modes the judge flagged on each answer, in either order (codes of the taxonomy).
    candidate_failure_modes = models.JSONField(default=list, blank=True)
    served_failure_modes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["turn", "release"], name="shadowpair_turn_release_uniq")]
        indexes = [models.Index(fields=["release", "day"])]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"pair {self.pk}: {self.release_id} vs turn {self.turn_id}"

    @property
    def score(self) -> float | None:
        return SCORES.get(self.outcome)


class JudgeRun(Job):
    """One `shadow_judge` pass: which judge, what it cost, what it decided."""

    # A pass cut short (worker lost) is resumed by the sweeper: only the orders still missing are asked.
    task_name = "shadow.tasks.shadow_judge_execute"

    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.CASCADE, related_name="judge_runs")
    judge_model = models.CharField(max_length=255)
    prompt_version = models.CharField(max_length=100)
    pairs = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    candidate_wins = models.PositiveIntegerField(default=0)
    served_wins = models.PositiveIntegerField(default=0)
    ties = models.PositiveIntegerField(default=0)
    inconsistent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    dropped_codes = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        ordering = ["-id"]

    def summary(self) -> dict:
        """The `shadow_judge --json` line: exactly these keys."""
        return {"judged": self.judged, "candidate_wins": self.candidate_wins, "served_wins": self.served_wins,
                "ties": self.ties, "inconsistent": self.inconsistent, "failed": self.failed,
                "cost_usd": float(self.cost_usd)}


class ShadowVerdict(models.Model):
    """The judge's answer for one pair in one order."""

    class Order(models.TextChoices):
        CANDIDATE_FIRST = "candidate_first"  # A = candidate, B = served
        SERVED_FIRST = "served_first"  # A = served, B = candidate

    class Winner(models.TextChoices):
        CANDIDATE = "candidate"
        SERVED = "served"
        TIE = "tie"

    pair = models.ForeignKey(ShadowPair, on_delete=models.CASCADE, related_name="verdicts")
    run = models.ForeignKey(JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="verdicts")
    order = models.CharField(max_length=20, choices=Order.choices)
    judge_model = models.CharField(max_length=255)
    prompt_version = models.CharField(max_length=100)
    # The judge's last raw reply, whatever it was (the audit trail of a verdict).
    raw_answer = models.TextField(blank=True, default="")
    verdict = models.CharField(max_length=5, blank=True, default="", help_text='"A", "B" or "tie"; empty: none')
    winner = models.CharField(max_length=10, choices=Winner.choices, blank=True, default="")
    rationale = models.TextField(blank=True, default="")
    failure_modes_a = models.JSONField(default=list, blank=True)
    failure_modes_b = models.JSONField(default=list, blank=True)
    dropped_codes = models.PositiveIntegerField(default=0, help_text="codes outside the taxonomy, dropped")
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "order", "judge_model", "prompt_version"],
                                               name="shadowverdict_pair_order_judge_uniq")]
        ordering = ["pair_id", "order"]


class JudgeCalibration(models.Model):
    """One `judge_calibrate` run on a file of human pairwise preferences."""

    name = models.CharField(max_length=255, help_text="the file's name")
    sha256 = models.CharField(max_length=64)
    judge_model = models.CharField(max_length=255)
    prompt_version = models.CharField(max_length=100)
    pairs = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, help_text="core.stats.pairwise_calibration, with n and intervals")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class ShadowAudit(models.Model):
    """A monthly sample of judged pairs sent to people in Label Studio, to check the judge."""

    month = models.CharField(max_length=7, help_text="YYYY-MM whose judged pairs were sampled")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.CASCADE, related_name="audits")
    sample_size = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    project_title = models.CharField(max_length=200)
    pushed = models.PositiveIntegerField(default=0)
    pushed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class ShadowAuditItem(models.Model):
    audit = models.ForeignKey(ShadowAudit, on_delete=models.CASCADE, related_name="items")
    # A pair is audited once, ever.
    pair = models.OneToOneField(ShadowPair, on_delete=models.CASCADE, related_name="audit_item")
    # Which side the candidate's answer was shown on, drawn at random and kept: people's "a"/"b"
    # picks mean nothing without it.
    candidate_side = models.CharField(max_length=1, choices=[("a", "a"), ("b", "b")])
    # The key of the labelling.PairwiseTask that carries it.
    task_key = models.CharField(max_length=200, unique=True)
