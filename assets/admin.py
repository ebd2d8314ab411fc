from django.contrib import admin

from .models import Asset, Channel, Device, DeviceModel, Organisation, Site


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "timezone"]
    list_filter = ["organisation"]
    search_fields = ["name"]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["name", "asset_type", "parent", "site"]
    list_filter = ["site", "asset_type"]
    search_fields = ["name"]
    raw_id_fields = ["parent"]


@admin.register(DeviceModel)
class DeviceModelAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "manufacturer"]
    search_fields = ["name", "key", "manufacturer"]


class ChannelInline(admin.TabularInline):
    model = Channel
    extra = 0
    fields = ["key", "metric", "asset", "name", "last_reading"]
    readonly_fields = ["last_reading"]

    @admin.display(description="last reading")
    def last_reading(self, channel):
        reading = channel.readings.order_by("-time").first() if channel.pk else None
        if reading is None:
            return "—"
        return f"{reading.value:,.1f} {channel.unit} at {reading.time:%Y-%m-%d %H:%M %Z}"


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["identifier", "name", "site", "device_model"]
    list_filter = ["site", "device_model"]
    search_fields = ["identifier", "name"]
    inlines = [ChannelInline]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "device", "key", "metric", "asset"]
    list_filter = ["metric", "device__site"]
    search_fields = ["key", "name", "device__identifier"]
