from django.contrib import admin

from .models import Alarm, FailureModel, OfflineRun, OfflineScore


class OfflineScoreInline(admin.TabularInline):
    model = OfflineScore
    fields = ("key", "score", "verdict", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    max_num = 0


@admin.register(OfflineRun)
class OfflineRunAdmin(admin.ModelAdmin):
    list_display = ("id", "release", "version", "mode", "format", "status", "items", "failed", "score", "ci_low",
                    "ci_high", "cost_usd", "created_at")
    list_filter = ("mode", "status", "format")
    search_fields = ("release__name",)
    readonly_fields = [f.name for f in OfflineRun._meta.fields]
    inlines = [OfflineScoreInline]


@admin.register(OfflineScore)
class OfflineScoreAdmin(admin.ModelAdmin):
    list_display = ("run", "key", "score", "verdict", "error")
    list_filter = ("verdict",)
    search_fields = ("key",)
    readonly_fields = [f.name for f in OfflineScore._meta.fields]


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = ("raised_at", "kind", "release", "detail", "posted_at", "post_attempts", "post_error")
    list_filter = ("kind",)
    readonly_fields = [f.name for f in Alarm._meta.fields]


@admin.register(FailureModel)
class FailureModelAdmin(admin.ModelAdmin):
    """Read-only: fit_failure_model writes these (a new version per fit); the page shows the active one."""
    list_display = ("version", "fitted_at", "n_labelled", "rephrase_prior", "active")
    readonly_fields = [f.name for f in FailureModel._meta.fields]
