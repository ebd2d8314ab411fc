"""Keep stored energy right when what it was computed with changes.

- A site's new timezone, or a device moved to another site, puts the same buckets in other local
  days: the channels' day rows are rebuilt in the transaction of the save (telemetry/energy_days.py).
- A channel's new limits (plausible maximum power, maximum gap) or metric, or its device model's new
  parameter map (a sampling rule, a rollover width), decide which readings count: the buckets, days
  and flags are rebuilt by the worker, a task a channel, once the change is committed (a year of
  minute readings takes seconds, too long for a request).
The previous value is read before the save, since the instance alone cannot tell what it was.
"""

from django.db import transaction
from django.db.models.signals import post_save, pre_save

from assets.models import Channel, Device, DeviceModel, Site

from .energy_days import rebuild_energy_days


def remember_site_timezone(sender, instance: Site, **kwargs):
    instance._timezone_before_save = (
        Site.objects.filter(pk=instance.pk).values_list("timezone", flat=True).first() if instance.pk else None
    )


def rebuild_days_of_site(sender, instance: Site, created: bool, **kwargs):
    if not created and getattr(instance, "_timezone_before_save", instance.timezone) != instance.timezone:
        rebuild_energy_days(Channel.objects.filter(device__site=instance).values_list("id", flat=True))


def remember_device_site(sender, instance: Device, **kwargs):
    instance._site_before_save = Device.objects.filter(pk=instance.pk).values_list("site_id", flat=True).first() if instance.pk else None


def rebuild_days_of_device(sender, instance: Device, created: bool, **kwargs):
    if not created and getattr(instance, "_site_before_save", instance.site_id) != instance.site_id:
        rebuild_energy_days(Channel.objects.filter(device=instance).values_list("id", flat=True))


CHANNEL_ENERGY_FIELDS = ("max_power_w", "max_gap_s", "metric")


def remember_channel_limits(sender, instance: Channel, **kwargs):
    instance._limits_before_save = (
        Channel.objects.filter(pk=instance.pk).values(*CHANNEL_ENERGY_FIELDS).first() if instance.pk else None
    )


def rebuild_energy_of_channel(sender, instance: Channel, created: bool, **kwargs):
    before = getattr(instance, "_limits_before_save", None)
    if before is not None and any(before[name] != getattr(instance, name) for name in CHANNEL_ENERGY_FIELDS):
        queue_rebuilds([instance.pk])


def queue_rebuilds(channel_ids) -> None:
    from .tasks import rebuild_channel_energy

    channel_ids = list(channel_ids)
    transaction.on_commit(lambda: [rebuild_channel_energy.delay(channel_id) for channel_id in channel_ids])


def remember_parameter_map(sender, instance: DeviceModel, **kwargs):
    instance._map_before_save = (
        DeviceModel.objects.filter(pk=instance.pk).values_list("parameter_map", flat=True).first() if instance.pk else None
    )


def rebuild_energy_of_model(sender, instance: DeviceModel, created: bool, **kwargs):
    before = getattr(instance, "_map_before_save", None)
    if before is not None and before != instance.parameter_map:
        from .channel_rules import ENERGY_METRICS

        queue_rebuilds(Channel.objects.filter(device__device_model=instance, metric__in=ENERGY_METRICS).values_list("id", flat=True))


def connect() -> None:
    pre_save.connect(remember_site_timezone, sender=Site, dispatch_uid="energy-days-site-before")
    post_save.connect(rebuild_days_of_site, sender=Site, dispatch_uid="energy-days-site-after")
    pre_save.connect(remember_device_site, sender=Device, dispatch_uid="energy-days-device-before")
    post_save.connect(rebuild_days_of_device, sender=Device, dispatch_uid="energy-days-device-after")
    pre_save.connect(remember_channel_limits, sender=Channel, dispatch_uid="energy-channel-before")
    post_save.connect(rebuild_energy_of_channel, sender=Channel, dispatch_uid="energy-channel-after")
    pre_save.connect(remember_parameter_map, sender=DeviceModel, dispatch_uid="energy-model-before")
    post_save.connect(rebuild_energy_of_model, sender=DeviceModel, dispatch_uid="energy-model-after")
