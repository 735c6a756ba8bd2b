import json

from django.contrib import admin
from django.utils.html import format_html

from .agreement import agreement_report
from .models import Annotation, BatchItem, LabellingBatch, LabelStudioProject, Resolution, TaskLink, WebhookDelivery


@admin.register(LabellingBatch)
class LabellingBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "month", "failures", "sampled", "skipped_duplicates", "status", "pushed_at"]
    list_filter = ["status", "month"]


@admin.register(BatchItem)
class BatchItemAdmin(admin.ModelAdmin):
    list_display = ["turn", "batch", "stratum", "inclusion_probability", "push_attempted_at"]
    list_filter = ["stratum", "batch"]
    raw_id_fields = ["turn", "batch"]
    search_fields = ["turn__external_id", "turn__query"]


@admin.register(LabelStudioProject)
class LabelStudioProjectAdmin(admin.ModelAdmin):
    list_display = ["title", "ls_project_id", "config_synced_at", "tasks_count", "annotations_count"]
    readonly_fields = ["agreement"]

    @admin.display(description="tasks")
    def tasks_count(self, obj):
        return obj.tasks.count()

    @admin.display(description="annotations")
    def annotations_count(self, obj):
        return obj.annotations.live().count()

    @admin.display(description="agreement (Krippendorff's alpha)")
    def agreement(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(agreement_report(project_id=obj.pk), indent=2))


@admin.register(TaskLink)
class TaskLinkAdmin(admin.ModelAdmin):
    list_display = ["item", "project", "ls_task_id", "pushed_at"]
    raw_id_fields = ["item"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["ls_annotation_id", "item", "annotator", "verdict", "failure_modes", "deleted", "invalid_reason"]
    list_filter = ["verdict", "deleted", "annotator", "project"]
    raw_id_fields = ["item"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "action", "received_at", "processed_at", "error"]
    list_filter = ["action"]


@admin.register(Resolution)
class ResolutionAdmin(admin.ModelAdmin):
    list_display = ["item", "verdict", "resolved_by", "resolved_at"]
    raw_id_fields = ["item"]
