"""Parameter changes delivered through a real Mosquitto to simulated devices, by the real processes: a
Celery worker (sends, retries, timeouts) and the configuration agent (answers, statuses)."""

import json

import paho.mqtt.client as mqtt
import pytest

from control.changes import request_changes
from control.models import ChangeSet, DeviceParameter, ParameterEvent
from control.simulator import ParameterRule, simulate
from notifications.models import AlertEvent

from .control_pipeline import ControlPipeline
from .parameter_world import make_device
from .pipeline import wait_until

# serialized_rollback: the standard asset types the migrations made are back for the tests after these.
pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def control(django_db_setup, django_db_blocker, mosquitto, tmp_path_factory):
    with django_db_blocker.unblock():
        pipeline = ControlPipeline(tmp_path_factory.mktemp("control"), mosquitto.url)
    # The test process queues each change's first send: to the worker's queue.
    from django.conf import settings

    original_queue, settings.CONTROL_QUEUE = settings.CONTROL_QUEUE, pipeline.queue
    pipeline.start()
    yield pipeline
    pipeline.stop()
    settings.CONTROL_QUEUE = original_queue


@pytest.fixture(autouse=True)
def agent_quiet_afterwards():
    """The simulated devices say offline when a test stops them: the agent records it before the test's
    tables are emptied, or the two would fight over the rows."""
    yield
    from assets.models import Device

    wait_until(lambda: not Device.objects.filter(online=True).exists(), 30, "every simulated device recorded offline")


def devices(mosquitto, prefix: str, count: int = 1, protocol: str = "iotwatt", profile: str = "iotwatt-meter", **options):
    """Rows for the devices, then the simulated devices themselves, connected."""
    rows = [make_device(f"{prefix}{index:04d}", protocol=protocol) for index in range(1, count + 1)]
    fleet = simulate(mosquitto.url, count=count, mqtt_protocol="5", telemetry=False, prefix=prefix, profile=profile, **options)
    assert fleet.wait_online(30)
    for row in rows:  # the agent has heard each come online
        wait_until(lambda: type(row).objects.get(pk=row.pk).online is True, 30, f"{row} online")
    return rows, fleet


def parameter(device, key: str) -> DeviceParameter:
    return DeviceParameter.objects.get(device=device, key=key)


def settled(device, key: str, state: str):
    def check():
        return DeviceParameter.objects.filter(device=device, key=key, state=state).exists()

    def shown():
        rows = list(DeviceParameter.objects.filter(device=device).values_list("key", "desired", "reported", "state", "reason"))
        return f"{device} {key} {state}; parameters now {rows}"

    wait_until(check, 30, shown)


def test_a_change_reaches_the_device_and_is_applied(control, mosquitto):
    (device,), fleet = devices(mosquitto, "apply-")
    with fleet:
        simulated = fleet.devices[0]
        change_set = request_changes(device, {"reporting_interval_s": 30, "relay_default": "off"})
        settled(device, "reporting_interval_s", "applied")
        settled(device, "relay_default", "applied")
        assert simulated.parameters["reporting_interval_s"] == 30 and simulated.parameters["relay_default"] == "off"
        assert simulated.version == change_set.version
        assert parameter(device, "reporting_interval_s").reported == 30
        assert parameter(device, "firmware").reported == simulated.parameters["firmware"]  # from the device's report
        change_set.refresh_from_db()
        assert (change_set.state, change_set.messages_sent) == ("applied", 1)
        kinds = list(ParameterEvent.objects.filter(device=device, key="reporting_interval_s").order_by("at", "id").values_list("kind", flat=True))
        assert kinds == ["reported", "requested", "reported", "applied"]  # the report on connecting came first


def test_a_change_the_device_refuses_shows_its_reason(control, mosquitto):
    (device,), fleet = devices(mosquitto, "refuse-")
    with fleet:
        request_changes(device, {"ct_ratio": 400, "reporting_interval_s": 20})  # 400 passes the model's rules, not this hardware's
        settled(device, "ct_ratio", "rejected")
        settled(device, "reporting_interval_s", "applied")
        assert parameter(device, "ct_ratio").reason == "ct_ratio: CT input saturates above 200 A"
        assert parameter(device, "ct_ratio").reported == 100
        assert fleet.devices[0].parameters["ct_ratio"] == 100
        assert ChangeSet.objects.get(device=device).state == "partial"
        assert AlertEvent.objects.filter(device=device, kind="parameter_rejected").count() == 1


def test_a_device_offline_during_the_change_gets_it_when_it_comes_back(control, mosquitto):
    (device,), fleet = devices(mosquitto, "offline-")
    with fleet:
        simulated = fleet.devices[0]
        simulated.go_offline()
        wait_until(lambda: type(device).objects.get(pk=device.pk).online is False, 30, "the last will recorded")
        change_set = request_changes(device, {"reporting_interval_s": 15})
        wait_until(lambda: ParameterEvent.objects.filter(change_set=change_set, kind="waiting").exists(), 30, "the change set waiting")
        change_set.refresh_from_db()
        assert change_set.state == "pending" and "offline" in change_set.reason and change_set.messages_sent == 0
        assert parameter(device, "reporting_interval_s").state == "pending"
        received_while_offline = simulated.counters.received
        simulated.go_online()
        settled(device, "reporting_interval_s", "applied")
        assert simulated.parameters["reporting_interval_s"] == 15
        assert simulated.counters.received > received_while_offline


def test_two_quick_change_sets_end_in_the_newest(control, mosquitto):
    (device,), fleet = devices(mosquitto, "quick-")
    with fleet:
        first = request_changes(device, {"reporting_interval_s": 10, "max_power_w": 5000})
        second = request_changes(device, {"reporting_interval_s": 20})
        assert second.values == {"reporting_interval_s": 20, "max_power_w": 5000}  # the first's other change goes along
        settled(device, "reporting_interval_s", "applied")
        wait_until(lambda: ChangeSet.objects.get(pk=second.pk).state == "applied", 30, "the newest change set applied")
        assert fleet.devices[0].parameters["reporting_interval_s"] == 20 and fleet.devices[0].parameters["max_power_w"] == 5000
        assert (parameter(device, "reporting_interval_s").desired, parameter(device, "reporting_interval_s").reported) == (20, 20)
        assert ChangeSet.objects.get(pk=first.pk).state == "superseded"


def test_a_late_answer_for_an_old_version_changes_nothing(control, mosquitto):
    (device,), fleet = devices(mosquitto, "late-", answer_delay_s=1.0)
    with fleet:
        simulated = fleet.devices[0]
        first = request_changes(device, {"reporting_interval_s": 10})
        wait_until(lambda: simulated.version == first.version, 30, "the device took the first version")
        second = request_changes(device, {"reporting_interval_s": 20})  # sent while the first's answer is still on its way
        wait_until(lambda: ChangeSet.objects.get(pk=second.pk).state == "applied", 30, "the newest change set applied")
        assert ParameterEvent.objects.filter(device=device, kind="late_answer", change_set=first).exists()
        before = list(DeviceParameter.objects.filter(device=device).values_list("key", "desired", "reported", "state"))
        # The broker delivers the first version's answer once more (a device repeating itself, a replayed message).
        replay = {"version": first.version, "status": "applied", "applied": ["reporting_interval_s"], "rejected": {},
                  "parameters": {**simulated.parameters, "reporting_interval_s": 10}}
        publish(mosquitto, f"iotwatt/{device.identifier}/config/reported", json.dumps(replay))
        wait_until(lambda: ParameterEvent.objects.filter(device=device, kind="late_answer").count() >= 2, 30, "the replay heard")
        assert list(DeviceParameter.objects.filter(device=device).values_list("key", "desired", "reported", "state")) == before
        assert dict((k, r) for k, _, r, _ in before)["reporting_interval_s"] == 20
        assert ChangeSet.objects.get(pk=first.pk).state == "superseded"


def test_a_device_that_never_answers_times_out_after_the_retries(control, mosquitto):
    (device,), fleet = devices(mosquitto, "silent-", silent=True)
    with fleet:
        change_set = request_changes(device, {"reporting_interval_s": 30})
        settled(device, "reporting_interval_s", "timed_out")
        change_set.refresh_from_db()
        assert (change_set.state, change_set.attempts, change_set.messages_sent) == ("timed_out", 3, 3)
        assert change_set.reason == "no answer after 3 sends"
        assert fleet.devices[0].counters.received == 3
        assert ParameterEvent.objects.filter(change_set=change_set, kind="sent").count() == 3
        assert AlertEvent.objects.filter(device=device, kind="parameter_timed_out").count() == 1


def test_a_change_on_the_device_itself_is_drift(control, mosquitto):
    (device,), fleet = devices(mosquitto, "drift-")
    with fleet:
        request_changes(device, {"reporting_interval_s": 30})
        settled(device, "reporting_interval_s", "applied")
        fleet.devices[0].change_locally("reporting_interval_s", 90)
        settled(device, "reporting_interval_s", "drifted")
        assert parameter(device, "reporting_interval_s").reported == 90
        assert AlertEvent.objects.filter(device=device, kind="parameter_drift").count() == 1


def test_tasmota_commands_apply_and_a_clamped_value_is_shown(control, mosquitto):
    (device,), fleet = devices(mosquitto, "plug-", protocol="tasmota", profile="tasmota-plug")
    with fleet:
        request_changes(device, {"tele_period_s": 60, "power_delta": 200})
        settled(device, "tele_period_s", "applied")
        settled(device, "power_delta", "applied")
        assert fleet.devices[0].parameters["TelePeriod"] == 60 and fleet.devices[0].parameters["PowerDelta"] == 200
        # The model allows 32000; this plug's firmware moves a larger delta to its own limit.
        plug = fleet.devices[0]
        plug.rules["PowerDelta"] = ParameterRule("PowerDelta", {**plug.rules["PowerDelta"].spec, "maximum": 1000})
        request_changes(device, {"power_delta": 5000})
        settled(device, "power_delta", "rejected")
        assert parameter(device, "power_delta").reason == "the device kept 1000 (asked 5000)"


def test_shelly_rpc_applies_and_refuses(control, mosquitto):
    (device,), fleet = devices(mosquitto, "shelly-", protocol="shelly_rpc", profile="shelly-plus-1pm")
    with fleet:
        request_changes(device, {"device_name": "Boiler", "initial_state": "off"})
        settled(device, "device_name", "applied")
        settled(device, "initial_state", "applied")
        simulated = fleet.devices[0]
        assert simulated.parameters["device_name"] == "Boiler" and simulated.parameters["initial_state"] == "off"


def publish(mosquitto, topic: str, payload: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_a_bulk_change_by_tag_reaches_every_tagged_device_and_ends_done(control, mosquitto):
    from django.db import transaction

    from assets.models import Device
    from control import bulk

    rows, fleet = devices(mosquitto, "bulk-", count=6)
    Device.objects.filter(pk__in=[row.pk for row in rows[:4]]).update(tags=["floor-3"])
    with fleet:
        fleet.devices[3].silent = True  # one tagged device never answers
        with transaction.atomic():
            chosen = bulk.select_devices(Device.objects.all(), tag="floor-3")
            change = bulk.start(rows[0].site.organisation, chosen, {"reporting_interval_s": 120}, {"tag": "floor-3"})
        wait_until(lambda: type(change).objects.get(pk=change.pk).state == "done", 60, lambda: bulk.progress(type(change).objects.get(pk=change.pk)))
        change.refresh_from_db()
        progress = bulk.progress(change)
        assert (progress["devices"], progress["change_sets"], progress["answered"], progress["percent_done"]) == (4, 4, 3, 100.0)
        assert progress["by_state"]["applied"] == 3 and progress["by_state"]["timed_out"] == 1
        assert progress["messages_sent"] == 3 + 3  # one send each, three to the silent one
        assert [d.parameters["reporting_interval_s"] for d in fleet.devices] == [120, 120, 120, 60, 60, 60]  # the silent one ignored it
        assert not ChangeSet.objects.filter(device__in=rows[4:]).exists()
