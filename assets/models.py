"""The things we measure: tenants, their sites, the asset tree, and the devices and channels on it."""

import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone(name: str) -> None:
    if name not in zoneinfo.available_timezones():
        raise ValidationError(f"{name!r} is not an IANA time zone name (for example Europe/Berlin).")


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)

    def __str__(self):
        return self.name


class Site(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    # Local hours, days and months of every figure of this site are cut in this zone.
    timezone = models.CharField(max_length=64, validators=[validate_timezone], help_text="IANA name, e.g. Europe/Berlin")

    class Meta:
        unique_together = [("organisation", "name")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        validate_timezone(self.timezone)
        super().save(*args, **kwargs)


class Asset(models.Model):
    """A node of a site's tree: building, panel, circuit, load..."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="assets")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=64, help_text="building, panel, circuit, load, ...")

    def __str__(self):
        return self.name

    def clean(self):
        if self.parent_id and self.parent.site_id != self.site_id:
            raise ValidationError({"parent": "The parent belongs to another site."})


class DeviceModel(models.Model):
    """A kind of device, and how to read its payloads.

    `parameter_map` tells the decoder where each value sits in a payload and in
    which unit it comes; see telemetry/decoders.py for the format.
    """

    key = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    manufacturer = models.CharField(max_length=200, blank=True)
    parameter_map = models.JSONField(default=dict)

    def __str__(self):
        return self.name

    def clean(self):
        from telemetry.decoders import ParameterMapError, validate_parameter_map

        try:
            validate_parameter_map(self.parameter_map)
        except ParameterMapError as exc:
            raise ValidationError({"parameter_map": str(exc)}) from exc


class Device(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="devices")
    device_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="devices")
    # The identity the device uses in its MQTT topics.
    identifier = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200, blank=True)

    def __str__(self):
        return self.name or self.identifier


class Channel(models.Model):
    """One measured quantity of one asset, as one device reports it."""

    class Metric(models.TextChoices):
        ENERGY = "energy", "Energy, cumulative counter (Wh)"
        POWER = "power", "Active power (W)"

    BASE_UNITS = {Metric.ENERGY: "Wh", Metric.POWER: "W"}

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="channels")
    key = models.CharField(max_length=128, help_text="The channel's name in the device's payload")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.SET_NULL, related_name="channels")
    name = models.CharField(max_length=200, blank=True)

    class Meta:
        unique_together = [("device", "key", "metric")]

    def __str__(self):
        return self.name or f"{self.device} {self.key} {self.metric}"

    @property
    def unit(self) -> str:
        """Stored values are always in this base unit; decoders convert on the way in."""
        return self.BASE_UNITS[self.metric]
