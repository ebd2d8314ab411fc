"""The admin of device parameters: bulk changes with their progress, change sets, parameters and the
audit. Everything here is read-only (changes are asked for from the device list's "Change
parameters…" action, control/device_admin.py) and scoped to the user's organisations like every
other admin (assets.admin.TenantAdmin)."""

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from assets.admin import TenantAdmin

from .bulk import progress
from .device_admin import shown
from .models import BulkChange, ChangeSet, DeviceParameter, ParameterEvent

REFRESH_SECONDS = 5


class ReadOnlyTenantAdmin(TenantAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def change_sets_url(**filters) -> str:
    query = "&".join(f"{name}={value}" for name, value in filters.items())
    return reverse("admin:control_changeset_changelist") + f"?{query}"


@admin.register(BulkChange)
class BulkChangeAdmin(ReadOnlyTenantAdmin):
    change_form_template = "admin/control/bulkchange/change_form.html"
    list_display = ["__str__", "organisation", "state", "device_count", "open_change_sets", "created_by", "created_at", "finished_at"]
    list_filter = ["state"]
    list_select_related = ["organisation", "created_by"]
    fields = ["organisation", "values", "selection", "created_by", "created_at", "state", "finished_at", "progress_table"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            open_change_sets=Count("change_sets", filter=Q(change_sets__state__in=ChangeSet.OPEN))
        )

    @admin.display(description="devices")
    def device_count(self, bulk):
        return len(bulk.device_ids)

    @admin.display(description="waiting for an answer", ordering="open_change_sets")
    def open_change_sets(self, bulk):
        return bulk.open_change_sets

    @admin.display(description="progress")
    def progress_table(self, bulk):
        numbers = progress(bulk)
        done = f"done in {numbers['seconds']:.0f} s" if numbers["seconds"] is not None else "not done yet (this page refreshes itself)"
        rows = [
            ("devices chosen", numbers["devices"]),
            ("change sets made", f"{numbers['change_sets']} ({numbers['prepared']} devices prepared)"),
            *((f"change sets {state.replace('_', ' ')}", n) for state, n in numbers["by_state"].items() if n),
            ("answered by the device", numbers["answered"]),
            ("messages sent", numbers["messages_sent"]),
            ("devices skipped", numbers["skipped"]),
            ("done", f"{numbers['percent_done']} %, {done}"),
        ]
        skipped = sorted(bulk.skipped.items())
        return format_html(
            '<table>{}</table><p><a href="{}">The change sets</a></p>{}',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
            change_sets_url(bulk_change__id__exact=bulk.pk),
            format_html("<p>Skipped:</p><ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", skipped)) if skipped else "",
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.state != BulkChange.State.DONE:
            context["refresh_seconds"] = REFRESH_SECONDS
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(ChangeSet)
class ChangeSetAdmin(ReadOnlyTenantAdmin):
    list_display = ["__str__", "device", "version", "state", "reason", "messages_sent", "bulk_change", "created_by", "created_at"]
    list_filter = ["state", ("device", RelatedOnlyFieldListFilter), ("bulk_change", RelatedOnlyFieldListFilter)]
    list_select_related = ["device", "bulk_change", "created_by"]
    search_fields = ["device__identifier", "device__name"]
    readonly_fields = [
        "device", "version", "values", "state", "reason", "answer", "attempts", "delivery_round", "messages_sent",
        "last_sent_at", "answered_at", "superseded_by", "bulk_change", "created_by", "created_at",
    ]


@admin.register(DeviceParameter)
class DeviceParameterAdmin(ReadOnlyTenantAdmin):
    list_display = ["device", "key", "desired_value", "reported_value", "state", "reason", "change_set_version", "reported_at"]
    list_filter = ["state", ("device__site", RelatedOnlyFieldListFilter), ("device__device_model", RelatedOnlyFieldListFilter)]
    list_select_related = ["device", "change_set"]
    search_fields = ["device__identifier", "device__name", "key"]
    readonly_fields = ["device", "key", "desired", "reported", "state", "reason", "change_set", "desired_at", "reported_at"]

    @admin.display(description="desired")
    def desired_value(self, row):
        return shown(row.desired)

    @admin.display(description="reported")
    def reported_value(self, row):
        return shown(row.reported)

    @admin.display(description="change set", ordering="change_set__version")
    def change_set_version(self, row):
        return row.change_set.version if row.change_set else "—"


@admin.register(ParameterEvent)
class ParameterEventAdmin(ReadOnlyTenantAdmin):
    """The audit: who asked for what, when, and what the device answered."""

    list_display = ["at", "device", "key", "kind", "actor", "change", "device_answer", "note"]
    list_filter = ["kind", ("device", RelatedOnlyFieldListFilter)]
    list_select_related = ["device", "actor"]
    search_fields = ["device__identifier", "device__name", "key"]
    readonly_fields = ["at", "device", "key", "kind", "change_set", "actor", "change", "device_answer", "note"]
    fields = readonly_fields

    @admin.display(description="old → new")
    def change(self, event):
        if event.old_value is None and event.new_value is None:
            return ""
        return f"{shown(event.old_value)} → {shown(event.new_value)}"
