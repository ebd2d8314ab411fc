"""Store one batch of MQTT messages: decode, dead-letter what cannot be used, insert, roll up.

The whole batch is one transaction. The bridge acknowledges the messages to the
broker only after this returns, so a crash anywhere before the commit means the
broker delivers them again, and the (channel, time) key makes that harmless.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from assets.models import Channel, Device

from .decoders import DecodeError, compile_map, decode, decode_status, device_identifier
from .device_status import DeviceActivity
from .channel_rules import ENERGY_METRICS, rules_for
from .energy import Rules, Sample
from .formats.map_spec import MapSpec
from .models import DeadLetter
from .partitions import ensure_partitions_for
from .pending import keep_unclaimed
from .raw_messages import message_payload, payload_size, stored_payload
from .redelivery import stored_earlier
from .rollup import lock_channels, plan_roll_up, roll_up_batch
from .storage import insert_readings

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    messages: int = 0
    readings: int = 0  # valid readings in the messages
    new_readings: int = 0  # of those, stored now: the rest were stored before (a redelivery)
    dead_letters: int = 0
    pending: int = 0  # messages no registered device claims, kept for adoption (telemetry/pending.py)
    # Per message with readings, its newest measurement time: how fresh the data is when committed.
    measured_at: list[datetime] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "readings": self.readings,
            "new_readings": self.new_readings,
            "dead_letters": self.dead_letters,
            "pending": self.pending,
        }


@dataclass
class DeviceChannels:
    ids: dict[tuple[str, str], int]  # (key, metric) -> channel id
    # The channels whose readings make energy buckets (counters and power): their own limits.
    limits: dict[int, tuple[str, float | None, float | None]]  # id -> (metric, max_power_w, max_gap_s)


def devices_named_in(topics) -> dict[str, Device]:
    """The registered devices whose identifier is a segment of one of the topics: one query per batch."""
    segments = {segment for topic in topics for segment in topic.split("/") if segment}
    return {device.identifier: device for device in Device.objects.select_related("device_model").filter(identifier__in=segments)}


def channels_of(devices) -> dict[int, DeviceChannels]:
    """By device id; plain tuples, not model instances: a batch may touch thousands of channels."""
    found = {device.id: DeviceChannels({}, {}) for device in devices}
    rows = Channel.objects.filter(device_id__in=found).values_list("device_id", "key", "metric", "id", "max_power_w", "max_gap_s")
    for device_id, key, metric, channel_id, max_power_w, max_gap_s in rows:
        found[device_id].ids[(key, metric)] = channel_id
        if metric in ENERGY_METRICS:
            found[device_id].limits[channel_id] = (metric, max_power_w, max_gap_s)
    return found


def device_claiming(topic: str, devices: dict[str, Device]) -> Device | None:
    """The one device whose model's patterns claim this topic with its identifier.

    `devices`: from `devices_named_in` for this topic (or a batch holding it).
    Topics name the device in one segment; the model's pattern confirms which one.
    Registration refuses overlapping topics; should two devices still claim one
    topic, the message goes to no one (a dead letter) rather than to a guess.
    """
    matches = _claimants(topic, devices)
    return matches[0] if len(matches) == 1 else None


def _claimants(topic: str, devices: dict[str, Device]) -> list[Device]:
    """Every registered device whose model's patterns claim this topic."""
    matches = []
    for segment in topic.split("/"):
        device = devices.get(segment)
        if device and device not in matches and device_identifier(topic, device.device_model.parameter_map) == device.identifier:
            matches.append(device)
    return matches


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
    if settings.READINGS_RETENTION_DAYS is not None:
        # Counted from now, not from the arrival: a dead letter replayed later is as old as a late reading.
        # Stored, it would bring back readings the retention dropped while their energy stays in the
        # buckets, and be counted again between it and its kept neighbour.
        kept_from = datetime.now(timezone.utc) - timedelta(days=settings.READINGS_RETENTION_DAYS)
        if time < kept_from:
            return f"timestamp {time.isoformat()} is older than the retention of {settings.READINGS_RETENTION_DAYS} days"
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
            return dead_letter_alone(messages[0], f"refused by the database: {exc}")
        log.warning("batch of %d refused by the database (%s); storing its messages one by one", len(messages), exc)
        total = IngestResult(messages=len(messages))
        for message in messages:
            one = ingest_messages([message])
            total.readings += one.readings
            total.new_readings += one.new_readings
            total.measured_at += one.measured_at
            total.dead_letters += one.dead_letters
            total.pending += one.pending
        return total


def dead_letter_alone(message: dict, reason: str) -> IngestResult:
    _dead_letter(message, datetime.fromisoformat(message["received_at"]), reason, keep_bytes=settings.INGEST_MAX_PAYLOAD_BYTES).save()
    return IngestResult(messages=1, dead_letters=1)


def _drop_readings_stored_at_first_arrival(readings: dict, energy_batch: dict, redelivered: list[list[tuple]]) -> None:
    """A redelivered message is dropped whole when all its arrival-stamped readings were stored before."""
    window = timedelta(seconds=settings.INGEST_REDELIVERY_WINDOW_S)
    stored = stored_earlier([reading for message in redelivered for reading in message], window)
    for message in redelivered:
        if all((channel_id, time) in stored for channel_id, time, _ in message):
            for channel_id, time, _ in message:
                readings.pop((channel_id, time), None)
                if channel_id in energy_batch:
                    energy_batch[channel_id] = [s for s in energy_batch[channel_id] if s.time != time]
                    if not energy_batch[channel_id]:
                        del energy_batch[channel_id]


def _dead_letter(message: dict, received_at: datetime, reason: str, keep_bytes: int | None = None) -> DeadLetter:
    """The message kept as it came (so it can be replayed), or its first `keep_bytes` bytes, flagged."""
    payload = stored_payload(message, keep_bytes)
    return DeadLetter(
        topic=storable_text(message["topic"]), payload=payload.text, payload_is_base64=payload.is_base64,
        payload_truncated=payload.truncated, reason=storable_text(reason), received_at=received_at,
    )


def letters_not_kept_before(letters: list[DeadLetter]) -> list[DeadLetter]:
    """Leave out the dead letters of messages kept as dead letters already: a batch the bridge sent
    again (same arrival), or a message the broker redelivered (DUP flag, arrived again) within the
    redelivery window. Another message with the same topic and payload is kept again."""
    if not letters:
        return letters
    window = timedelta(seconds=settings.INGEST_REDELIVERY_WINDOW_S)
    earliest = min(letter.received_at for letter in letters) - window
    kept = defaultdict(list)
    for topic, payload, received_at in DeadLetter.objects.filter(
        topic__in={letter.topic for letter in letters}, received_at__gte=earliest
    ).values_list("topic", "payload", "received_at"):
        kept[(topic, payload)].append(received_at)
    fresh = []
    for letter in letters:
        earlier = kept.get((letter.topic, letter.payload), [])
        same_arrival = letter.received_at in earlier
        redelivered_copy = letter.redelivered and any(letter.received_at - window <= t < letter.received_at for t in earlier)
        if not (same_arrival or redelivered_copy):
            fresh.append(letter)
    return fresh


def _ingest(messages: list[dict]) -> IngestResult:
    result = IngestResult(messages=len(messages))
    devices = devices_named_in(message["topic"] for message in messages)
    device_channels = channels_of(devices.values())
    compiled_maps: dict[int, MapSpec] = {}  # by device model: each map compiled once a batch
    readings: dict[tuple[int, datetime], float] = {}
    dead_letters: list[DeadLetter] = []
    energy_rules: dict[int, Rules] = {}  # the batch's channels whose readings make buckets
    # Per redelivered message, its readings stamped with the arrival time: perhaps stored at the first arrival.
    redelivered_arrival_readings: list[list[tuple[int, datetime, float]]] = []
    unclaimed: list[tuple[dict, datetime]] = []
    activity = DeviceActivity()

    for message in messages:
        topic = message["topic"]
        received_at = datetime.fromisoformat(message["received_at"])

        def dead_letter(reason: str, keep_bytes: int | None = None) -> None:
            letter = _dead_letter(message, received_at, reason, keep_bytes)
            letter.redelivered = bool(message.get("redelivered"))
            dead_letters.append(letter)

        size = payload_size(message)
        # A payload the bridge cut is not the message, whatever this process's limit says.
        if size > settings.INGEST_MAX_PAYLOAD_BYTES or "payload_bytes" in message:
            limit = settings.INGEST_MAX_PAYLOAD_BYTES
            dead_letter(f"payload of {size} bytes is over the limit of {limit} bytes (INGEST_MAX_PAYLOAD_BYTES); "
                        f"only its first {limit} bytes are kept", keep_bytes=limit)
            continue

        device = device_claiming(topic, devices)
        if device is None:
            claimants = _claimants(topic, devices)
            if claimants:
                # Adopting would add a third claimant: the registrations must be fixed, then the letter replayed.
                names = ", ".join(sorted(d.identifier for d in claimants))
                dead_letter(f"no single registered device claims this topic: {len(claimants)} devices do ({names})")
            else:
                unclaimed.append((message, received_at))
            continue
        activity.message(device.pk, received_at, retained=message.get("retained", False))
        try:
            online = decode_status(topic, message_payload(message), device.device_model.parameter_map)
        except DecodeError as exc:
            dead_letter(str(exc))
            continue
        if online is not None:  # the device's status topic: no readings in it
            activity.status(device.pk, online, received_at)
            continue
        try:
            if device.device_model_id not in compiled_maps:
                compiled_maps[device.device_model_id] = compile_map(device.device_model.parameter_map)
            decoded, problems = decode(topic, message_payload(message), compiled_maps[device.device_model_id], received_at)
        except DecodeError as exc:
            dead_letter(str(exc))
            continue
        except Exception as exc:  # a decoder fault must not fail the valid messages of the batch
            log.exception("decoder failed on a message from %s", topic)
            dead_letter(f"decoder error: {type(exc).__name__}: {exc}")
            continue
        channels = device_channels[device.id].ids
        limits = device_channels[device.id].limits
        message_times: list[datetime] = []
        time_problems: dict[datetime, str | None] = {}  # a message's readings mostly share one time
        arrival_stamped: list[tuple[int, datetime, float]] = []
        for item in decoded:
            channel_id = channels.get((item.channel_key, item.metric))
            if channel_id is None:
                problems.append(f"device {device.identifier} has no {item.metric} channel {item.channel_key!r}")
                continue
            if item.time not in time_problems:
                time_problems[item.time] = plausible_time_problem(item.time, received_at)
            time_problem = time_problems[item.time]
            if time_problem:
                problems.append(f"channel {item.channel_key!r}: {time_problem}")
                continue
            # One (channel, time) is one measurement: the first value stored stands, in a batch as across batches.
            readings.setdefault((channel_id, item.time), item.value)
            if channel_id in limits and channel_id not in energy_rules:
                metric, max_power_w, max_gap_s = limits[channel_id]
                energy_rules[channel_id] = rules_for(metric, max_power_w, max_gap_s, item.sample, item.rollover)
            message_times.append(item.time)
            if item.time_from_arrival:
                arrival_stamped.append((channel_id, item.time, item.value))
        if arrival_stamped and message.get("redelivered"):
            redelivered_arrival_readings.append(arrival_stamped)
        if problems:
            dead_letter("; ".join(problems))
        if message_times:
            result.measured_at.append(max(message_times))

    # Its own short statement: status and last seen are latest-wins, so a repeat after a failed batch is harmless.
    activity.save()

    # Energy buckets come from counter and power channels; voltage and the other rates are stored as they are.
    energy_batch: dict[int, list[Sample]] = defaultdict(list)
    for (channel_id, time), value in readings.items():
        if channel_id in energy_rules:
            energy_batch[channel_id].append(Sample(time, value))

    valid_readings = len(readings)
    # Before the batch's transaction: a month's new partition then commits at once, and is never
    # created under the channel locks and reads of the batch (two workers doing so deadlock).
    ensure_partitions_for(time for _, time in readings)
    with transaction.atomic():
        lock_channels({channel_id for channel_id, _ in readings})
        _drop_readings_stored_at_first_arrival(readings, energy_batch, redelivered_arrival_readings)
        planned = plan_roll_up(energy_batch, energy_rules)
        result.new_readings = insert_readings([(channel_id, time, value) for (channel_id, time), value in readings.items()])
        refused = len(dead_letters)  # repeats included: a replay learns from it whether its message failed again
        DeadLetter.objects.bulk_create(letters_not_kept_before(dead_letters))
        keep_unclaimed(unclaimed)
        roll_up_batch(planned, energy_rules)

    result.readings = valid_readings
    result.dead_letters = refused
    result.pending = len(unclaimed)
    return result
