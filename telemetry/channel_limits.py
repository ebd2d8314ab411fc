"""When a channel's energy limits change, its buckets, days and flags are rebuilt with the new ones.

The limits (plausible maximum power, maximum gap) decide which readings count, so energy kept
under the old ones would no longer be what the readings say. The rebuild runs in the worker
once the change is committed: a year of minute readings takes seconds, too long for a request.
"""

from django.db import transaction
from django.db.models.signals import post_save, pre_save

from assets.models import Channel

LIMIT_FIELDS = ("max_power_w", "max_gap_s", "metric")


def _note_changed_limits(sender, instance: Channel, **kwargs):
    instance._energy_limits_changed = False
    if instance.pk is None:
        return
    before = Channel.objects.filter(pk=instance.pk).values(*LIMIT_FIELDS).first()
    instance._energy_limits_changed = before is not None and any(before[f] != getattr(instance, f) for f in LIMIT_FIELDS)


def _rebuild_after_commit(sender, instance: Channel, created: bool, **kwargs):
    if getattr(instance, "_energy_limits_changed", False):
        from .tasks import rebuild_channel_energy

        channel_id = instance.pk
        transaction.on_commit(lambda: rebuild_channel_energy.delay(channel_id))


def connect() -> None:
    pre_save.connect(_note_changed_limits, sender=Channel, dispatch_uid="telemetry.channel_limits.note")
    post_save.connect(_rebuild_after_commit, sender=Channel, dispatch_uid="telemetry.channel_limits.rebuild")
