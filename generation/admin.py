from django.contrib import admin, messages

from taxonomy.admin import FailureModeAdmin
from taxonomy.models import FailureMode

from .models import GeneratedCase, GenerationRun


class GeneratedCaseInline(admin.TabularInline):
    model = GeneratedCase
    extra = 0
    can_delete = False
    fields = ["position", "query", "reference_answer", "technique", "status", "duplicate_of", "review_reason"]
    readonly_fields = fields


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "failure_mode", "status", "offline", "model", "generated", "duplicates_dropped",
                    "attempts", "prompt_tokens", "completion_tokens", "cost_usd", "created_at"]
    list_filter = ["status", "offline", "failure_mode"]
    readonly_fields = [f.name for f in GenerationRun._meta.fields]
    inlines = [GeneratedCaseInline]

    def has_add_permission(self, request):
        return False


@admin.register(GeneratedCase)
class GeneratedCaseAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "query", "technique", "status", "review_reason"]
    list_filter = ["status", "technique", "run__failure_mode"]
    search_fields = ["query", "reference_answer"]
    readonly_fields = [f.name for f in GeneratedCase._meta.fields]

    def has_add_permission(self, request):
        return False


def _enqueue(modeladmin, request, queryset, offline: bool):
    from . import prompting  # here, not at import: it loads the OpenAI SDK (~1.5 s), and every process loads admin
    from .services import GenerationError
    from .tasks import generate_for_failure_mode

    if not offline and prompting.missing_settings():
        modeladmin.message_user(request, prompting.not_configured_message(), messages.ERROR)
        return
    started = []
    for mode in queryset:
        try:
            # Created here (errors shown at once), executed by the worker.
            run_id = generate_for_failure_mode.run(mode.code, offline=offline, user=request.user.username)
        except GenerationError as e:
            modeladmin.message_user(request, f"{mode.code}: {e}", messages.WARNING)
        else:
            started.append(f"{mode.code} (run {run_id})")
    if started:
        modeladmin.message_user(request, f"generation started: {', '.join(started)}", messages.SUCCESS)


@admin.action(description="Generate eval cases (LLM)")
def generate_cases(modeladmin, request, queryset):
    _enqueue(modeladmin, request, queryset, offline=False)


@admin.action(description="Generate eval cases (offline rules)")
def generate_cases_offline(modeladmin, request, queryset):
    _enqueue(modeladmin, request, queryset, offline=True)


class FailureModeWithGenerationAdmin(FailureModeAdmin):
    """The taxonomy's admin plus the generation actions (taxonomy knows nothing of generation)."""

    actions = [*(FailureModeAdmin.actions or []), generate_cases, generate_cases_offline]


if admin.site.is_registered(FailureMode):
    admin.site.unregister(FailureMode)
admin.site.register(FailureMode, FailureModeWithGenerationAdmin)
