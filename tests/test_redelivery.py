"""A redelivered message stamped with its arrival time is not stored a second time at its new arrival."""

import json

import pytest

from assets.models import Channel, Device, DeviceModel, Organisation, Site
from telemetry.ingest import ingest_messages
from telemetry.models import EnergyBucket, Reading
from telemetry.parameter_maps import ESPHOME_STATE, IOTWATT_NATIVE

pytestmark = pytest.mark.django_db

# ESPHome state topics carry a bare number: the arrival time stands in for the measurement time.


@pytest.fixture
def channel() -> Channel:
    organisation = Organisation.objects.create(slug="acme", name="Acme")
    site = Site.objects.create(organisation=organisation, name="Plant", timezone="Europe/Berlin")
    model = DeviceModel.objects.create(organisation=organisation, key="esphome", name="ESPHome", parameter_map=ESPHOME_STATE)
    device = Device.objects.create(site=site, device_model=model, identifier="plug1")
    return Channel.objects.create(device=device, key="energy", metric=Channel.Metric.ENERGY)


def message(kwh: float, received_at: str, redelivered: bool = False) -> dict:
    record = {"topic": "plug1/sensor/energy/state", "payload": str(kwh), "received_at": received_at}
    if redelivered:
        record["redelivered"] = True
    return record


def total_kwh(channel) -> float:
    return sum(EnergyBucket.objects.filter(channel=channel).values_list("energy_wh", flat=True)) / 1000


def test_a_redelivered_message_already_stored_is_not_stored_at_its_new_arrival(channel):
    first = message(100.0, "2024-01-01T10:00:00+00:00")
    ingest_messages([first])
    ingest_messages([message(101.0, "2024-01-01T10:15:00+00:00")])

    # The bridge died before acknowledging the first message: the broker sends it again, hours later.
    result = ingest_messages([message(100.0, "2024-01-01T13:00:00+00:00", redelivered=True)])

    assert result.new_readings == 0 and result.readings == 1
    assert Reading.objects.filter(channel=channel).count() == 2
    # Stored again, 100 kWh after 101 kWh would have read as a meter reset: 100 kWh more.
    assert total_kwh(channel) == pytest.approx(1.0)


def test_a_redelivered_message_that_was_never_committed_is_stored(channel):
    ingest_messages([message(100.0, "2024-01-01T10:00:00+00:00")])

    result = ingest_messages([message(100.5, "2024-01-01T10:16:00+00:00", redelivered=True)])

    assert result.new_readings == 1
    assert total_kwh(channel) == pytest.approx(0.5)


def test_an_unchanged_counter_that_is_not_a_redelivery_is_stored(channel):
    ingest_messages([message(100.0, "2024-01-01T10:00:00+00:00")])

    result = ingest_messages([message(100.0, "2024-01-01T10:15:00+00:00")])

    assert result.new_readings == 1
    assert Reading.objects.filter(channel=channel).count() == 2


def test_a_redelivery_beyond_the_window_is_stored(channel, settings):
    settings.INGEST_REDELIVERY_WINDOW_S = 3600
    ingest_messages([message(100.0, "2024-01-01T10:00:00+00:00")])

    result = ingest_messages([message(100.0, "2024-01-01T12:00:00+00:00", redelivered=True)])

    assert result.new_readings == 1


def test_readings_with_the_devices_own_time_are_keyed_by_it_whatever_the_flag():
    """The flag matters only for arrival-stamped readings: a timestamped repeat is caught by its key."""
    organisation = Organisation.objects.create(slug="acme", name="Acme")
    site = Site.objects.create(organisation=organisation, name="Plant", timezone="Europe/Berlin")
    model = DeviceModel.objects.create(organisation=organisation, key="native", name="Native", parameter_map=IOTWATT_NATIVE)
    device = Device.objects.create(site=site, device_model=model, identifier="m1")
    Channel.objects.create(device=device, key="main", metric=Channel.Metric.ENERGY)
    payload = json.dumps({"ts": "2024-01-01T10:00:00Z", "channels": {"main": {"energy_kwh": 1.0}}})
    record = {"topic": "iotwatt/m1/telemetry", "payload": payload, "received_at": "2024-01-01T10:00:01+00:00"}

    ingest_messages([record])
    again = ingest_messages([{**record, "received_at": "2024-01-01T11:00:00+00:00", "redelivered": True}])

    assert again.new_readings == 0 and Reading.objects.count() == 1


def test_the_bridge_passes_the_brokers_dup_flag_on():
    from datetime import datetime, timezone

    import paho.mqtt.client as mqtt

    from telemetry.bridge import message_record

    message = mqtt.MQTTMessage(mid=7, topic=b"plug1/sensor/energy/state")
    message.payload = b"100.0"
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert "redelivered" not in message_record(message, at)
    message.dup = True
    assert message_record(message, at)["redelivered"] is True


def test_a_redelivered_value_seen_only_long_ago_on_its_channel_is_stored(channel):
    """Only the channel's newest readings can be a redelivered message's first delivery."""
    ingest_messages([message(100.0, "2024-01-01T10:00:00+00:00")])
    for minute in range(1, 16):
        ingest_messages([message(100.0 + minute, f"2024-01-01T10:{minute:02d}:00+00:00")])

    result = ingest_messages([message(100.0, "2024-01-01T11:00:00+00:00", redelivered=True)])

    assert result.new_readings == 1
