from django.contrib import admin

from . import services
from .models import FailureMode


@admin.register(FailureMode)
class FailureModeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "parent", "active", "critical", "updated_at"]
    list_filter = ["active", "critical", "parent"]
    search_fields = ["code", "name", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj else []

    def save_model(self, request, obj, form, change):
        # Through the services: every edit is audited, versioned and reaches Label Studio.
        if change:
            services.failure_mode_update(mode=obj, user=request.user, reason="edited in the admin",
                                         **{f: form.cleaned_data[f] for f in form.changed_data})
        else:
            services.failure_mode_create(code=obj.code, name=obj.name, description=obj.description,
                                         parent_code=obj.parent.code if obj.parent else None, user=request.user,
                                         reason="created in the admin")
            if obj.critical:
                services.failure_mode_set_critical(code=obj.code, critical=True, user=request.user,
                                                   reason="created as critical in the admin")

    def delete_model(self, request, obj):
        services.failure_mode_retire(code=obj.code, user=request.user, reason="deleted in the admin")

    def has_delete_permission(self, request, obj=None):
        return False
