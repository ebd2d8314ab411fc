"""Adopting a pending device: register it with a device model and a site, then ingest what it sent.

The identifier comes from the chosen device model's topic patterns read on the pending
device's topics (the guess only grouped the messages). Channels may be created from what the
kept payloads decode to under that model's map. Everything happens in one transaction: the
device, its channels, the replay of every kept message it now claims, and their removal from
the pending store; a failure anywhere leaves the pending device as it was.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from assets.models import Channel, Device, DeviceModel, Site

from .decoders import DecodeError, decode, device_identifier
from .models import PendingDevice
from .raw_messages import message_from_stored, message_payload
from .replay import UnclaimedReplay, replay_claimed_messages


def adoption_identifier(pending: PendingDevice, device_model: DeviceModel) -> str:
    """The identifier the device has under this model, read from its last topic; ValidationError if none."""
    if pending.is_overflow:
        raise ValidationError("The overflow entry counts messages of many unknown devices; it cannot be adopted.")
    identifier = device_identifier(pending.last_topic, device_model.parameter_map)
    if identifier is None:
        raise ValidationError(
            f"The topic {pending.last_topic[:200]!r} matches none of the topic patterns of {device_model}; "
            "choose another device model, or add the pattern to this one."
        )
    return identifier


@dataclass
class ChannelsFound:
    channels: list[tuple[str, str]] = field(default_factory=list)  # (key, metric), sorted
    messages_decoded: int = 0
    messages_not_decoded: int = 0


def channels_found(pending: PendingDevice, device_model: DeviceModel, identifier: str) -> ChannelsFound:
    """The (key, metric) of every channel the kept payloads this device sends decode to under the model's map."""
    found = ChannelsFound()
    keys: set[tuple[str, str]] = set()
    kept = [message_from_stored(m.topic, m.payload, m.payload_is_base64, m.received_at) for m in pending.messages.all()]
    # The last payload too: it may hold channels the kept (first) messages did not (Shelly sends only changes).
    kept.append(message_from_stored(pending.last_topic, pending.last_payload, pending.last_payload_is_base64, pending.last_seen))
    for message in kept:
        if device_identifier(message["topic"], device_model.parameter_map) != identifier:
            continue
        try:
            received_at = datetime.fromisoformat(message["received_at"])
            readings, _ = decode(message["topic"], message_payload(message), device_model.parameter_map, received_at)
        except DecodeError:
            found.messages_not_decoded += 1
            continue
        found.messages_decoded += 1
        keys.update((reading.channel_key, reading.metric) for reading in readings)
    found.channels = sorted(keys)
    return found


@dataclass
class Adoption:
    device: Device
    channels_created: list[Channel]
    replay: UnclaimedReplay
    dropped_before: int  # messages that had been counted but not kept (over the per-device limit)


def adopt(pending: PendingDevice, device_model: DeviceModel, site: Site, name: str = "", create_channels: bool = True) -> Adoption:
    """Register the pending device and ingest its kept messages. Raises ValidationError, changing nothing, if it cannot."""
    identifier = adoption_identifier(pending, device_model)
    with transaction.atomic():
        # Locked before anything is decided: a batch adding to it waits until the adoption is committed.
        try:
            pending = PendingDevice.objects.select_for_update().get(pk=pending.pk)
        except PendingDevice.DoesNotExist:  # adopted by someone else while this request waited for the lock
            raise ValidationError("This pending device was adopted or removed meanwhile; nothing was changed.") from None
        device = Device(site=site, device_model=device_model, identifier=identifier, name=name)
        device.full_clean()
        device.save()
        created = []
        if create_channels:
            for key, metric in channels_found(pending, device_model, identifier).channels:
                channel = Channel(device=device, key=key, metric=metric)
                channel.full_clean()
                channel.save()
                created.append(channel)
        # Other pending entries this device's topics now claim (a topic grouped alone because no
        # pattern matched it before) are replayed too: their last topic shows whether it claims them.
        others = [
            other.pk for other in PendingDevice.objects.exclude(pk=pending.pk).exclude(key=PendingDevice.OVERFLOW_KEY)
            if device_identifier(other.last_topic, device_model.parameter_map) == identifier
        ]
        replay = replay_claimed_messages([pending.pk, *others])
    return Adoption(device, created, replay, pending.dropped_count)
