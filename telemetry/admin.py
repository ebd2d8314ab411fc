"""Dead letters and pending devices: messages that are not (yet) readings, for an operator to act on.

Neither belongs to an organisation (a topic may name a device nobody knows, and its payload
may be anyone's), so only superusers see them, whatever permissions a staff user holds.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from assets.models import Device

from .adoption import adopt, channels_found
from .forms import AdoptPendingDeviceForm
from .models import DeadLetter, PendingDevice
from .replay import replay_claimed_messages, replay_dead_letters


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """Seen and handled by superusers only; rows come from ingest, never from the add form."""

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


@admin.register(DeadLetter)
class DeadLetterAdmin(SuperuserOnlyAdmin):
    """Messages that could not be stored, kept whole with the reason; replayed once the cause is fixed."""

    list_display = ["received_at", "topic", "reason", "replay_count"]
    list_filter = ["received_at", "payload_truncated"]
    search_fields = ["topic", "reason"]
    readonly_fields = ["topic", "payload", "payload_is_base64", "payload_truncated", "reason", "received_at", "created_at",
                       "replay_count", "replayed_at"]
    actions = ["replay_selected"]

    @admin.action(description="Replay selected (after fixing the cause)")
    def replay_selected(self, request, queryset):
        outcome = replay_dead_letters(queryset)
        level = messages.SUCCESS if not (outcome.failed_again or outcome.not_replayable) else messages.WARNING
        self.message_user(request, f"Replayed: {outcome.summary()}.", level)


@admin.register(PendingDevice)
class PendingDeviceAdmin(SuperuserOnlyAdmin):
    """Devices that publish but nobody registered: adopt one with a device model to ingest what it sent."""

    list_display = ["__str__", "last_seen", "first_seen", "message_count", "kept", "dropped_count", "last_topic", "hint",
                    "registered", "adopt_link"]
    search_fields = ["identifier", "last_topic"]
    readonly_fields = ["key", "identifier", "first_seen", "last_seen", "message_count", "kept", "dropped_count", "last_topic",
                       "last_payload", "last_payload_is_base64", "hint", "registered", "adopt_link"]
    fields = readonly_fields
    actions = ["replay_into_registered", "delete_selected"]

    def get_queryset(self, request):
        # A pending device can have a registered namesake: registered by hand, or messages that
        # arrived while it was adopted. "Replay into registered devices" then takes its messages.
        registered = Exists(Device.objects.filter(identifier=OuterRef("identifier")))
        return super().get_queryset(request).annotate(kept_count=Count("messages"), registered_now=registered)

    @admin.display(description="registered now", boolean=True, ordering="registered_now")
    def registered(self, obj):
        return obj.registered_now

    @admin.display(description="kept", ordering="kept_count")
    def kept(self, obj):
        return obj.kept_count

    @admin.display(description="topic patterns that match")
    def hint(self, obj):
        return "; ".join(f"{m['model']} → {m['identifier']}" for m in obj.matching_models) or "none"

    @admin.display(description="")
    def adopt_link(self, obj):
        if obj.pk is None or obj.is_overflow:
            return "—"
        return format_html('<a href="{}">Adopt…</a>', reverse("admin:telemetry_pendingdevice_adopt", args=[obj.pk]))

    def get_urls(self):
        adopt_url = path("<int:pk>/adopt/", self.admin_site.admin_view(self.adopt_view), name="telemetry_pendingdevice_adopt")
        return [adopt_url, *super().get_urls()]

    @admin.action(description="Replay into registered devices (devices registered since)")
    def replay_into_registered(self, request, queryset):
        outcome = replay_claimed_messages(queryset.values_list("pk", flat=True))
        self.message_user(request, (
            f"{outcome.messages} messages ingested ({outcome.readings} readings, {outcome.dead_letters} dead letters); "
            f"{outcome.left_pending} still claimed by no registered device; "
            f"{len(outcome.pending_devices_removed)} pending devices done and removed."
        ), messages.SUCCESS if outcome.messages else messages.WARNING)

    def adopt_view(self, request, pk):
        if not self.has_change_permission(request):
            raise PermissionDenied
        pending = PendingDevice.objects.filter(pk=pk).first()
        if pending is None or pending.is_overflow:
            raise Http404("No pending device with this id.")
        form = AdoptPendingDeviceForm(request.POST or None, pending=pending, user=request.user)
        preview = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if "_preview" in request.POST:
                preview = channels_found(pending, data["device_model"], data["identifier"])
            else:
                try:
                    adoption = adopt(pending, data["device_model"], data["site"], data["name"], data["create_channels"])
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    replay = adoption.replay
                    dropped = f"; {adoption.dropped_before} messages had been counted but not kept (over the limit)" if adoption.dropped_before else ""
                    self.message_user(request, (
                        f"Device {adoption.device.identifier} registered with {len(adoption.channels_created)} new channels; "
                        f"{replay.messages} kept messages ingested: {replay.readings} readings, "
                        f"{replay.dead_letters} dead letters{dropped}; {replay.left_pending} kept messages "
                        "on topics this device does not receive stay pending."
                    ), messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:assets_device_change", args=[adoption.device.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adopt pending device {pending}",
            "subtitle": None,
            "opts": self.opts,
            "pending": pending,
            "form": form,
            "preview": preview,
            "kept_count": pending.messages.count(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/telemetry/pendingdevice/adopt.html", context)
# The admin's front page links to the ingest status page (telemetry/metrics_views.py).
admin.site.index_template = "admin/telemetry/index_with_ingest_status.html"
