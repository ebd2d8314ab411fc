from django.contrib import admin

from .models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Messages that could not be stored, kept whole with the reason, for an operator to look into.

    A dead letter belongs to no organisation (its topic may name a device nobody
    knows), so only superusers see them, whatever permissions a staff user holds.
    """

    list_display = ["received_at", "topic", "reason"]
    list_filter = ["received_at"]
    search_fields = ["topic", "reason"]
    readonly_fields = ["topic", "payload", "reason", "received_at", "created_at"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


# The admin's front page links to the ingest status page (telemetry/metrics_views.py).
admin.site.index_template = "admin/telemetry/index_with_ingest_status.html"
