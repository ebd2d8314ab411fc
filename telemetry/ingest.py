"""Store one batch of MQTT messages: decode, dead-letter what cannot be used, insert, roll up.

The whole batch is one transaction. The bridge acknowledges the messages to the
broker only after this returns, so a crash anywhere before the commit means the
broker delivers them again, and the (channel, time) key makes that harmless.
"""

import base64
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from assets.models import Channel, Device

from .decoders import DecodeError, decode, device_identifier
from .models import DeadLetter
from .rollup import lock_channels, recompute_counter_buckets
from .storage import insert_readings

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    messages: int = 0
    readings: int = 0
    dead_letters: int = 0

    def as_dict(self) -> dict:
        return {"messages": self.messages, "readings": self.readings, "dead_letters": self.dead_letters}


def message_payload(message: dict) -> str | bytes:
    if "payload_b64" in message:
        return base64.b64decode(message["payload_b64"])
    return message["payload"]


def _device_from_topic(topic: str, devices: dict[str, Device | None]) -> Device | None:
    """The one device whose model's patterns claim this topic with its identifier.

    Topics name the device in one segment; the model's pattern confirms which one.
    Registration refuses overlapping topics; should two devices still claim one
    topic, the message goes to no one (a dead letter) rather than to a guess.
    """
    matches = []
    for segment in topic.split("/"):
        if segment not in devices:
            devices[segment] = (
                Device.objects.select_related("device_model").prefetch_related("channels").filter(identifier=segment).first()
            )
        device = devices[segment]
        if device and device not in matches and device_identifier(topic, device.device_model.parameter_map) == device.identifier:
            matches.append(device)
    return matches[0] if len(matches) == 1 else None


def storable_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL, nor a lone surrogate (JSON can escape one, "\\ud800", and a reason
    quoting the value then holds it; it has no UTF-8 form): keep both visible as escapes instead of failing the batch."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def plausible_time_problem(time: datetime, received_at: datetime) -> str | None:
    """A reading far in the future or before the horizon is a device clock fault, not data."""
    if time > received_at + timedelta(seconds=settings.INGEST_MAX_FUTURE_S):
        return f"timestamp {time.isoformat()} is more than {settings.INGEST_MAX_FUTURE_S:.0f} s after the message arrived"
    if time < settings.INGEST_OLDEST:
        return f"timestamp {time.isoformat()} is before the horizon {settings.INGEST_OLDEST.isoformat()}"
    return None


def ingest_messages(messages: list[dict]) -> IngestResult:
    """`messages`: [{"topic": str, "payload": str (or "payload_b64"), "received_at": ISO 8601}].

    If the database refuses the batch because of what one message holds, the
    messages are stored one by one, and the one the database refuses becomes a
    dead letter with the database's reason: one bad message never blocks the rest.
    """
    try:
        return _ingest(messages)
    except (DataError, IntegrityError) as exc:
        if len(messages) == 1:
            log.warning("message on %s refused by the database: %s", messages[0].get("topic"), exc)
            return _dead_letter_alone(messages[0], f"refused by the database: {exc}")
        log.warning("batch of %d refused by the database (%s); storing its messages one by one", len(messages), exc)
        total = IngestResult(messages=len(messages))
        for message in messages:
            one = ingest_messages([message])
            total.readings += one.readings
            total.dead_letters += one.dead_letters
        return total


def _dead_letter_alone(message: dict, reason: str) -> IngestResult:
    DeadLetter.objects.create(
        topic=storable_text(message["topic"]),
        payload=storable_text(message.get("payload", message.get("payload_b64", ""))),
        reason=storable_text(reason),
        received_at=datetime.fromisoformat(message["received_at"]),
    )
    return IngestResult(messages=1, dead_letters=1)


def _ingest(messages: list[dict]) -> IngestResult:
    result = IngestResult(messages=len(messages))
    devices: dict[str, Device | None] = {}
    readings: dict[tuple[int, datetime], float] = {}
    dead_letters: list[DeadLetter] = []
    counter_channel_ids: set[int] = set()

    for message in messages:
        topic = message["topic"]
        received_at = datetime.fromisoformat(message["received_at"])

        def dead_letter(reason: str) -> None:
            raw = message.get("payload", message.get("payload_b64", ""))
            dead_letters.append(
                DeadLetter(topic=storable_text(topic), payload=storable_text(raw), reason=storable_text(reason), received_at=received_at)
            )

        device = _device_from_topic(topic, devices)
        if device is None:
            dead_letter("no single registered device claims this topic")
            continue
        try:
            decoded, problems = decode(topic, message_payload(message), device.device_model.parameter_map, received_at)
        except DecodeError as exc:
            dead_letter(str(exc))
            continue
        except Exception as exc:  # a decoder fault must not fail the valid messages of the batch
            log.exception("decoder failed on a message from %s", topic)
            dead_letter(f"decoder error: {type(exc).__name__}: {exc}")
            continue
        channels = {(c.key, c.metric): c.id for c in device.channels.all()}
        counter_channel_ids.update(c.id for c in device.channels.all() if c.metric == Channel.Metric.ENERGY)
        for item in decoded:
            channel_id = channels.get((item.channel_key, item.metric))
            if channel_id is None:
                problems.append(f"device {device.identifier} has no {item.metric} channel {item.channel_key!r}")
                continue
            time_problem = plausible_time_problem(item.time, received_at)
            if time_problem:
                problems.append(f"channel {item.channel_key!r}: {time_problem}")
                continue
            # One (channel, time) is one measurement: the first value stored stands, in a batch as across batches.
            readings.setdefault((channel_id, item.time), item.value)
        if problems:
            dead_letter("; ".join(problems))

    # Energy buckets come from counter channels; power readings are stored as they are.
    changed: dict[int, list[datetime]] = defaultdict(list)
    for (channel_id, time) in readings:
        if channel_id in counter_channel_ids:
            changed[channel_id].append(time)

    with transaction.atomic():
        lock_channels({channel_id for channel_id, _ in readings})
        insert_readings([(channel_id, time, value) for (channel_id, time), value in readings.items()])
        DeadLetter.objects.bulk_create(dead_letters)
        for channel_id, times in changed.items():
            recompute_counter_buckets(channel_id, min(times), max(times))

    result.readings = len(readings)
    result.dead_letters = len(dead_letters)
    return result
