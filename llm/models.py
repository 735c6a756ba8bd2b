"""The spend ledger: every request to an LLM, whoever asks, reserved before it is sent and settled
with the usage the server reported (llm/ledger.py)."""
from django.db import models


class Purpose(models.TextChoices):
    REPLAY = "replay"  # candidate releases answering production queries (shadow replay, the proxy)
    JUDGE = "judge"  # the pairwise shadow judge
    GRADER = "grader"  # offline runs: the candidate's answers and their grading
    GENERATION = "generation"  # targeted case generation
    CALIBRATION = "calibration"  # the judge's calibration against human picks
    AUDIT = "audit"  # the judge audit's LLM work


class SpendDay(models.Model):
    """One purpose's spend on one UTC day: the row every reservation of that day updates (and so
    locks), which is what makes the cap hold across processes."""

    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    day = models.DateField()
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    spent_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["purpose", "day"], name="llm_spendday_purpose_day_uniq")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.day}: ${self.spent_usd} (+${self.reserved_usd} reserved)"


class SpendEntry(models.Model):
    """One request (its transient retries included): reserved at its worst case, then settled."""

    class Status(models.TextChoices):
        RESERVED = "reserved"  # sent or about to be; a holder killed here leaves it reserved (counted)
        SETTLED = "settled"  # the server answered: cost_usd from the usage it reported
        RELEASED = "released"  # refused by the server (no answer, nothing billed): the reservation freed
        UNKNOWN = "unknown"  # no answer came back (timeout, dropped connection): counted at its worst case

    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    day = models.DateField()
    job = models.CharField(max_length=120, blank=True, default="", db_index=True,
                           help_text="the job that asked, 'app.Model:pk' (its cost is the sum of its entries)")
    key = models.CharField(max_length=300, null=True, blank=True,
                           help_text="what was asked, when asking it twice must not happen (a replayed turn)")
    model = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=6)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # A key is asked once: while a request under it is in flight (or its holder died in it) or
        # answered. One refused, or lost without an answer, may be asked again.
        constraints = [models.UniqueConstraint(fields=["purpose", "key"], name="llm_spendentry_purpose_key_uniq",
                                               condition=models.Q(key__isnull=False,
                                                                  status__in=["reserved", "settled"]))]
        indexes = [models.Index(fields=["purpose", "day"])]
