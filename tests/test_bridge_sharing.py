"""Several bridges on one shared subscription, and device status from retained topics and last wills,
through the tests' own Mosquitto, a Celery worker and PostgreSQL."""

import re
import signal
import subprocess
import sys
import time

import pytest
import paho.mqtt.client as mqtt

from assets.models import Channel, Device
from iotwatt.demo.household import create_demo_household
from iotwatt.demo.opsd import channel_keys, read_rows, telemetry_messages
from iotwatt.demo.publish import publish_all
from telemetry.bridge import BrokerAddress
from telemetry.models import DeadLetter, Reading

from .pipeline import Pipeline, wait_until
from .test_local_periods import make_channel

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

STOP_LINE = re.compile(r"stopping: (\d+) messages committed, (\d+) duplicate status copies dropped")


def stop_counts(log_text: str) -> tuple[int, int]:
    """(messages committed, duplicates dropped) from the line a bridge logs when it stops."""
    found = STOP_LINE.findall(log_text)
    assert found, "the bridge did not log its counts when it stopped"
    return tuple(int(n) for n in found[-1])


def test_two_bridges_in_one_group_split_the_stream_and_store_every_reading_once(mosquitto, redis_url, tmp_path):
    site = create_demo_household(channel_keys())
    rows = read_rows()[:3000]
    messages = telemetry_messages(rows)
    expected = sum(len(row.kwh) for row in rows)
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="share-bridge-a", more_client_ids=("share-bridge-b",)).start()
    try:
        publish_all(mosquitto.url, "5", messages, "share-meter", False)
        wait_until(lambda: Reading.objects.filter(channel__device__site=site).count() >= expected, 240, f"{expected} readings")
        time.sleep(2)  # the bridges see the last results and acknowledge
    finally:
        pipeline.stop()

    committed = [stop_counts(bridge.log_path.read_text())[0] for bridge in pipeline.bridges]
    assert sum(committed) == len(messages)  # each message went to one bridge of the group
    assert min(committed) >= len(messages) // 5, f"the broker did not split the stream: {committed}"
    assert Reading.objects.filter(channel__device__site=site).count() == expected  # keyed by (channel, time): once each
    assert DeadLetter.objects.count() == 0


DEVICE_WITH_LAST_WILL = """
import sys, time
import paho.mqtt.client as mqtt
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="device-" + topic.split("/")[1], protocol=mqtt.MQTTv5)
client.will_set(topic, "offline", qos=1, retain=True)  # what the broker publishes if the connection dies
client.connect(host, port, keepalive=5)
client.loop_start()
client.publish(topic, "online", qos=1, retain=True).wait_for_publish()
print("online", flush=True)
time.sleep(600)
"""


def publish_retained(broker_url: str, topic: str, payload: str) -> None:
    broker = BrokerAddress.from_url(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"retain-{topic.replace('/', '-')}", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def device(identifier: str) -> Device:
    return Device.objects.get(identifier=identifier)


def test_a_device_killed_without_goodbye_is_marked_offline_by_its_last_will(mosquitto, redis_url, tmp_path):
    make_channel("Europe/Berlin", device="will-meter")
    # Telemetry filter iotwatt/# also matches the status topic: each status message reaches the bridge
    # twice (shared telemetry and plain status subscription), and must be processed once.
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="will-bridge", env_overrides={"MQTT_TOPICS": "iotwatt/#"}).start()
    broker = BrokerAddress.from_url(mosquitto.url)
    meter = subprocess.Popen(
        [sys.executable, "-c", DEVICE_WITH_LAST_WILL, broker.host, str(broker.port), "iotwatt/will-meter/status"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert meter.stdout.readline().strip() == "online"
        wait_until(lambda: device("will-meter").online is True, 60, "the device to be online")
        came_online = device("will-meter").status_changed_at

        meter.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
        meter.wait(timeout=10)
        wait_until(lambda: device("will-meter").online is False, 60, "the last will to mark the device offline")
    finally:
        if meter.poll() is None:
            meter.kill()
        pipeline.stop()
        publish_retained(mosquitto.url, "iotwatt/will-meter/status", "")  # an empty retained message clears it for later tests

    meter_row = device("will-meter")
    assert meter_row.status_changed_at > came_online
    assert meter_row.last_seen_at == meter_row.status_changed_at  # the will is the last message heard for it
    assert DeadLetter.objects.count() == 0
    committed, dropped = stop_counts(pipeline.bridge.log_path.read_text())
    assert (committed, dropped) == (2, 2)  # online and offline, each once; their second copies dropped


def test_retained_status_at_bridge_start_sets_the_status_and_not_last_seen(mosquitto, redis_url, tmp_path):
    make_channel("Europe/Berlin", device="retained-up")
    make_channel("Europe/Berlin", device="retained-down")
    publish_retained(mosquitto.url, "iotwatt/retained-up/status", "online")
    publish_retained(mosquitto.url, "iotwatt/retained-down/status", "offline")
    # Two bridges in one group: retained messages never come on the shared subscription, so each
    # bridge's plain status subscription brings them (recorded twice, latest wins: same result).
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="retained-bridge-a", more_client_ids=("retained-bridge-b",)).start()
    try:
        wait_until(lambda: device("retained-up").online is True and device("retained-down").online is False, 60,
                   "the retained statuses to be recorded")
        time.sleep(2)
    finally:
        pipeline.stop()
        for identifier in ("retained-up", "retained-down"):
            publish_retained(mosquitto.url, f"iotwatt/{identifier}/status", "")  # cleared for later tests

    assert device("retained-up").last_seen_at is None and device("retained-down").last_seen_at is None
    committed_a, committed_b = (stop_counts(bridge.log_path.read_text())[0] for bridge in pipeline.bridges)
    assert committed_a == committed_b >= 2  # every bridge got every retained status (and any earlier tests left)
    assert Channel.objects.filter(device__identifier__startswith="retained-").count() == 2


def test_a_bridge_gone_for_good_holds_its_share_until_it_is_retired(mosquitto, redis_url, tmp_path):
    """Mosquitto keeps giving a shared subscription's offline member its share, queued in its session
    (lost when the session expires). `mqtt_bridge --retire` stores that share and ends the session."""
    site = create_demo_household(channel_keys())
    rows = read_rows()
    first, second = rows[:400], rows[400:800]
    # A status filter no earlier test published on: the counts below are then telemetry messages only.
    no_statuses = {"MQTT_STATUS_TOPICS": "iotwatt/+/status-of-nobody"}
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="stay-bridge", more_client_ids=("leave-bridge",),
                        env_overrides=no_statuses).start()
    stored = lambda: Reading.objects.filter(channel__device__site=site).count()  # noqa: E731
    try:
        pipeline.bridges[1].stop()  # a clean stop, but its session (and group membership) stays with the broker
        publish_all(mosquitto.url, "5", telemetry_messages(first), "leave-meter", False)
        half = sum(len(row.kwh) for row in first) // 2
        wait_until(lambda: stored() >= half, 120, "the staying bridge's share")
        time.sleep(3)
        assert stored() == half  # the other half waits in the gone bridge's session

        retiring = pipeline.bridges[1]
        retiring.command = [*retiring.command, "--retire"]
        retiring.ready_text = "retired:"
        retiring.start(timeout_s=120)  # ready once it has stored the queued share and ended its session
        assert retiring.process.wait(timeout=30) == 0
        assert stored() == sum(len(row.kwh) for row in first)

        publish_all(mosquitto.url, "5", telemetry_messages(second), "leave-meter", False)
        expected = sum(len(row.kwh) for row in rows[:800])
        wait_until(lambda: stored() == expected, 120, "every message to reach the one bridge left")
    finally:
        pipeline.stop()

    assert stop_counts(pipeline.bridges[1].log_path.read_text())[0] == len(first) // 2
    assert stop_counts(pipeline.bridge.log_path.read_text())[0] == len(first) // 2 + len(second)


def test_a_batch_slower_than_the_timeout_is_committed_by_whichever_copy_finishes_first(mosquitto, redis_url, tmp_path):
    """One batch of 3,000 messages (18,000 readings: seconds to commit) with a 0.05 s timeout: it is sent
    again and again, and each new copy queues behind the earlier ones, so a bridge that waited only for
    its newest copy would never see a commit. The first copy's commit must count."""
    site = create_demo_household(channel_keys())
    rows = read_rows()[:3000]
    expected = sum(len(row.kwh) for row in rows)
    slow = {"INGEST_BATCH_TIMEOUT_S": "0.05", "INGEST_BATCH_MAX_MESSAGES": "3000", "INGEST_BATCH_MAX_WAIT_S": "3"}
    pipeline = Pipeline(tmp_path, mosquitto.url, redis_url, client_id="slow-bridge", env_overrides=slow).start()
    try:
        publish_all(mosquitto.url, "5", telemetry_messages(rows), "slow-meter", False)
        wait_until(lambda: Reading.objects.filter(channel__device__site=site).count() >= expected, 120, f"{expected} readings")
        time.sleep(3)  # the bridge looks at the earlier copies every 0.2 s
    finally:
        pipeline.stop()

    log_text = pipeline.bridge.log_path.read_text()
    assert "sending it again" in log_text  # the timeout did fire
    assert stop_counts(log_text)[0] == len(rows)
    assert Reading.objects.filter(channel__device__site=site).count() == expected
