"""The device admin's parameter parts: the sync summary column, the drift filter, the read-only
parameters section of the device page, and the "Change parameters…" action with its preview.

assets/admin.py's DeviceAdmin takes these in; the control models' own admins are in control/admin.py.
"""

import json
from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin import SimpleListFilter, helpers
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Exists, OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .bulk import preview, preview_summary, start
from .forms import ParameterChangeForm, describe
from .models import BulkChange, ChangeSet, DeviceParameter
from .overview import device_overview, model_configuration
from .selection import SelectionNotWritable, SelectionRefused, writable_selection

STATE_ORDER = list(DeviceParameter.State.values)
PREVIEW_DEVICES_NAMED = 20


def with_parameter_states(devices):
    """Each device with the states of its parameters, in the same query (the list shows a summary per row)."""
    states = (
        DeviceParameter.objects.filter(device=OuterRef("pk")).order_by().values("device")
        .annotate(states=ArrayAgg("state")).values("states")
    )
    return devices.annotate(parameter_states=Subquery(states))


def sync_summary(states) -> str:
    counts = Counter(states or [])
    return ", ".join(f"{counts[state]} {state.replace('_', ' ')}" for state in STATE_ORDER if counts[state])


class DriftFilter(SimpleListFilter):
    title = "parameters"
    parameter_name = "parameters"

    def lookups(self, request, model_admin):
        return [("drifted", "has drifted parameters"), ("on_their_way", "has changes on their way"),
                ("refused", "has refused or timed-out changes")]

    def queryset(self, request, queryset):
        states = {
            "drifted": [DeviceParameter.State.DRIFTED],
            "on_their_way": list(DeviceParameter.IN_FLIGHT),
            "refused": [DeviceParameter.State.REJECTED, DeviceParameter.State.TIMED_OUT],
        }.get(self.value())
        if states is None:
            return queryset
        return queryset.filter(Exists(DeviceParameter.objects.filter(device=OuterRef("pk"), state__in=states)))


def shown(value) -> str:
    return "—" if value is None else json.dumps(value)


def settable_definitions(devices) -> dict:
    """The parameters the devices' models let an operator set; a key defined by several models keeps the oldest model's definition."""
    definitions = {}
    for device_model in sorted({device.device_model for device in devices}, key=lambda model: model.pk):
        configuration = model_configuration(device_model)
        for key, definition in (configuration.parameters if configuration else {}).items():
            if definition.writable:
                definitions.setdefault(key, definition)
    return definitions


def preview_lines(rows) -> list[dict]:
    """The preview as the admin's table shows it: one line per device and parameter."""
    lines = []
    for row in rows:
        if row.refused:
            lines.append({"device": row.device, "refused": "; ".join(row.refused.values())})
        for change in row.changes:
            lines.append({
                "device": row.device, "key": change.key, "desired": shown(change.current_desired),
                "reported": shown(change.reported), "new": shown(change.new_value),
                "outcome": "sends" if change.needs_sending else "already set",
            })
    return lines


class DeviceParametersAdminMixin:
    """For a ModelAdmin of devices (a TenantAdmin): add "parameter_sync" to list_display, DriftFilter to
    list_filter, "parameter_table" to the read-only fields and "change_parameters" to the actions."""

    actions = ["change_parameters"]

    def get_queryset(self, request):
        return with_parameter_states(super().get_queryset(request))

    @admin.display(description="parameters")
    def parameter_sync(self, device):
        summary = sync_summary(device.parameter_states)
        if DeviceParameter.State.DRIFTED in (device.parameter_states or []):
            return format_html('<strong style="color: var(--error-fg)">⚠ {}</strong>', summary)
        return summary or "—"

    @admin.display(description="parameters")
    def parameter_table(self, device):
        if device is None or not device.pk:
            return "Shown once the device is saved."
        overview = device_overview(device)
        if not overview.parameters:
            return "The device model declares no parameters."
        lines = []
        for parameter in overview.parameters:
            row, definition = parameter.row, parameter.definition
            state = row.get_state_display() if row else "never set or reported"
            if row and row.reason:
                state = f"{state}: {row.reason}"
            lines.append((
                "color: var(--error-fg); font-weight: bold" if parameter.drifted else "", parameter.key,
                describe(definition) if definition else "not in the model's definitions",
                shown(row.desired if row else None), shown(row.reported if row else None),
                f"⚠ {state}" if parameter.drifted else state, self._change_set_link(row.change_set if row else None),
            ))
        versions = overview.versions
        numbering = (
            f"Change sets up to version {versions.last_version}; the device last said it has version "
            f"{versions.reported_version}." if versions else "No change set yet."
        )
        history = reverse("admin:control_parameterevent_changelist") + f"?device__id__exact={device.pk}"
        return format_html(
            '<p>{} <a href="{}">History of changes and answers</a></p><table><tr><th>parameter</th><th>rule</th>'
            "<th>desired</th><th>reported</th><th>state</th><th>change set</th></tr>{}</table>",
            numbering, history,
            format_html_join("", '<tr style="{}"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', lines),
        )

    def _change_set_link(self, change_set: ChangeSet | None):
        if change_set is None:
            return "—"
        url = reverse("admin:control_changeset_change", args=[change_set.pk])
        return format_html('<a href="{}">version {}</a>', url, change_set.version)

    def _bulk_change_url(self, request, bulk: BulkChange) -> str:
        if self.admin_site.get_model_admin(BulkChange).has_view_permission(request, bulk):
            return reverse("admin:control_bulkchange_change", args=[bulk.pk])
        return reverse("admin:assets_device_changelist")  # the message above names the bulk change

    @admin.action(description="Change parameters…", permissions=["change"])
    def change_parameters(self, request, queryset):
        """An intermediate page: the parameter and value, the preview, then the bulk change."""
        device_ids = list(queryset.values_list("pk", flat=True))
        try:
            organisation, selected = writable_selection(request.user, device_ids=device_ids)
        except (SelectionRefused, SelectionNotWritable) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        devices = list(selected)
        definitions = settable_definitions(devices)
        if not definitions:
            self.message_user(request, "The selected devices' models declare no parameter that can be set.", messages.ERROR)
            return None
        submitted = "_preview" in request.POST or "_confirm" in request.POST
        form = ParameterChangeForm(definitions, request.POST if submitted else None)
        lines = summary = None
        if submitted and form.is_valid():
            values = form.values()
            rows = preview(devices, values)
            summary = preview_summary(rows)
            if "_confirm" in request.POST and summary["to_send"]:
                selection = {"devices": sorted(device_ids), "admin_list_filters": dict(request.GET.items())}
                bulk = start(organisation, selected, values, selection, actor=request.user)
                self.message_user(request, f"Bulk change {bulk.pk} started for {len(devices)} devices.", messages.SUCCESS)
                return HttpResponseRedirect(self._bulk_change_url(request, bulk))
            lines = preview_lines(rows)
        context = {
            **self.admin_site.each_context(request),
            "title": "Change parameters",
            "subtitle": None,
            "opts": self.opts,
            "organisation": organisation,
            "devices": devices[:PREVIEW_DEVICES_NAMED],
            "more_devices": max(0, len(devices) - PREVIEW_DEVICES_NAMED),
            "device_count": len(devices),
            "form": form,
            "lines": lines,
            "summary": summary,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/control/change_parameters.html", context)
