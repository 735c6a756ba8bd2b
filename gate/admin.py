import json

from django.contrib import admin
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin

from .models import GateDecision


@admin.register(GateDecision)
class GateDecisionAdmin(ReadOnlyAdmin):
    """The audit trail: read-only (a decision is never edited; ask the gate again instead)."""

    list_display = ["id", "created_at", "candidate", "baseline", "decision", "requested_by", "via", "auth",
                    "policy_short"]
    list_filter = ["decision", "via", "candidate", "baseline"]
    search_fields = ["candidate__name", "baseline__name", "requested_by", "policy_sha256"]
    date_hierarchy = "created_at"
    fields = ["candidate", "baseline", "decision", "reasons_list", "requested_by", "via", "auth", "created_at",
              "policy_source", "policy_sha256", "policy_pretty", "evidence_pretty"]
    readonly_fields = fields

    @admin.display(description="policy")
    def policy_short(self, obj):
        return obj.policy_sha256[:12]

    @admin.display(description="reasons")
    def reasons_list(self, obj):
        return format_html("<ol>{}</ol>", format_html("".join("<li>{}</li>" for _ in obj.reasons), *obj.reasons))

    @admin.display(description="policy in force")
    def policy_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.policy, indent=2, sort_keys=True))

    @admin.display(description="evidence")
    def evidence_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.evidence, indent=2))
