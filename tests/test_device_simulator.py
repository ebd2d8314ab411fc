"""The device simulator against a real Mosquitto, with a plain paho client playing the server."""

import json
import queue
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest

from control.simulator import CsvReplay, Fleet, build_devices, simulate
from control.simulator.telemetry import Meter
from telemetry.bridge import BrokerAddress

IOTWATT_DEFAULTS = {"reporting_interval_s": 60, "ct_ratio": 100, "relay_default": "last", "max_power_w": 11000, "firmware": "2.4.1"}
QUIET_S = 1.5  # how long a test listens to be sure that nothing comes


class Server:
    """What the server side does over MQTT, reduced to publish and wait for a message."""

    def __init__(self, url: str, topics: list[str]):
        broker = BrokerAddress.from_url(url)
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-server-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe([(topic, 1) for topic in topics])
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test's server could not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload, qos: int = 1, wait: bool = True) -> mqtt.MQTTMessageInfo:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        info = self.client.publish(topic, text, qos=qos)
        if wait:
            info.wait_for_publish(10)
        return info

    def wait_for(self, topic: str, accept=lambda message: True, timeout_s: float = 10.0) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if message.topic == topic and accept(message):
                return message
        raise AssertionError(f"nothing on {topic} within {timeout_s} s")

    def wait_json(self, topic: str, accept=lambda data: True, timeout_s: float = 10.0) -> dict:
        return json.loads(self.wait_for(topic, lambda message: accept(json.loads(message.payload)), timeout_s).payload)

    def nothing_on(self, topic: str, accept=lambda data: True, wait_s: float = QUIET_S) -> bool:
        try:
            self.wait_json(topic, accept, timeout_s=wait_s)
        except AssertionError:
            return True
        return False


def answer_to(version: int):
    return lambda data: data.get("version") == version and "status" in data


@pytest.fixture
def prefix():
    """Each test its own device ids: the broker keeps retained messages from earlier tests."""
    return f"t{uuid.uuid4().hex[:6]}-"


@pytest.fixture
def native(mosquitto, prefix):
    """One native meter and a server listening to everything it says."""
    with simulate(mosquitto.url, count=1, prefix=prefix, profile="iotwatt-meter", interval_s=0.2) as fleet:
        assert fleet.wait_online(10)
        device = fleet.devices[0]
        server = Server(mosquitto.url, [f"iotwatt/{device.device_id}/#"])
        yield device, server
        server.close()


def config_set(server: Server, device, version: int, parameters: dict, wait: bool = True) -> mqtt.MQTTMessageInfo:
    return server.publish(f"iotwatt/{device.device_id}/config/set", {"version": version, "parameters": parameters}, wait=wait)


def test_native_device_applies_rejects_and_takes_part_by_its_own_rules(native):
    device, server = native
    reported = f"iotwatt/{device.device_id}/config/reported"

    config_set(server, device, 1, {"reporting_interval_s": 30})
    assert server.wait_json(reported, answer_to(1)) == {
        "version": 1, "status": "applied", "applied": ["reporting_interval_s"], "rejected": {},
        "parameters": {**IOTWATT_DEFAULTS, "reporting_interval_s": 30},
    }

    config_set(server, device, 2, {"ct_ratio": 800, "firmware": "3.0", "colour": "red", "relay_default": 1})
    assert server.wait_json(reported, answer_to(2)) == {
        "version": 2, "status": "rejected", "applied": [],
        "rejected": {
            "ct_ratio": "ct_ratio: 800 is not one of 50, 100, 200, 400",
            "firmware": "firmware: read-only",
            "colour": "colour: unknown parameter",
            "relay_default": "relay_default: 1 is not a string",
        },
        "parameters": {**IOTWATT_DEFAULTS, "reporting_interval_s": 30},
    }

    # 400 is among the ratios the firmware lists, but this hardware refuses it (a rule of the profile).
    config_set(server, device, 3, {"ct_ratio": 400, "max_power_w": 5000.5, "reporting_interval_s": 0})
    assert server.wait_json(reported, answer_to(3)) == {
        "version": 3, "status": "partial", "applied": ["max_power_w"],
        "rejected": {
            "ct_ratio": "ct_ratio: CT input saturates above 200 A",
            "reporting_interval_s": "reporting_interval_s: 0 is below the minimum 1",
        },
        "parameters": {**IOTWATT_DEFAULTS, "reporting_interval_s": 30, "max_power_w": 5000.5},
    }
    assert device.counters.config_answered == 3


def test_same_version_is_answered_again_identically_and_an_older_one_is_stale(native):
    device, server = native
    reported = f"iotwatt/{device.device_id}/config/reported"
    config_set(server, device, 5, {"ct_ratio": 200, "colour": "red"})
    first = server.wait_for(reported, lambda message: answer_to(5)(json.loads(message.payload))).payload
    assert json.loads(first)["status"] == "partial"

    # The repeat carries other values: the device answers what it did, it does not do it again.
    config_set(server, device, 5, {"ct_ratio": 50})
    again = server.wait_for(reported, lambda message: answer_to(5)(json.loads(message.payload))).payload
    assert again == first
    assert device.parameters["ct_ratio"] == 200

    config_set(server, device, 4, {"reporting_interval_s": 10})
    stale = server.wait_json(reported, lambda data: data.get("status") == "stale")
    assert stale == {"version": 5, "status": "stale", "applied": [], "rejected": {}, "parameters": {**IOTWATT_DEFAULTS, "ct_ratio": 200}}
    assert device.parameters == {**IOTWATT_DEFAULTS, "ct_ratio": 200}
    assert device.version == 5


def test_offline_sends_the_retained_last_will_and_online_a_report_of_the_kept_configuration(native, mosquitto):
    device, server = native
    status, reported = f"iotwatt/{device.device_id}/status", f"iotwatt/{device.device_id}/config/reported"
    config_set(server, device, 1, {"ct_ratio": 200})
    server.wait_json(reported, answer_to(1))

    device.go_offline()
    assert server.wait_for(status, lambda message: message.payload == b"offline").payload == b"offline"
    assert not device.is_online
    # Retained: a server that starts now learns it too.
    late = Server(mosquitto.url, [status])
    try:
        message = late.wait_for(status)
        assert (message.payload, message.retain) == (b"offline", True)
    finally:
        late.close()

    device.go_online()
    server.wait_for(status, lambda message: message.payload == b"online")
    report = server.wait_json(reported, lambda data: "status" not in data)
    assert report == {"version": 1, "parameters": {**IOTWATT_DEFAULTS, "ct_ratio": 200}}
    # Still the device that applied version 1.
    config_set(server, device, 1, {"ct_ratio": 50})
    assert server.wait_json(reported, answer_to(1))["status"] == "applied"
    assert device.parameters["ct_ratio"] == 200


def test_a_change_on_the_device_itself_is_reported(native):
    device, server = native
    device.change_locally("relay_default", "off")
    report = server.wait_json(f"iotwatt/{device.device_id}/config/reported", lambda data: data["parameters"]["relay_default"] == "off")
    assert report == {"version": 0, "parameters": {**IOTWATT_DEFAULTS, "relay_default": "off"}}
    with pytest.raises(ValueError, match="ct_ratio: 7 is not one of"):
        device.change_locally("ct_ratio", 7)


def test_relay_command_is_obeyed_acknowledged_and_seen_in_the_power(native):
    device, server = native
    telemetry, ack = f"iotwatt/{device.device_id}/telemetry", f"iotwatt/{device.device_id}/cmd/ack"
    power = lambda data: data["channels"]["grid_import"]["power_w"]  # noqa: E731
    assert power(server.wait_json(telemetry)) > 0

    server.publish(f"iotwatt/{device.device_id}/cmd", {"id": "c-1", "relay": "relay0", "state": "off"})
    assert server.wait_json(ack) == {"id": "c-1", "status": "done", "relays": {"relay0": "off"}}
    off = [server.wait_json(telemetry, lambda data: power(data) == 0) for _ in range(3)]
    assert {reading["channels"]["grid_import"]["energy_wh"] for reading in off[1:]} == {off[0]["channels"]["grid_import"]["energy_wh"]}

    server.publish(f"iotwatt/{device.device_id}/cmd", {"id": "c-2", "relay": "relay7", "state": "on"})
    assert server.wait_json(ack) == {"id": "c-2", "status": "refused", "reason": "no relay 'relay7' (relays: relay0)", "relays": {"relay0": "off"}}

    server.publish(f"iotwatt/{device.device_id}/cmd", {"id": "c-3", "relay": "relay0", "state": "toggle"})
    assert server.wait_json(ack)["relays"] == {"relay0": "on"}
    assert power(server.wait_json(telemetry, lambda data: power(data) > 0)) > 0
    assert (device.counters.commands_obeyed, device.counters.commands_refused) == (2, 1)


def test_tasmota_keeps_values_in_its_limits_and_answers_unknown_and_power(mosquitto, prefix):
    with simulate(mosquitto.url, count=1, prefix=prefix, profile="tasmota-plug", interval_s=0.2) as fleet:
        device_id = fleet.devices[0].device_id
        server = Server(mosquitto.url, [f"stat/{device_id}/RESULT", f"tele/{device_id}/#"])
        try:
            assert server.wait_for(f"tele/{device_id}/LWT").payload == b"Online"
            result = f"stat/{device_id}/RESULT"
            for command, value, answer in [
                ("TelePeriod", "5", {"TelePeriod": 10}),
                ("teleperiod", "99999", {"TelePeriod": 3600}),
                ("TelePeriod", "60", {"TelePeriod": 60}),
                ("PowerOnState", "9", {"PowerOnState": 3}),  # Tasmota ignores an unknown state
                ("PowerOnState", "1", {"PowerOnState": 1}),
                ("PowerDelta", "many", {"Command": "Error"}),
                ("Colour", "red", {"Command": "Unknown"}),
                ("POWER", "OFF", {"POWER": "OFF"}),
                ("POWER1", "TOGGLE", {"POWER": "ON"}),
                ("POWER", "", {"POWER": "ON"}),
                ("POWER2", "ON", {"Command": "Unknown"}),
            ]:
                server.publish(f"cmnd/{device_id}/{command}", value)
                assert server.wait_json(result) == answer, (command, value)
            assert fleet.devices[0].parameters == {"TelePeriod": 60, "PowerOnState": 1, "PowerDelta": 0}
            sensor = server.wait_json(f"tele/{device_id}/SENSOR")
            assert set(sensor["ENERGY"]) >= {"Total", "Power", "Voltage", "Current", "Today", "Yesterday"}
            assert sensor["ENERGY"]["Power"] > 0
        finally:
            server.close()


def test_shelly_answers_rpc_with_results_errors_and_dotted_keys(mosquitto, prefix):
    with simulate(mosquitto.url, count=1, prefix=prefix, profile="shelly-plus-1pm", interval_s=0.2) as fleet:
        device = fleet.devices[0]
        src = f"iotwatt-config/{device.device_id}"
        server = Server(mosquitto.url, [f"{src}/rpc", f"{device.device_id}/#"])

        def rpc(request_id, method, params):
            server.publish(f"{device.device_id}/rpc", {"id": request_id, "src": src, "method": method, "params": params})
            return server.wait_json(f"{src}/rpc", lambda data: data["id"] == request_id)

        try:
            assert server.wait_for(f"{device.device_id}/online").payload == b"true"
            assert rpc("a", "Switch.SetConfig", {"id": 0, "config": {"initial_state": "on"}}) == {
                "id": "a", "src": device.device_id, "dst": src, "result": {"restart_required": False},
            }
            bad = rpc("b", "Switch.SetConfig", {"id": 0, "config": {"initial_state": "sometimes", "power_limit": 100}})
            assert bad["error"]["code"] == -103
            assert "initial_state" in bad["error"]["message"] and "not one of" in bad["error"]["message"]
            # All or nothing: the good key of the refused request was not taken either.
            assert device.parameters["power_limit"] == 3840
            assert rpc("c", "Sys.SetConfig", {"config": {"device": {"name": "Kitchen"}}})["result"] == {"restart_required": False}
            assert rpc("d", "Shelly.GetConfig", {})["result"] == {
                "switch:0": {"initial_state": "on", "power_limit": 3840}, "sys": {"device": {"name": "Kitchen"}},
            }
            assert rpc("e", "Switch.SetConfig", {"id": 1, "config": {"initial_state": "on"}})["error"]["code"] == -103
            assert rpc("f", "Switch.Set", {"id": 0, "on": False})["result"] == {"was_on": True}
            status = server.wait_json(f"{device.device_id}/status/switch:0", lambda data: not data["output"])
            assert status["apower"] == 0
            assert rpc("g", "Script.Eval", {})["error"] == {"code": 404, "message": "No handler for Script.Eval"}
        finally:
            server.close()


def test_a_silent_device_gets_the_change_set_and_does_not_answer(native):
    device, server = native
    reported = f"iotwatt/{device.device_id}/config/reported"
    device.silent = True
    config_set(server, device, 1, {"ct_ratio": 50})
    assert server.nothing_on(reported, answer_to(1))
    assert device.counters.received == 1  # it came, and went unanswered
    assert device.parameters["ct_ratio"] == 100

    device.silent = False
    config_set(server, device, 1, {"ct_ratio": 50})
    assert server.wait_json(reported, answer_to(1))["status"] == "applied"


def test_a_slow_device_answers_after_its_delay(native):
    device, server = native
    device.answer_delay_s = 1.0
    sent = time.monotonic()
    config_set(server, device, 1, {"ct_ratio": 50})
    server.wait_json(f"iotwatt/{device.device_id}/config/reported", answer_to(1), timeout_s=5)
    assert 1.0 <= time.monotonic() - sent < 3.0


def test_a_clean_stop_says_offline_itself(mosquitto, prefix):
    fleet = simulate(mosquitto.url, count=2, prefix=prefix, telemetry=False)
    assert fleet.wait_online(10)
    fleet.stop()
    assert fleet.online_count() == 0
    # DISCONNECT discards the last will: the retained "offline" is there only if the devices sent it.
    server = Server(mosquitto.url, [f"iotwatt/{device.device_id}/status" for device in fleet.devices])
    try:
        statuses = {server.wait_for(f"iotwatt/{device.device_id}/status").payload for device in fleet.devices}
        assert statuses == {b"offline"}
    finally:
        server.close()


def test_csv_replay_holds_each_row_and_the_meter_integrates_it(tmp_path):
    path = tmp_path / "loads.csv"
    path.write_text("time,grid_import,solar\n2025-06-01T00:00:00Z,1000,0\n2025-06-01T00:30:00Z,3000,\n2025-06-01T01:00:00Z,0,500\n")
    replay = CsvReplay(path)
    start = datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert replay.channels == ["grid_import", "solar"]
    assert replay.powers(start + timedelta(minutes=29)) == {"grid_import": 1000.0, "solar": 0.0}
    assert replay.powers(start + timedelta(minutes=30)) == {"grid_import": 3000.0, "solar": 0.0}
    assert replay.powers(start + timedelta(minutes=90)) is None  # over after the last row's spacing

    meter = Meter(replay.channels, {"grid_import": "relay0", "solar": None})
    for minutes in (0, 30, 60):
        sample = meter.read(start + timedelta(minutes=minutes), replay.powers(start + timedelta(minutes=minutes)), {"relay0": "on"})
    assert sample.energy_wh == {"grid_import": 500.0 + 1500.0, "solar": 0.0}
    sample = meter.read(start + timedelta(minutes=75), {"grid_import": 9999, "solar": 500}, {"relay0": "off"})
    assert sample.power_w == {"grid_import": 0.0, "solar": 500.0}
    assert sample.energy_wh == {"grid_import": 2000.0, "solar": 125.0}


FLEET_SIZE = 500


def test_five_hundred_devices_connect_and_answer_a_change_set_each(mosquitto, prefix):
    threads_before = threading.active_count()
    devices = build_devices(FLEET_SIZE, prefix=prefix)
    server = Server(mosquitto.url, ["iotwatt/+/config/reported"])
    started = time.monotonic()
    fleet = Fleet(mosquitto.url, devices, telemetry=False).start()
    try:
        assert fleet.wait_online(60), f"{fleet.online_count()} of {FLEET_SIZE} online"
        connected_s = time.monotonic() - started
        # One network thread for them all, not one per device.
        assert threading.active_count() - threads_before <= 3

        sent = time.monotonic()
        # Sent as a server would, without waiting for each PUBACK in turn.
        infos = [config_set(server, device, 1, {"reporting_interval_s": 30}, wait=False) for device in devices]
        for info in infos:
            info.wait_for_publish(30)
        all_sent_s = time.monotonic() - sent
        answered = set()
        deadline = time.monotonic() + 60
        while len(answered) < FLEET_SIZE and time.monotonic() < deadline:
            try:
                message = server.messages.get(timeout=1)
            except queue.Empty:
                continue
            data = json.loads(message.payload)
            if message.topic.startswith(f"iotwatt/{prefix}") and data.get("status") == "applied" and data["version"] == 1:
                answered.add(message.topic)
        answered_s = time.monotonic() - sent
        counters = fleet.counters()
        print(
            f"\n{FLEET_SIZE} devices: all online in {connected_s:.2f} s; {FLEET_SIZE} change sets sent in {all_sent_s:.2f} s, "
            f"{len(answered)} answered {answered_s:.2f} s after the first was sent; fleet counters {counters.as_dict()}"
        )
        assert len(answered) == FLEET_SIZE
        assert counters.config_answered == FLEET_SIZE
        assert counters.received == FLEET_SIZE
        assert counters.published == 3 * FLEET_SIZE  # online, report, answer
        assert connected_s < 20 and answered_s < 20
    finally:
        fleet.stop()
        server.close()
