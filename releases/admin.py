from django.contrib import admin

from .models import Release


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["name", "model", "prompt_version", "base_url", "shadow_enabled", "created_at"]
    list_filter = ["shadow_enabled"]
    search_fields = ["name", "model", "prompt_version"]
