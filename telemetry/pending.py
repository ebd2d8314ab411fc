"""Messages no registered device claims: kept, grouped by the device that probably sent them.

Ingest hands the unclaimed messages of a batch to `keep_unclaimed`, inside the batch's
transaction, so they are committed (and only then acknowledged to the broker) with the
rest of the batch. An operator adopts a pending device in the admin (telemetry/adoption.py),
and its messages are then ingested as if they had just arrived.

Which device sent a message is guessed from its topic: the first device model in the
database, then the first built-in map, whose topic patterns read an identifier from it
(decoders.device_identifier). A topic no pattern matches is grouped by the whole topic: no
single level of an unknown topic can be trusted to name the device, and grouping two devices
by a shared level ("home") would mix their messages, while the whole topic never does.
Adoption takes the identifier from the device model the operator chooses, never from the guess.

Bounds. Anyone allowed to publish can invent topics, and every unknown topic would otherwise
be a new row for ever. So at most PENDING_MAX_MESSAGES_PER_DEVICE messages are kept per
pending device (the first ones: what arrives later is counted in dropped_count, and the last
topic and payload still show what the device sends now), and at most PENDING_MAX_DEVICES
pending devices exist; messages of further unknown devices are counted in one overflow
entry and not kept. Each unclaimed message still costs its share of a batch and one row
update; keeping hostile publishers off the broker (its ACLs) is what bounds that.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count

from assets.models import DeviceModel

from .decoders import device_identifier
from .models import PendingDevice, UnclaimedMessage
from .parameter_maps import BUILT_IN_MAPS
from .raw_messages import stored_payload

IDENTIFIER_MAX_LENGTH = PendingDevice._meta.get_field("identifier").max_length
KEY_MAX_LENGTH = PendingDevice._meta.get_field("key").max_length
# Taken while pending devices are added, so concurrent batches cannot together pass PENDING_MAX_DEVICES.
_NEW_PENDING_DEVICES_LOCK = 0x10757A7E


@dataclass(frozen=True)
class KnownMap:
    label: str
    parameter_map: dict
    device_model_id: int | None = None


def known_maps() -> list[KnownMap]:
    """Every device model's map (operator data first: the most specific), then the built-in maps."""
    models = [
        KnownMap(f"{name} ({key})", parameter_map, pk)
        for pk, name, key, parameter_map in DeviceModel.objects.order_by("pk").values_list("pk", "name", "key", "parameter_map")
    ]
    return models + [KnownMap(f"built-in map {name}", parameter_map) for name, parameter_map in BUILT_IN_MAPS.items()]


@dataclass(frozen=True)
class Guess:
    key: str
    identifier: str
    matching_models: list[dict]


def guess_device(topic: str, maps: list[KnownMap]) -> Guess:
    matching = []
    for known in maps:
        identifier = device_identifier(topic, known.parameter_map)
        if identifier is not None:
            matching.append({"model": known.label, "device_model_id": known.device_model_id, "identifier": identifier})
    # An identifier longer than a device's can never be registered: such a topic is grouped by itself.
    identifier = next((m["identifier"] for m in matching if len(m["identifier"]) <= IDENTIFIER_MAX_LENGTH), None)
    for m in matching:
        m["identifier"] = m["identifier"][:IDENTIFIER_MAX_LENGTH]  # a hint, shown; never used to register
    if identifier is not None:
        return Guess(f"device:{identifier}", identifier, matching)
    key = f"topic:{topic}"
    if len(key) > KEY_MAX_LENGTH:
        key = "topic-sha256:" + hashlib.sha256(topic.encode("utf-8", "surrogatepass")).hexdigest()
    return Guess(key, "", matching)


@dataclass
class _Group:
    """The unclaimed messages of one batch that belong to one pending device."""

    guess: Guess
    messages: list[tuple[dict, datetime]] = field(default_factory=list)

    @property
    def latest(self) -> tuple[dict, datetime]:
        return max(self.messages, key=lambda item: item[1])


def keep_unclaimed(messages: list[tuple[dict, datetime]]) -> None:
    """Keep (message, received_at) pairs no registered device claims. Runs in the batch's transaction."""
    if not messages:
        return
    maps = known_maps()
    guesses: dict[str, Guess] = {}
    groups: dict[str, _Group] = {}
    for message, received_at in messages:
        topic = message["topic"]
        if topic not in guesses:
            guesses[topic] = guess_device(topic, maps)
        guess = guesses[topic]
        groups.setdefault(guess.key, _Group(guess)).messages.append((message, received_at))

    existing = set(PendingDevice.objects.filter(key__in=list(groups)).values_list("key", flat=True))
    if set(groups) - existing:
        _fold_new_devices_over_the_limit(groups, existing)

    ids = _upsert_pending_devices(groups)
    stored = dict(
        UnclaimedMessage.objects.filter(pending_device_id__in=ids.values())
        .values("pending_device_id").annotate(n=Count("id")).values_list("pending_device_id", "n")
    )
    kept: list[UnclaimedMessage] = []
    dropped: dict[int, int] = {}
    for key, group in groups.items():
        pending_id = ids[key]
        room = 0 if key == PendingDevice.OVERFLOW_KEY else max(settings.PENDING_MAX_MESSAGES_PER_DEVICE - stored.get(pending_id, 0), 0)
        # The first messages are kept: a counter's energy over the gap comes back with the next reading after adoption.
        ordered = sorted(group.messages, key=lambda item: item[1])
        for message, received_at in ordered[:room]:
            payload = stored_payload(message)
            kept.append(UnclaimedMessage(
                pending_device_id=pending_id, topic=message["topic"], payload=payload.text,
                payload_is_base64=payload.is_base64, received_at=received_at,
            ))
        if len(ordered) > room:
            dropped[pending_id] = len(ordered) - room
    UnclaimedMessage.objects.bulk_create(kept)
    if dropped:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE telemetry_pendingdevice AS p SET dropped_count = p.dropped_count + d.n
                FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, n) WHERE p.id = d.id
                """,
                [list(dropped), list(dropped.values())],
            )


def _fold_new_devices_over_the_limit(groups: dict[str, _Group], existing: set[str]) -> None:
    """New pending devices beyond PENDING_MAX_DEVICES go into the overflow entry (counted, not kept)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_NEW_PENDING_DEVICES_LOCK])
    room = settings.PENDING_MAX_DEVICES - PendingDevice.objects.exclude(key=PendingDevice.OVERFLOW_KEY).count()
    new_keys = sorted(key for key in groups if key not in existing and key != PendingDevice.OVERFLOW_KEY)
    over = new_keys[max(room, 0):]
    if not over:
        return
    overflow = groups.setdefault(PendingDevice.OVERFLOW_KEY, _Group(Guess(PendingDevice.OVERFLOW_KEY, "", [])))
    for key in over:
        overflow.messages.extend(groups.pop(key).messages)


def _upsert_pending_devices(groups: dict[str, _Group]) -> dict[str, int]:
    """Create or update one row per group; returns key -> id. Rows are locked in key order, so
    concurrent batches never wait on each other in a cycle."""
    rows = []
    for key in sorted(groups):
        group = groups[key]
        latest_message, latest_at = group.latest
        payload = stored_payload(latest_message)
        rows.append((
            key, group.guess.identifier, min(at for _, at in group.messages), latest_at, len(group.messages),
            latest_message["topic"], payload.text, payload.is_base64, json.dumps(group.guess.matching_models),
        ))
    columns = list(zip(*rows))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO telemetry_pendingdevice AS p (key, identifier, first_seen, last_seen, message_count, last_topic,
                last_payload, last_payload_is_base64, matching_models, dropped_count)
            SELECT k, i, f, l, n, t, pl, b, m::jsonb, 0
            FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::text[],
                        %s::text[], %s::boolean[], %s::text[]) AS u(k, i, f, l, n, t, pl, b, m)
            ON CONFLICT (key) DO UPDATE SET
                first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
                message_count = p.message_count + EXCLUDED.message_count,
                last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen),
                last_topic = CASE WHEN EXCLUDED.last_seen >= p.last_seen THEN EXCLUDED.last_topic ELSE p.last_topic END,
                last_payload = CASE WHEN EXCLUDED.last_seen >= p.last_seen THEN EXCLUDED.last_payload ELSE p.last_payload END,
                last_payload_is_base64 = CASE WHEN EXCLUDED.last_seen >= p.last_seen
                    THEN EXCLUDED.last_payload_is_base64 ELSE p.last_payload_is_base64 END,
                matching_models = EXCLUDED.matching_models
            RETURNING key, id
            """,
            [list(column) for column in columns],
        )
        return dict(cursor.fetchall())
