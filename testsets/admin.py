from django.contrib import admin, messages

from .models import PromotionHold, TestItem, TestSet, TestSetVersion
from .selectors import TestSetError
from .services.promotion import testset_promote
from .services.versions import testset_freeze


@admin.register(TestSet)
class TestSetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    actions = ["promote", "freeze"]

    @admin.action(description="Promote judged items into the draft")
    def promote(self, request, queryset):
        for testset in queryset:
            result = testset_promote(name=testset.name)
            self.message_user(request, f"{testset.name}: promoted {result['promoted']}, held back "
                                       f"{result['held_back']}")

    @admin.action(description="Freeze the draft as the next version")
    def freeze(self, request, queryset):
        for testset in queryset:
            try:
                v = testset_freeze(name=testset.name, note="frozen in the admin", user=request.user)
                self.message_user(request, f"{testset.name} v{v.number}: {v.item_count} items, sha256 {v.sha256}")
            except TestSetError as e:
                self.message_user(request, str(e), level=messages.ERROR)


@admin.register(TestSetVersion)
class TestSetVersionAdmin(admin.ModelAdmin):
    list_display = ["testset", "number", "status", "item_count", "sha256", "frozen_at"]
    list_filter = ["testset", "status"]
    readonly_fields = ["testset", "number", "status", "sha256", "item_count", "frozen_at", "frozen_by"]

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.status != TestSetVersion.Status.FROZEN


@admin.register(TestItem)
class TestItemAdmin(admin.ModelAdmin):
    list_display = ["key", "version", "source", "verdict", "stratum"]
    list_filter = ["version__testset", "version", "verdict", "source", "stratum"]
    search_fields = ["key", "query"]

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.version.status != TestSetVersion.Status.FROZEN


@admin.register(PromotionHold)
class PromotionHoldAdmin(admin.ModelAdmin):
    list_display = ["item", "reason", "checked_at"]
    search_fields = ["reason"]

