"""The rules of device parameters, on the database without MQTT: definitions, change sets, supersession,
what answers and reports of each protocol do. Delivery through Mosquitto: test_parameter_delivery.py."""

import json
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from control.answers import apply_answer
from control.changes import ChangeRefused, request_changes
from control.definitions import DefinitionError, configuration_of, parse_configuration, values_equal
from control.models import ChangeSet, DeviceParameter, ParameterEvent
from control.protocols import AnswerError, change_set_messages, read_answer
from notifications.models import AlertEvent
from telemetry.decoders import ParameterMapError, validate_parameter_map
from telemetry.parameter_maps import IOTWATT_NATIVE, SHELLY_GEN2_SWITCH, TASMOTA_SENSOR

from .parameter_world import make_device

NATIVE = configuration_of(IOTWATT_NATIVE)
TASMOTA = configuration_of(TASMOTA_SENSOR)
SHELLY = configuration_of(SHELLY_GEN2_SWITCH)
AT = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


# --- definitions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"reporting_interval_s": 0}, "reporting_interval_s: 0 is below the minimum 1 s"),
    ({"reporting_interval_s": 3601}, "reporting_interval_s: 3601 is above the maximum 3600 s"),
    ({"reporting_interval_s": 2.5}, "reporting_interval_s: 2.5 is not a whole number"),
    ({"reporting_interval_s": "60"}, "reporting_interval_s: '60' is not a whole number"),
    ({"reporting_interval_s": True}, "reporting_interval_s: True is not a whole number"),
    ({"ct_ratio": 150}, "ct_ratio: 150 is not one of 50, 100, 200, 400, 600"),
    ({"relay_default": "maybe"}, "relay_default: 'maybe' is not one of 'on', 'off', 'last'"),
    ({"max_power_w": -1}, "max_power_w: -1 is below the minimum 0 W"),
    ({"max_power_w": float("nan")}, "max_power_w: nan is not a number"),
    ({"firmware": "2.0"}, "firmware is read-only: the device reports it, it cannot be set"),
    ({"colour": "red"}, "colour is not a parameter of this device model"),
])
def test_a_bad_value_is_refused_naming_the_parameter_and_the_rule(values, message):
    accepted, refused = NATIVE.check(values)
    assert accepted == {} and list(refused.values()) == [message]


def test_good_values_are_taken_as_the_device_gets_them():
    accepted, refused = NATIVE.check({"reporting_interval_s": 30.0, "ct_ratio": 200, "max_power_w": 1500.5, "relay_default": "off"})
    assert refused == {}
    assert accepted == {"reporting_interval_s": 30, "ct_ratio": 200, "max_power_w": 1500.5, "relay_default": "off"}
    assert type(accepted["reporting_interval_s"]) is int


@pytest.mark.parametrize("section, problem", [
    ({"protocol": "snmp"}, "configuration.protocol"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "float"}}}, "x\".type must be one of"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "integer", "minimum": 5, "maximum": 1}}}, "minimum is above the maximum"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "integer", "choices": [1, "two"]}}}, "'two' is not of type integer"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "integer", "maximum": 10, "default": 11}}}, "default: x: 11 is above the maximum 10"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "string", "minimum": 1}}}, "applies to numbers only"),
    ({"protocol": "iotwatt", "parameters": {"x": {"type": "integer", "colour": 1}}}, "unknown keys: colour"),
    ({"protocol": "tasmota", "parameters": {"x": {"type": "integer"}}}, "names its command"),
    ({"protocol": "tasmota", "parameters": {"x": {"type": "integer", "command": "Tele Period"}}}, "Tasmota command name"),
    ({"protocol": "shelly_rpc", "parameters": {"x": {"type": "integer"}}}, "names its RPC"),
    ({"protocol": "shelly_rpc", "parameters": {"x": {"type": "integer", "rpc": {"method": "SetConfig", "config_key": "a"}}}}, "Shelly method name"),
])
def test_a_wrong_definition_is_refused_with_its_place(section, problem):
    with pytest.raises(DefinitionError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        parse_configuration(section)
    with pytest.raises(ParameterMapError):
        validate_parameter_map({**IOTWATT_NATIVE, "configuration": section})


def test_equal_as_a_device_means_it():
    assert values_equal(200, 200.0) and not values_equal(True, 1) and not values_equal("1", 1) and values_equal(False, False)


# --- messages ------------------------------------------------------------------------------------------

def test_each_protocol_carries_a_change_set_in_its_own_messages():
    native = change_set_messages(NATIVE, "m1", 7, {"ct_ratio": 200, "relay_default": "off"})
    assert [(m.topic, json.loads(m.payload)) for m in native] == [
        ("iotwatt/m1/config/set", {"version": 7, "parameters": {"ct_ratio": 200, "relay_default": "off"}})
    ]
    tasmota = change_set_messages(TASMOTA, "plug-1", 3, {"tele_period_s": 60, "power_on_state": 0})
    assert [(m.topic, m.payload) for m in tasmota] == [("cmnd/plug-1/PowerOnState", "0"), ("cmnd/plug-1/TelePeriod", "60")]
    shelly = change_set_messages(SHELLY, "shellyplus1pm-a1", 4, {"device_name": "Boiler", "initial_state": "off"})
    assert [(m.topic, json.loads(m.payload)) for m in shelly] == [
        ("shellyplus1pm-a1/rpc", {"id": "iotwatt:4:device_name", "src": "iotwatt-config/shellyplus1pm-a1", "method": "Sys.SetConfig",
                                  "params": {"config": {"device": {"name": "Boiler"}}}}),
        ("shellyplus1pm-a1/rpc", {"id": "iotwatt:4:initial_state", "src": "iotwatt-config/shellyplus1pm-a1", "method": "Switch.SetConfig",
                                  "params": {"id": 0, "config": {"initial_state": "off"}}}),
    ]


@pytest.mark.parametrize("protocol, configuration, payload, problem", [
    ("iotwatt", NATIVE, "not json", "not JSON"),
    ("iotwatt", NATIVE, "[1]", "not a JSON object"),
    ("iotwatt", NATIVE, '{"version": -1}', "version -1"),
    ("iotwatt", NATIVE, '{"version": 2, "status": "maybe"}', "status 'maybe'"),
    ("iotwatt", NATIVE, '{"version": 2, "status": "applied", "applied": "ct_ratio"}', '"applied" is not a list'),
    ("shelly_rpc", SHELLY, '{"id": 5, "result": {}}', "not one of our requests"),
    ("shelly_rpc", SHELLY, '{"id": "iotwatt:5:x"}', "neither result nor error"),
])
def test_an_unreadable_answer_says_why(protocol, configuration, payload, problem):
    with pytest.raises(AnswerError, match=problem):
        read_answer(protocol, payload, configuration)


# --- change sets -----------------------------------------------------------------------------------------

def state_of(device) -> dict:
    return {
        row.key: (row.desired, row.reported, row.state, row.reason)
        for row in DeviceParameter.objects.filter(device=device)
    }


def answer(device, payload: dict | str, configuration=NATIVE, protocol="iotwatt") -> str:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return apply_answer(device, configuration, read_answer(protocol, raw, configuration), raw, AT)


@pytest.mark.django_db
def test_a_change_makes_a_versioned_change_set_and_an_audit_of_who_changed_what(django_user_model):
    operator = django_user_model.objects.create(username="ops")
    device = make_device("m1")
    change_set = request_changes(device, {"ct_ratio": 200}, actor=operator)
    assert (change_set.version, change_set.values, change_set.state) == (1, {"ct_ratio": 200}, "pending")
    assert state_of(device) == {"ct_ratio": (200, None, "pending", "")}
    event = ParameterEvent.objects.get(device=device, kind="requested")
    assert (event.actor, event.key, event.old_value, event.new_value) == (operator, "ct_ratio", None, 200)


@pytest.mark.django_db
def test_a_refused_value_changes_nothing():
    device = make_device("m1")
    with pytest.raises(ChangeRefused) as refused:
        request_changes(device, {"ct_ratio": 200, "reporting_interval_s": 0})
    assert refused.value.problems == {"reporting_interval_s": "reporting_interval_s: 0 is below the minimum 1 s"}
    assert not ChangeSet.objects.exists() and not DeviceParameter.objects.exists()


@pytest.mark.django_db
def test_a_model_without_configuration_refuses_changes():
    from assets.models import DeviceModel
    from telemetry.parameter_maps import EMONHUB

    device = make_device("m1")
    device.device_model = DeviceModel.objects.create(key="emon", name="emon", parameter_map=EMONHUB)
    with pytest.raises(ChangeRefused, match="declares no parameters"):
        request_changes(device, {"ct_ratio": 200})


@pytest.mark.django_db
def test_a_newer_change_set_supersedes_the_open_one_and_carries_what_it_had():
    device = make_device("m1")
    first = request_changes(device, {"ct_ratio": 200})
    second = request_changes(device, {"reporting_interval_s": 30})
    first.refresh_from_db()
    assert (first.state, first.superseded_by) == ("superseded", second)
    assert (second.version, second.values) == (2, {"ct_ratio": 200, "reporting_interval_s": 30})
    third = request_changes(device, {"ct_ratio": 400})
    assert third.values == {"ct_ratio": 400, "reporting_interval_s": 30}
    assert state_of(device)["ct_ratio"][:3] == (400, None, "pending")


@pytest.mark.django_db
def test_asking_for_what_the_device_already_has_sends_nothing():
    device = make_device("m1")
    answer(device, {"version": 0, "parameters": {"ct_ratio": 100, "reporting_interval_s": 60}})
    assert request_changes(device, {"ct_ratio": 100}) is None
    assert state_of(device)["ct_ratio"] == (100, 100, "in_sync", "")
    assert not ChangeSet.objects.exists()


# --- native answers ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_applied_answer_applies_and_records_the_devices_words():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 200, "relay_default": "off"})
    reply = {"version": 1, "status": "applied", "applied": ["ct_ratio", "relay_default"], "rejected": {},
             "parameters": {"ct_ratio": 200, "relay_default": "off", "reporting_interval_s": 60, "firmware": "1.4.2", "secret": 1}}
    assert answer(device, reply) == "answer"
    assert state_of(device) == {
        "ct_ratio": (200, 200, "applied", ""), "relay_default": ("off", "off", "applied", ""),
        "reporting_interval_s": (None, 60, "in_sync", ""), "firmware": (None, "1.4.2", "in_sync", ""),
    }
    assert ChangeSet.objects.get().state == "applied"
    applied = ParameterEvent.objects.get(kind="applied", key="ct_ratio")
    assert json.loads(applied.device_answer) == reply


@pytest.mark.django_db
def test_a_rejection_shows_the_devices_reason_and_raises_an_alert():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 400, "reporting_interval_s": 30})
    answer(device, {"version": 1, "status": "partial", "applied": ["reporting_interval_s"],
                    "rejected": {"ct_ratio": "CT input saturates above 200 A"}, "parameters": {"ct_ratio": 100, "reporting_interval_s": 30}})
    assert state_of(device) == {
        "ct_ratio": (400, 100, "rejected", "CT input saturates above 200 A"),
        "reporting_interval_s": (30, 30, "applied", ""),
    }
    change_set = ChangeSet.objects.get()
    assert (change_set.state, change_set.reason) == ("partial", "CT input saturates above 200 A")
    assert AlertEvent.objects.get().kind == "parameter_rejected"


@pytest.mark.django_db
def test_a_late_answer_for_an_old_version_changes_nothing():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 200})
    request_changes(device, {"ct_ratio": 400})
    answer(device, {"version": 2, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 400}})
    before = state_of(device)
    assert before == {"ct_ratio": (400, 400, "applied", "")}
    assert answer(device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}}) == "late_answer"
    assert state_of(device) == before
    assert ChangeSet.objects.get(version=1).state == "superseded"
    assert ParameterEvent.objects.filter(kind="late_answer").count() == 1


@pytest.mark.django_db
def test_an_old_answer_arriving_first_does_not_settle_the_newer_change():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 200})
    request_changes(device, {"ct_ratio": 400})
    assert answer(device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}}) == "late_answer"
    assert state_of(device)["ct_ratio"] == (400, None, "pending", "")  # 400 is still on its way; the old answer changed nothing
    answer(device, {"version": 2, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 400}})
    assert state_of(device)["ct_ratio"] == (400, 400, "applied", "")


@pytest.mark.django_db
def test_a_device_ahead_of_the_numbering_gets_its_change_again_under_a_newer_version():
    """A device registered again (or a restored database): the device is at version 7, the server starts at 1."""
    device = make_device("m1")
    first = request_changes(device, {"ct_ratio": 200})
    assert answer(device, {"version": 7, "status": "stale", "parameters": {"ct_ratio": 100}}) == "stale"
    first.refresh_from_db()
    renewed = ChangeSet.objects.get(device=device, state="pending")
    assert (first.state, renewed.version, renewed.values) == ("superseded", 8, {"ct_ratio": 200})
    assert state_of(device)["ct_ratio"] == (200, 100, "pending", "")
    answer(device, {"version": 8, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}})
    assert state_of(device)["ct_ratio"] == (200, 200, "applied", "")


@pytest.mark.django_db
def test_a_report_from_a_device_ahead_numbers_the_next_change_after_it():
    device = make_device("m1")
    answer(device, {"version": 12, "parameters": {"ct_ratio": 100}})
    assert request_changes(device, {"ct_ratio": 200}).version == 13


@pytest.mark.django_db
def test_an_answer_for_a_version_never_sent_changes_nothing_and_does_not_block_later_answers():
    device = make_device("m1")
    assert answer(device, {"version": 999, "status": "applied", "parameters": {"reporting_interval_s": 45}}) == "unknown_version"
    assert state_of(device) == {}
    change_set = request_changes(device, {"reporting_interval_s": 20})
    assert change_set.version == 1  # only the device's own report or "stale" moves the numbering on
    answer(device, {"version": 1, "status": "applied", "parameters": {"reporting_interval_s": 20}})
    assert state_of(device)["reporting_interval_s"] == (20, 20, "applied", "")


@pytest.mark.django_db
@pytest.mark.parametrize("payload", [
    '{"version": 0, "parameters": {"max_power_w": NaN, "ct_ratio": 50}}',
    '{"version": 0, "parameters": {"max_power_w": Infinity, "ct_ratio": 50}}',
    '{"version": 0, "parameters": {"relay_default": "a\\u0000b", "ct_ratio": 50}}',
    '{"version": 0, "parameters": {"relay_default": "%s", "ct_ratio": 50}}' % ("x" * 5000),
    '{"version": 0, "parameters": {"relay_default": {"deep": [1]}, "ct_ratio": 50}}',
])
def test_a_reported_value_no_parameter_can_hold_is_left_out_and_said(payload):
    device = make_device("m1")
    assert answer(device, payload) == "report"
    assert state_of(device) == {"ct_ratio": (None, 50, "in_sync", "")}
    assert "reported values not kept" in ParameterEvent.objects.get(kind="unreadable").note


@pytest.mark.parametrize("payload, problem", [
    ('{"version": 99999999999, "parameters": {}}', "version 99999999999"),
    ('{"version": 1, "status": "stale", "current_version": -1}', "current_version -1"),
])
def test_a_version_out_of_range_is_unreadable(payload, problem):
    with pytest.raises(AnswerError, match=problem):
        read_answer("iotwatt", payload, NATIVE)


def test_a_shelly_id_with_other_digits_is_not_ours():
    with pytest.raises(AnswerError, match="not one of our requests"):
        read_answer("shelly_rpc", '{"id": "iotwatt:\u00b2:initial_state", "result": {}}', SHELLY)


@pytest.mark.django_db
def test_drift_is_visible_and_alerted_once_until_it_ends():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 200})
    answer(device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}})
    answer(device, {"version": 1, "parameters": {"ct_ratio": 50}})  # someone changed it on the device
    answer(device, {"version": 1, "parameters": {"ct_ratio": 600}})
    assert state_of(device)["ct_ratio"] == (200, 600, "drifted", "the device reports 600, 200 is desired")
    assert AlertEvent.objects.filter(kind="parameter_drift").count() == 1
    answer(device, {"version": 1, "parameters": {"ct_ratio": 200}})
    assert state_of(device)["ct_ratio"] == (200, 200, "in_sync", "")
    answer(device, {"version": 1, "parameters": {"ct_ratio": 50}})
    assert AlertEvent.objects.filter(kind="parameter_drift").count() == 2


@pytest.mark.django_db
def test_a_device_reset_to_its_defaults_shows_as_drift_and_takes_the_next_change():
    device = make_device("m1")
    request_changes(device, {"ct_ratio": 200})
    answer(device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}})
    assert answer(device, {"version": 0, "parameters": {"ct_ratio": 100}}) == "report"  # factory reset: version 0, defaults
    assert state_of(device)["ct_ratio"] == (200, 100, "drifted", "the device reports 100, 200 is desired")
    assert request_changes(device, {"ct_ratio": 200}).version == 2


# --- Tasmota and Shelly answers ---------------------------------------------------------------------------

def sent(change_set, mosquitto) -> None:
    """One delivery step of the change set, published to the test's Mosquitto (no device listens)."""
    from control.delivery import deliver
    from control.publisher import Publisher

    change_set.refresh_from_db()
    step = deliver(change_set.pk, change_set.delivery_round, change_set.attempts, publish=Publisher(mosquitto.url, "5", timeout_s=10).publish)
    assert step.outcome == "sent"


TASMOTA_ANSWER = {"configuration": TASMOTA, "protocol": "tasmota"}


@pytest.mark.django_db
def test_tasmota_results_apply_show_clamping_and_match_an_unnamed_refusal(mosquitto):
    device = make_device("plug-1", protocol="tasmota")
    sent(request_changes(device, {"tele_period_s": 60, "power_on_state": 1, "power_delta": 105}), mosquitto)
    answer(device, '{"PowerDelta":110}', **TASMOTA_ANSWER)
    answer(device, '{"Command":"Unknown"}', **TASMOTA_ANSWER)  # the oldest command awaiting an answer: PowerOnState
    answer(device, '{"TelePeriod":60}', **TASMOTA_ANSWER)
    assert state_of(device) == {
        "tele_period_s": (60, 60, "applied", ""),
        "power_on_state": (1, None, "rejected", "Tasmota answered Command: Unknown"),
        "power_delta": (105, 110, "rejected", "the device kept 110 (asked 105)"),
    }
    assert ChangeSet.objects.get().state == "partial"


@pytest.mark.django_db
def test_a_tasmota_result_of_a_superseded_command_is_its_late_answer(mosquitto):
    device = make_device("plug-1", protocol="tasmota")
    sent(request_changes(device, {"tele_period_s": 60}), mosquitto)
    sent(request_changes(device, {"tele_period_s": 120}), mosquitto)
    assert answer(device, '{"TelePeriod":60}', **TASMOTA_ANSWER) == "late_answer"
    assert state_of(device)["tele_period_s"] == (120, None, "sent", "")
    answer(device, '{"TelePeriod":120}', **TASMOTA_ANSWER)
    assert state_of(device)["tele_period_s"] == (120, 120, "applied", "")


@pytest.mark.django_db
def test_tasmota_answers_to_quick_changes_back_and_forth_go_to_their_own_commands(mosquitto):
    """100, then 300, then 100 again before any answer: each answer is its own command's, in order."""
    device = make_device("plug-1", protocol="tasmota")
    for value in (100, 300, 100):
        sent(request_changes(device, {"tele_period_s": value}), mosquitto)
    newest = ChangeSet.objects.get(device=device, state="sent")
    assert answer(device, '{"TelePeriod":100}', **TASMOTA_ANSWER) == "late_answer"
    assert answer(device, '{"TelePeriod":300}', **TASMOTA_ANSWER) == "late_answer"
    assert state_of(device)["tele_period_s"] == (100, None, "sent", "")
    assert answer(device, '{"TelePeriod":100}', **TASMOTA_ANSWER) == "answer"
    assert state_of(device)["tele_period_s"] == (100, 100, "applied", "")
    assert ChangeSet.objects.get(pk=newest.pk).state == "applied"
    assert not AlertEvent.objects.exists()


@pytest.mark.django_db
def test_a_tasmota_refusal_goes_to_the_oldest_command_even_after_a_second_change(mosquitto):
    device = make_device("plug-1", protocol="tasmota")
    sent(request_changes(device, {"power_delta": 10}), mosquitto)
    sent(request_changes(device, {"tele_period_s": 20}), mosquitto)  # carries power_delta again
    answer(device, '{"Command":"Error"}', **TASMOTA_ANSWER)  # the first PowerDelta: superseded
    answer(device, '{"Command":"Error"}', **TASMOTA_ANSWER)  # the second PowerDelta
    answer(device, '{"TelePeriod":20}', **TASMOTA_ANSWER)
    assert state_of(device) == {
        "power_delta": (10, None, "rejected", "Tasmota answered Command: Error"),
        "tele_period_s": (20, 20, "applied", ""),
    }


@pytest.mark.django_db
def test_a_tasmota_value_nobody_asked_for_is_the_devices_own_change():
    device = make_device("plug-1", protocol="tasmota")
    assert answer(device, '{"TelePeriod":90}', **TASMOTA_ANSWER) == "report"
    assert state_of(device) == {"tele_period_s": (None, 90, "in_sync", "")}


@pytest.mark.django_db
def test_shelly_results_and_errors():
    device = make_device("shellyplus1pm-a1", protocol="shelly_rpc")
    request_changes(device, {"device_name": "Boiler", "initial_state": "on"})
    shelly = {"configuration": SHELLY, "protocol": "shelly_rpc"}
    answer(device, {"id": "iotwatt:1:device_name", "src": "shellyplus1pm-a1", "result": {"restart_required": False}}, **shelly)
    answer(device, {"id": "iotwatt:1:initial_state", "src": "shellyplus1pm-a1",
                    "error": {"code": -103, "message": "Invalid argument 'initial_state'!"}}, **shelly)
    assert state_of(device) == {
        "device_name": ("Boiler", "Boiler", "applied", ""),
        "initial_state": ("on", None, "rejected", "Invalid argument 'initial_state'! (code -103)"),
    }


@pytest.mark.django_db
def test_a_parameter_the_model_no_longer_defines_is_refused_at_delivery_not_sent(mosquitto):
    from control.delivery import deliver
    from control.publisher import Publisher

    device = make_device("plug-1", protocol="tasmota")
    change_set = request_changes(device, {"tele_period_s": 60, "power_delta": 105})
    model = device.device_model
    del model.parameter_map["configuration"]["parameters"]["power_delta"]
    model.save()
    with subscribed(mosquitto, "cmnd/plug-1/#") as sent:
        publish = Publisher(mosquitto.url, "5", timeout_s=10).publish
        assert deliver(change_set.pk, 0, 0, publish=publish).outcome == "sent"
        assert state_of(device)["power_delta"][2:] == ("rejected", "power_delta is no longer a parameter of the device model Parameters tasmota")
        model.parameter_map["configuration"] = {"protocol": "tasmota", "parameters": {}}
        model.save()
        assert deliver(change_set.pk, 0, 1, publish=publish).outcome == "refused"
    change_set.refresh_from_db()
    assert change_set.state == "rejected"
    assert sent == [("cmnd/plug-1/TelePeriod", "60")]
    # Refused here, not by the device: the audit says so, and no alert blames the device.
    assert set(ParameterEvent.objects.filter(device=device, kind="not_sent").values_list("key", flat=True)) == {"power_delta", "tele_period_s"}
    assert not ParameterEvent.objects.filter(device=device, kind="rejected").exists()
    assert not AlertEvent.objects.filter(kind="parameter_rejected").exists()


@contextmanager
def subscribed(mosquitto, topic_filter: str):
    """What the broker delivers on `topic_filter` while the block runs, as (topic, payload) pairs."""
    import paho.mqtt.client as mqtt

    received, ready = [], threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda c, u, message: received.append((message.topic, message.payload.decode()))
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    assert ready.wait(10)
    try:
        yield received
        time.sleep(0.3)  # QoS 1 messages already acknowledged to the publisher reach us within this
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.django_db
def test_a_bulk_change_whose_change_sets_are_superseded_ends_done():
    from assets.models import Device
    from control import bulk

    devices = [make_device(f"m{i}", tags=["pilot"]) for i in range(2)]
    change = bulk.start(devices[0].site.organisation, Device.objects.filter(tags__contains=["pilot"]), {"ct_ratio": 200}, {"tag": "pilot"})
    bulk.prepare(change.pk)
    change.refresh_from_db()
    assert change.state == "delivering"
    for device in devices:
        request_changes(device, {"ct_ratio": 400})
    change.refresh_from_db()
    assert change.state == "done" and change.finished_at is not None
    assert bulk.progress(change)["by_state"]["superseded"] == 2


@pytest.mark.django_db
def test_only_a_change_set_waiting_for_the_device_restarts_when_it_comes_online():
    from control.delivery import restart_delivery, wait_for_return

    device = make_device("m1", online=True)
    change_set = request_changes(device, {"ct_ratio": 200})
    assert restart_delivery(device.pk) == [(change_set.pk, 1)]  # pending: not sent yet
    ChangeSet.objects.filter(pk=change_set.pk).update(state="sent")
    assert restart_delivery(device.pk) == []  # a retained "online" again: the retries go on as they were
    ChangeSet.objects.filter(pk=change_set.pk).update(state="timed_out")
    DeviceParameter.objects.filter(device=device).update(state="timed_out")
    assert restart_delivery(device.pk) == []
    wait_for_return(device.pk)  # it went offline after timing out: it waits for the device again
    assert (ChangeSet.objects.get(pk=change_set.pk).state, state_of(device)["ct_ratio"][2]) == ("pending", "pending")
    assert restart_delivery(device.pk) == [(change_set.pk, 2)]


@pytest.mark.django_db
def test_an_overdue_delivery_step_is_found_for_the_sweep(settings):
    from datetime import timedelta

    from django.utils import timezone

    from control.delivery import stalled_deliveries

    settings.CONTROL_RETRY_BASE_S, settings.CONTROL_RETRY_MAX_S, settings.CONTROL_STALL_AFTER_S = 10, 120, 60
    waiting = request_changes(make_device("m1"), {"ct_ratio": 200})
    offline = request_changes(make_device("m2", online=False), {"ct_ratio": 200})
    now = timezone.now()
    assert stalled_deliveries(now) == []
    ChangeSet.objects.filter(pk=waiting.pk).update(state="sent", attempts=2, delivery_round=3, last_sent_at=now - timedelta(seconds=79))
    assert stalled_deliveries(now) == []  # its retry is due 20 s after the send: late by 59 s, within the margin
    ChangeSet.objects.filter(pk=waiting.pk).update(last_sent_at=now - timedelta(seconds=81))
    ChangeSet.objects.filter(pk=offline.pk).update(created_at=now - timedelta(hours=1))
    assert stalled_deliveries(now) == [(waiting.pk, 3, 2)]  # the offline device's change set waits for it, not for a worker


@pytest.mark.django_db
def test_a_parameter_whose_change_timed_out_goes_along_with_the_next_change():
    device = make_device("m1")
    first = request_changes(device, {"relay_default": "off"})
    ChangeSet.objects.filter(pk=first.pk).update(state="timed_out")
    DeviceParameter.objects.filter(device=device).update(state="timed_out")
    second = request_changes(device, {"ct_ratio": 50})
    assert second.values == {"relay_default": "off", "ct_ratio": 50}
    assert state_of(device)["relay_default"][2] == "pending"


@pytest.mark.django_db
def test_asking_again_for_a_value_that_did_not_arrive_is_in_the_audit(django_user_model):
    operator = django_user_model.objects.create(username="ops2")
    device = make_device("m1")
    first = request_changes(device, {"ct_ratio": 200})
    ChangeSet.objects.filter(pk=first.pk).update(state="timed_out")
    DeviceParameter.objects.filter(device=device).update(state="timed_out")
    again = request_changes(device, {"ct_ratio": 200}, actor=operator)
    event = ParameterEvent.objects.get(kind="requested", change_set=again)
    assert (event.actor, event.old_value, event.new_value, event.note) == (operator, 200, 200, "asked again")


@pytest.mark.django_db
def test_a_change_set_timing_out_again_raises_no_second_alert():
    from control.delivery import _time_out, wait_for_return

    device = make_device("m1")
    change_set = request_changes(device, {"ct_ratio": 200})
    _time_out(ChangeSet.objects.select_related("device").get(pk=change_set.pk))
    wait_for_return(device.pk)
    _time_out(ChangeSet.objects.select_related("device").get(pk=change_set.pk))
    assert AlertEvent.objects.filter(kind="parameter_timed_out").count() == 1
    assert ParameterEvent.objects.filter(kind="timed_out").count() == 2


@pytest.mark.django_db
def test_a_stopped_preparation_resumes_where_it_stopped_and_counts_each_device_once(settings):
    from datetime import timedelta

    from django.utils import timezone

    from assets.models import Device
    from control import bulk
    from control.models import BulkChange

    devices = [make_device(f"m{i}", tags=["pilot"]) for i in range(3)]
    change = bulk.start(devices[0].site.organisation, Device.objects.filter(tags__contains=["pilot"]), {"ct_ratio": 200}, {"tag": "pilot"})
    request_changes(devices[0], {"ct_ratio": 200}, bulk_change=change)  # as if the task stopped after the first device
    deleted_pk = devices[2].pk
    devices[2].delete()
    settings.CONTROL_STALL_AFTER_S = 60
    assert bulk.stalled_preparations(timezone.now()) == []
    assert bulk.stalled_preparations(timezone.now() + timedelta(seconds=61)) == [change.pk]
    assert bulk.prepare(change.pk) == 1  # the second device only
    change.refresh_from_db()
    assert change.state == "delivering" and change.skipped == {f"device #{deleted_pk}": "deleted before its change set was made"}
    assert ChangeSet.objects.filter(bulk_change=change).count() == 2
    answer(devices[1], {"version": 5, "status": "stale", "parameters": {"ct_ratio": 100}})  # sent again as version 6
    numbers = bulk.progress(change)
    assert (numbers["change_sets"], numbers["by_state"]["pending"], numbers["by_state"]["superseded"]) == (2, 2, 0)
    assert BulkChange.objects.get(pk=change.pk).state == "delivering"
