"""Every decision the release gate made: what was asked, by whom, under which policy, on what
evidence, and the answer. Rows are only ever added (the audit trail); nothing edits them."""
from django.db import models

from releases.models import Release


class Decision(models.TextChoices):
    SHIP = "ship"
    BLOCK = "block"
    INSUFFICIENT = "insufficient_evidence"


# The command's exit code per decision (2 is for usage errors: unknown release, missing test set).
EXIT_CODES = {Decision.SHIP: 0, Decision.BLOCK: 1, Decision.INSUFFICIENT: 3}


class GateDecision(models.Model):
    class Via(models.TextChoices):
        CLI = "cli"
        API = "api"
        WEB = "web"

    candidate = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="gate_decisions")
    baseline = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="gate_decisions_as_baseline")
    decision = models.CharField(max_length=30, choices=Decision.choices, db_index=True)
    reasons = models.JSONField(default=list)
    # What the decision rests on, as it stood then (offline, shadow, ab, critical_modes).
    evidence = models.JSONField(default=dict)
    # The policy in force, whole, and the sha256 of its canonical JSON; where it came from.
    policy = models.JSONField(default=dict)
    policy_sha256 = models.CharField(max_length=64, db_index=True)
    policy_source = models.CharField(max_length=600, help_text='"settings", "file:<path>" or "request"')
    # Who or what asked: a user (signed in, or by API token) or the command (the OS user).
    requested_by = models.CharField(max_length=150)
    via = models.CharField(max_length=10, choices=Via.choices)
    auth = models.CharField(max_length=20, blank=True, default="", help_text="token, session or os-user")
    # Asked about a past day (release_gate --as-of): the evidence as it stood at the end of that day.
    as_of = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["candidate", "-created_at"])]
        permissions = [("ask_gate", "Can ask the release gate for a decision (records it)")]

    def __str__(self) -> str:
        return f"gate {self.pk}: {self.candidate_id} vs {self.baseline_id}: {self.decision}"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def as_json(self) -> dict:
        """Exactly the keys `release_gate --json` prints."""
        return {"decision": self.decision, "reasons": list(self.reasons), "evidence": self.evidence}
