from django.contrib import admin

from .models import JudgeCalibration, JudgeRun, ShadowAudit, ShadowAuditItem, ShadowPair, ShadowRun, ShadowVerdict


@admin.register(ShadowRun)
class ShadowRunAdmin(admin.ModelAdmin):
    list_display = ["id", "release", "day", "status", "sampled", "answered", "failed", "not_sent", "cost_usd",
                    "budget_stopped", "created_at"]
    list_filter = ["status", "budget_stopped", "release"]
    readonly_fields = [f.name for f in ShadowRun._meta.fields]


class VerdictInline(admin.TabularInline):
    model = ShadowVerdict
    extra = 0
    fields = ["order", "judge_model", "prompt_version", "verdict", "winner", "rationale", "failure_modes_a",
              "failure_modes_b", "dropped_codes", "error"]
    readonly_fields = fields
    can_delete = False


@admin.register(ShadowPair)
class ShadowPairAdmin(admin.ModelAdmin):
    list_display = ["id", "release", "origin", "day", "turn", "outcome", "error"]
    list_filter = ["release", "origin", "outcome", ("day", admin.DateFieldListFilter)]
    search_fields = ["turn__external_id", "candidate_answer"]
    raw_id_fields = ["turn", "session", "run"]
    inlines = [VerdictInline]


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    list_display = ["id", "release", "judge_model", "prompt_version", "status", "judged", "candidate_wins",
                    "served_wins", "ties", "inconsistent", "failed", "cost_usd", "created_at"]
    list_filter = ["status", "judge_model"]


@admin.register(JudgeCalibration)
class JudgeCalibrationAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "judge_model", "prompt_version", "pairs", "cost_usd", "created_at"]


class AuditItemInline(admin.TabularInline):
    model = ShadowAuditItem
    extra = 0
    fields = ["pair", "candidate_side", "task_key"]
    readonly_fields = fields
    can_delete = False


@admin.register(ShadowAudit)
class ShadowAuditAdmin(admin.ModelAdmin):
    list_display = ["id", "month", "release", "sample_size", "pushed", "pushed_at", "error"]
    inlines = [AuditItemInline]
