"""Messages the database or the clock would refuse become dead letters; they never block the batch."""

from datetime import datetime, timedelta, timezone

import pytest

from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, EnergyBucket, Reading, UnclaimedMessage
from telemetry.raw_messages import message_from_stored, message_payload

from .test_local_periods import make_channel, message

pytestmark = pytest.mark.django_db

GOOD_TS = "2024-01-01T00:00:00+00:00"


def hostile(topic: str, payload: str) -> dict:
    return {"topic": topic, "payload": payload, "received_at": GOOD_TS}


def ingest_between_two_good_messages(bad: dict):
    """The good readings on either side of `bad` in one batch are stored whatever becomes of it."""
    channel = make_channel("Europe/Berlin")
    batch = [message("m1", "2024-01-01T00:00:00+00:00", 10.0), bad, message("m1", "2024-01-01T01:00:00+00:00", 11.0)]

    result = ingest_messages(batch)

    assert Reading.objects.filter(channel=channel).count() == 2
    return result


@pytest.mark.parametrize(
    "bad",
    [
        hostile("iotwatt/m1/telemetry", "hello\x00world"),
        hostile("iotwatt/m1/telemetry", '{"ts": "2024-01-01T00:00:00+00:00", "channels": {"main\\u0000": {"energy_kwh": 1}}}'),
        # JSON may escape a lone surrogate, which has no UTF-8 form: quoted in the reason, it must not fail the batch.
        hostile("iotwatt/m1/telemetry", '{"ts": "2024-01-01T00:00:00+00:00", "channels": {"main": {"energy_kwh": "\\ud800"}}}'),
    ],
    ids=["nul-in-payload", "nul-in-channel-key", "lone-surrogate-in-value"],
)
def test_a_message_the_database_cannot_hold_is_a_dead_letter_and_the_rest_is_stored(bad):
    result = ingest_between_two_good_messages(bad)

    assert result.readings == 2 and result.dead_letters == 1
    letter = DeadLetter.objects.get()
    assert "\x00" not in letter.payload + letter.topic
    assert letter.topic.startswith("iotwatt/")


@pytest.mark.parametrize(
    "bad",
    [hostile("iotwatt/nobody/telemetry", "hello\x00world"), hostile("iotwatt/" + "x" * 600 + "/telemetry", "{}")],
    ids=["nul-in-payload", "600-char-topic"],
)
def test_an_unknown_devices_hostile_message_is_kept_pending_and_the_rest_is_stored(bad):
    result = ingest_between_two_good_messages(bad)

    assert (result.readings, result.dead_letters, result.pending) == (2, 0, 1)
    kept = UnclaimedMessage.objects.get()
    assert kept.topic == bad["topic"]  # whole, however long
    assert message_payload(message_from_stored(kept.topic, kept.payload, kept.payload_is_base64, kept.received_at)) in (
        bad["payload"], bad["payload"].encode())


def test_a_reading_stamped_far_in_the_future_is_refused_and_makes_no_buckets():
    channel = make_channel("Europe/Berlin")
    arrival = "2024-01-01T02:00:00+00:00"
    batch = [
        message("m1", "2024-01-01T00:00:00+00:00", 10.0, received_at=arrival),
        message("m1", "2030-01-01T00:00:00+00:00", 99.0, received_at=arrival),
        message("m1", "2024-01-01T01:00:00+00:00", 11.0, received_at=arrival),
    ]

    ingest_messages(batch)

    assert Reading.objects.filter(channel=channel).count() == 2
    assert EnergyBucket.objects.filter(channel=channel).count() == 4  # one hour, not six years
    assert "after the message arrived" in DeadLetter.objects.get().reason


def test_a_reading_before_the_horizon_is_refused():
    make_channel("Europe/Berlin")

    ingest_messages([message("m1", "1970-01-01T00:00:10+00:00", 1.0, received_at=GOOD_TS)])

    assert not Reading.objects.exists()
    assert "before the horizon" in DeadLetter.objects.get().reason


def test_when_the_database_refuses_one_message_the_others_are_stored_one_by_one():
    """A trigger makes PostgreSQL refuse one value, standing in for any refusal we cannot foresee."""
    from django.db import connection

    channel = make_channel("Europe/Berlin")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_666() RETURNS trigger AS $$
            BEGIN
                IF NEW.value = 666000 THEN RAISE EXCEPTION 'value 666 kWh refused' USING ERRCODE = '22000'; END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_666 BEFORE INSERT ON telemetry_reading FOR EACH ROW EXECUTE FUNCTION refuse_666();
            """
        )
    batch = [
        message("m1", "2024-01-01T00:00:00+00:00", 10.0),
        message("m1", "2024-01-01T00:30:00+00:00", 666.0),
        message("m1", "2024-01-01T01:00:00+00:00", 11.0),
    ]

    result = ingest_messages(batch)

    assert sorted(Reading.objects.filter(channel=channel).values_list("value", flat=True)) == [10_000.0, 11_000.0]
    assert (result.readings, result.dead_letters) == (2, 1)
    assert "value 666 kWh refused" in DeadLetter.objects.get().reason
    assert EnergyBucket.objects.filter(channel=channel).count() == 4


def test_a_reading_older_than_the_retention_is_refused_whenever_it_arrives(settings):
    settings.READINGS_RETENTION_DAYS = 30
    channel = make_channel("Europe/Berlin")
    now = datetime.now(timezone.utc)
    too_old, kept = now - timedelta(days=31), now - timedelta(days=29)

    ingest_messages([
        # Stamped and received 31 days ago (a dead letter replayed now, say): older than the retention now.
        message("m1", too_old.isoformat(), 10.0, received_at=too_old.isoformat()),
        message("m1", kept.isoformat(), 11.0, received_at=now.isoformat()),
    ])

    assert list(Reading.objects.filter(channel=channel).values_list("value", flat=True)) == [11000.0]
    assert "older than the retention of 30 days" in DeadLetter.objects.get().reason


def test_a_huge_payload_travels_cut_from_the_bridge_and_is_a_dead_letter_with_its_real_size(settings):
    import paho.mqtt.client as mqtt

    from telemetry.bridge import message_record

    settings.INGEST_MAX_PAYLOAD_BYTES = 1000
    make_channel("Europe/Berlin")
    huge = mqtt.MQTTMessage(mid=1, topic=b"iotwatt/m1/telemetry")
    huge.payload = b'{"ts": "2024-01-01T00:00:00Z", "pad": "' + b"x" * (1 << 20) + b'"}'

    record = message_record(huge, datetime(2024, 1, 1, tzinfo=timezone.utc), settings.INGEST_MAX_PAYLOAD_BYTES)
    ingest_messages([record])

    assert len(record["payload"]) == 1000 and record["payload_bytes"] == len(huge.payload)
    letter = DeadLetter.objects.get()
    assert f"payload of {len(huge.payload)} bytes is over the limit of 1000 bytes" in letter.reason
    assert letter.payload_truncated


def test_a_bad_message_sent_again_or_redelivered_is_one_dead_letter():
    make_channel("Europe/Berlin")
    bad = hostile("iotwatt/m1/telemetry", "{broken")

    ingest_messages([bad])
    ingest_messages([bad])  # the bridge sent the batch again: same arrival
    ingest_messages([{**bad, "received_at": "2024-01-01T05:00:00+00:00", "redelivered": True}])  # the broker redelivered it
    ingest_messages([{**bad, "received_at": "2024-01-01T06:00:00+00:00"}])  # the device sent it again: a new message

    assert DeadLetter.objects.count() == 2
