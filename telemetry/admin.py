from django.contrib import admin

from .models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Messages that could not be stored, kept whole with the reason, for an operator to look into."""

    list_display = ["received_at", "topic", "reason"]
    list_filter = ["received_at"]
    search_fields = ["topic", "reason"]
    readonly_fields = ["topic", "payload", "reason", "received_at", "created_at"]

    def has_add_permission(self, request):
        return False
