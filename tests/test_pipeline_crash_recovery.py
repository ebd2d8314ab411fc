"""Killing the bridge or a worker with SIGKILL in the middle of a replay loses no reading and counts none twice."""

import threading

import pytest

from assets.models import Channel
from iotwatt.demo.household import create_demo_household
from iotwatt.demo.opsd import channel_keys, read_rows, telemetry_messages
from iotwatt.demo.publish import publish_all
from telemetry.models import Reading

from .opsd_expected import daily_mismatches
from .pipeline import Pipeline, wait_until

# serialized_rollback: the standard asset types the migrations made are back for the tests after this one.
pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_sigkill_of_bridge_and_worker_mid_replay_loses_nothing_and_counts_nothing_twice(mosquitto, redis_url, tmp_path):
    site = create_demo_household(channel_keys())
    channels = {c.key: c.id for c in Channel.objects.filter(device__site=site)}
    rows = read_rows()
    expected = sum(len(row.kwh) for row in rows)
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="iotwatt-crash-bridge").start()
    try:
        publisher = threading.Thread(target=publish_all, args=(mosquitto.url, "5", telemetry_messages(rows), "crash-meter", False))
        publisher.start()

        wait_until(lambda: Reading.objects.count() >= 6_000, 120, "the replay to get going")
        pipeline.bridge.kill()
        stored_at_bridge_kill = Reading.objects.count()
        pipeline.bridge.start()

        wait_until(lambda: Reading.objects.count() >= stored_at_bridge_kill + 12_000, 120, "the replay to go on")
        pipeline.worker.kill()
        stored_at_worker_kill = Reading.objects.count()
        pipeline.worker.start()

        publisher.join(timeout=120)
        wait_until(lambda: Reading.objects.count() == expected, 300, f"all {expected} readings")
    finally:
        pipeline.stop()

    assert stored_at_bridge_kill < stored_at_worker_kill < expected  # both kills landed mid-replay
    assert Reading.objects.count() == expected
    checked, mismatches = daily_mismatches(channels)
    assert checked == 365 * 6
    assert mismatches == []


def test_a_bridge_started_before_its_broker_waits_for_it_and_then_ingests(redis_url, tmp_path):
    from .conftest import Mosquitto

    site = create_demo_household(channel_keys())
    rows = read_rows()[:50]
    late_broker = Mosquitto(tmp_path, start=False)
    pipeline = Pipeline(tmp_path, late_broker.url, redis_url, client_id="iotwatt-late-broker-bridge")
    pipeline.worker.start()
    pipeline.bridge.ready_text = "not reachable"
    try:
        pipeline.bridge.start()  # up, and saying it waits for the broker
        late_broker.start()
        wait_until(lambda: "subscribed to" in pipeline.bridge.log_path.read_text(), 60, "the bridge to subscribe")
        publish_all(late_broker.url, "5", telemetry_messages(rows), "late-meter", False)
        expected = sum(len(row.kwh) for row in rows)
        wait_until(lambda: Reading.objects.filter(channel__device__site=site).count() == expected, 120, f"{expected} readings")
    finally:
        pipeline.stop()
        late_broker.stop()
