from django.contrib import admin

from core.admin import ReadOnlyAdmin
from core.roles import REJECTED_LINES, has

from .models import (ErasureTombstone, Event, IngestJob, MirroredAnswer, PrivacyAudit, PublishableKey, RejectedLine,
                     Session, Source, Turn, TurnSignals)
from .signal_definitions import SIGNAL_NAMES


@admin.register(Source)


class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "redact_pii", "created_at"]
    list_editable = ["redact_pii"]


@admin.register(Session)


class SessionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "source", "first_seen", "last_seen", "dirty"]
    list_filter = ["source", ("first_seen", admin.DateFieldListFilter)]
    search_fields = ["external_id"]


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    fields = ["type", "timestamp", "actor", "corrected_response", "reason"]
    readonly_fields = fields
    can_delete = False


@admin.register(Turn)


class TurnAdmin(admin.ModelAdmin):
    list_display = ["external_id", "source", "session", "timestamp", "model", "short_query"]
    list_filter = ["source", "model", ("timestamp", admin.DateFieldListFilter)]
    search_fields = ["external_id", "session__external_id", "query"]
    list_select_related = ["source", "session"]
    raw_id_fields = ["session"]
    date_hierarchy = "timestamp"
    inlines = [EventInline]

    @admin.display(description="query")
    def short_query(self, obj):
        return obj.query[:80]


@admin.register(Event)


class EventAdmin(admin.ModelAdmin):
    list_display = ["type", "turn_external_id", "source", "timestamp", "actor", "turn"]
    list_filter = ["source", "type", ("timestamp", admin.DateFieldListFilter)]
    search_fields = ["turn_external_id"]
    raw_id_fields = ["turn"]


@admin.register(MirroredAnswer)


class MirroredAnswerAdmin(admin.ModelAdmin):
    list_display = ["release", "turn_external_id", "source", "latency_ms", "received_at", "turn"]
    list_filter = ["source", "release"]
    search_fields = ["turn_external_id", "release"]
    raw_id_fields = ["turn"]


@admin.register(RejectedLine)


class RejectedLineAdmin(admin.ModelAdmin):
    list_display = ["origin", "line_no", "reason", "source", "created_at"]
    list_filter = ["source", "origin"]
    search_fields = ["reason", "raw"]

    def has_module_permission(self, request):
        return has(request.user, REJECTED_LINES)  # raw input lines: whatever the source sent

    def has_view_permission(self, request, obj=None):
        return has(request.user, REJECTED_LINES)


@admin.register(IngestJob)


class IngestJobAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "origin", "status", "read", "created", "duplicates", "rejected", "events",
                    "shadow", "created_at"]
    list_filter = ["status", "source"]


@admin.register(TurnSignals)


class TurnSignalsAdmin(admin.ModelAdmin):
    """Failure candidates with evidence: filter on failure_candidate to list them."""

    list_display = ["turn", "failure_candidate", "failure_probability", *SIGNAL_NAMES, "definition_version",
                    "short_evidence"]
    list_filter = ["failure_candidate", *SIGNAL_NAMES, "definition_version", "turn__source", "turn__model"]
    ordering = ["-failure_probability"]
    search_fields = ["turn__external_id", "turn__query"]
    raw_id_fields = ["turn"]
    readonly_fields = ["detected_at"]

    @admin.display(description="evidence")
    def short_evidence(self, obj):
        return str(obj.evidence)[:160]


@admin.register(PublishableKey)


class PublishableKeyAdmin(admin.ModelAdmin):
    """Revoke a leaked key by setting revoked_at; create keys with `manage.py publishable_key_create`."""

    list_display = ["key", "name", "source", "rate_per_minute", "revoked_at", "created_at"]
    list_filter = ["source"]
    readonly_fields = ["key", "created_at"]


@admin.register(ErasureTombstone)


class ErasureTombstoneAdmin(ReadOnlyAdmin):
    list_display = ["subject_sha256", "first_erased_at", "last_erased_at", "erased_by", "counts"]
    search_fields = ["subject_sha256"]


@admin.register(PrivacyAudit)


class PrivacyAuditAdmin(ReadOnlyAdmin):
    list_display = ["action", "created_at", "actor", "subject_sha256", "counts"]
    list_filter = ["action"]
