"""The built-in parameter maps decode the real device payloads in ../shared/payloads into base units.

Every expected value below is worked out by hand from the payload text (kWh x 1000 = Wh, Unix
seconds to UTC with `date -u -d @...`, local times with the zone's offset on that date), never by
the code under test. The payload files are read as they are; only placeholder topics such as
"tele/<topic>/SENSOR" get a device name.
"""

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from telemetry.decoders import (
    BASE_UNITS,
    UNIT_CONVERSIONS,
    DecodeError,
    ParameterMapError,
    decode,
    device_identifier,
    validate_parameter_map,
)
from telemetry.parameter_maps import (
    BUILT_IN_MAPS,
    EMONHUB,
    ESPHOME_STATE,
    SHELLY_EM1,
    SHELLY_GEN2_SWITCH,
    SHELLY_PRO_3EM,
    TASMOTA_SENSOR,
    tasmota_sensor_in,
)

UTC = timezone.utc
PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "payloads"
ARRIVAL = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def messages(name: str) -> list[dict]:
    return json.loads((PAYLOADS / name).read_text())["messages"]


TASMOTA = messages("tasmota_sensor_energy.json")
SHELLY_SWITCH = messages("shelly_gen2_switch_pm.json")
SHELLY_EM = messages("shelly_gen2_pro3em_em.json")
ESPHOME = messages("esphome_mqtt_state.json")
EMON = messages("openenergymonitor_emonhub_mqtt.json")


def read(topic: str, payload, parameter_map: dict):
    return decode(topic, payload, parameter_map, ARRIVAL)


def assert_decoded(readings, expected: dict[str, tuple[str, float]], time: datetime, from_arrival: bool):
    """Exactly these channel keys, with these metrics and base-unit values, all at `time`."""
    assert {r.channel_key: r.metric for r in readings} == {key: metric for key, (metric, _) in expected.items()}
    assert len(readings) == len(expected)
    for r in readings:
        assert r.value == pytest.approx(expected[r.channel_key][1], rel=1e-12, abs=1e-12), r.channel_key
        assert r.time == time and r.time.utcoffset().total_seconds() == 0
        assert r.time_from_arrival is from_arrival


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Tasmota: tele/<topic>/SENSOR and the Status 10 reply. Total kWh -> Wh.

TASMOTA_TOPICS = [
    "tele/plug1/SENSOR",
    TASMOTA[1]["topic"],  # a real topic: tele/tasmota_5014E2/SENSOR
    "tele/usplug/SENSOR",
    "stat/plug1/STATUS10",
    "tele/pzem1/SENSOR",
]
TASMOTA_EXPECTED = [
    {"energy": ("energy", 14834.0), "power": ("power", 0.0), "apparent_power": ("apparent_power", 0.0),
     "reactive_power": ("reactive_power", 0.0), "power_factor": ("power_factor", 0.0),
     "voltage": ("voltage", 230.0), "current": ("current", 0.0)},
    {"energy": ("energy", 3.0), "power": ("power", 22.0), "apparent_power": ("apparent_power", 24.0),
     "reactive_power": ("reactive_power", 11.0), "power_factor": ("power_factor", 0.90),
     "voltage": ("voltage", 246.0), "current": ("current", 0.098)},
    {"energy": ("energy", 6.0), "power": ("power", 0.0), "apparent_power": ("apparent_power", 0.0),
     "reactive_power": ("reactive_power", 0.0), "power_factor": ("power_factor", 0.0),
     "voltage": ("voltage", 121.0), "current": ("current", 0.0)},
    {"energy": ("energy", 392.0), "power": ("power", 17.0), "apparent_power": ("apparent_power", 36.0),
     "reactive_power": ("reactive_power", 32.0), "power_factor": ("power_factor", 0.47),
     "voltage": ("voltage", 230.0), "current": ("current", 0.156)},
    {"energy": ("energy", 0.0), "power": ("power", 0.0), "apparent_power": ("apparent_power", 0.0),
     "reactive_power": ("reactive_power", 0.0), "power_factor": ("power_factor", 0.0),
     "frequency": ("frequency", 50.0), "voltage": ("voltage", 231.7), "current": ("current", 0.0)},
]


@pytest.mark.parametrize("index", range(5))
def test_tasmota_built_in_map_decodes_every_capture_at_its_arrival_time(index):
    readings, problems = read(TASMOTA_TOPICS[index], TASMOTA[index]["payload"], TASMOTA_SENSOR)

    assert problems == []
    assert_decoded(readings, TASMOTA_EXPECTED[index], ARRIVAL, from_arrival=True)


@pytest.mark.parametrize(
    ("index", "zone", "expected_utc"),
    [
        (0, "Europe/Berlin", utc(2020, 3, 11, 16, 49, 33)),  # 17:49:33 CET (+01:00)
        (2, "America/New_York", utc(2022, 8, 7, 6, 39, 55)),  # 02:39:55 EDT (-04:00), the 120 V US plug
        (3, "Europe/Berlin", utc(2022, 10, 18, 10, 8, 14)),  # 12:08:14 CEST (+02:00), StatusSNS.Time
    ],
)
def test_tasmota_time_is_read_in_the_zone_the_map_gives(index, zone, expected_utc):
    readings, problems = read(TASMOTA_TOPICS[index], TASMOTA[index]["payload"], tasmota_sensor_in(zone))

    assert problems == []
    assert_decoded(readings, TASMOTA_EXPECTED[index], expected_utc, from_arrival=False)


def test_tasmota_unsynced_1970_clock_falls_back_to_arrival_when_the_map_says_so():
    readings, problems = read(TASMOTA_TOPICS[1], TASMOTA[1]["payload"], tasmota_sensor_in("Europe/Berlin"))

    assert problems == []
    assert_decoded(readings, TASMOTA_EXPECTED[1], ARRIVAL, from_arrival=True)


def test_tasmota_unsynced_1970_clock_is_refused_when_the_map_says_so():
    with pytest.raises(DecodeError, match="clock was never set"):
        read(TASMOTA_TOPICS[1], TASMOTA[1]["payload"], tasmota_sensor_in("Europe/Berlin", unsynced="refuse"))


def test_tasmota_message_without_time_is_refused_by_a_map_that_reads_time():
    with pytest.raises(DecodeError, match="'Time' is missing"):
        read(TASMOTA_TOPICS[4], TASMOTA[4]["payload"], tasmota_sensor_in("Europe/Berlin"))


def test_tasmota_local_time_repeated_at_the_autumn_dst_change_is_refused():
    payload = TASMOTA[0]["payload"].replace("2020-03-11T17:49:33", "2022-10-30T02:30:00")

    with pytest.raises(DecodeError, match="is ambiguous in Europe/Berlin: the clocks went back"):
        read(TASMOTA_TOPICS[0], payload, tasmota_sensor_in("Europe/Berlin"))


def test_tasmota_local_time_skipped_at_the_spring_dst_change_is_refused():
    payload = TASMOTA[0]["payload"].replace("2020-03-11T17:49:33", "2022-03-27T02:30:00")

    with pytest.raises(DecodeError, match="does not exist in Europe/Berlin: the clocks went forward"):
        read(TASMOTA_TOPICS[0], payload, tasmota_sensor_in("Europe/Berlin"))


def test_a_local_time_without_timezone_is_refused_at_decode_too():
    unchecked = copy.deepcopy(TASMOTA_SENSOR)
    unchecked["timestamp"] = {"path": "Time", "format": "local"}

    with pytest.raises(DecodeError, match="timezone"):
        read(TASMOTA_TOPICS[0], TASMOTA[0]["payload"], unchecked)


@pytest.mark.parametrize("bad", ["null", '"unavailable"', "NaN", '"230"'])
def test_tasmota_one_bad_value_is_a_problem_while_the_others_decode(bad):
    payload = TASMOTA[3]["payload"].replace('"Voltage":230', f'"Voltage":{bad}')

    readings, problems = read(TASMOTA_TOPICS[3], payload, TASMOTA_SENSOR)

    expected = {k: v for k, v in TASMOTA_EXPECTED[3].items() if k != "voltage"}
    assert_decoded(readings, expected, ARRIVAL, from_arrival=True)
    assert len(problems) == 1 and "'voltage'" in problems[0] and "not a finite number" in problems[0]


# Shelly Gen2 switch:0. The capture's topic prefix is "shellies/plus1pm" (user-configured, two levels);
# the built-in map has Shelly's default prefix, the device id, so a device set up like the capture
# needs its map's patterns prefixed: shown both ways.

SHELLY_ID = "shellyplus1pm-4417939341dc"  # the capture's "src"


def shelly_default_topic(capture_topic: str) -> str:
    return capture_topic.replace("shellies/plus1pm", SHELLY_ID)


def with_prefix(parameter_map: dict, prefix: str) -> dict:
    prefixed = copy.deepcopy(parameter_map)
    for topic in prefixed["topics"]:
        topic["pattern"] = prefix + topic["pattern"]
    if "status" in prefixed:
        prefixed["status"]["topic"] = prefix + prefixed["status"]["topic"]
    return prefixed


SWITCH_STATUS_1 = {"power": ("power", 0.0), "voltage": ("voltage", 232.7), "current": ("current", 0.0), "energy": ("energy", 0.0)}
SWITCH_STATUS_2 = {"power": ("power", 0.0), "voltage": ("voltage", 232.6), "current": ("current", 0.0), "energy": ("energy", 0.0)}
SHELLY_SWITCH_EXPECTED = [
    ({"voltage": ("voltage", 232.7)}, utc(2022, 8, 26, 12, 36, 25, 440000), False),  # ts 1661517385.44
    (SWITCH_STATUS_1, ARRIVAL, True),  # status topic: no time in the payload
    ({"energy": ("energy", 0.0)}, utc(2022, 8, 26, 12, 37, 1, 440000), False),  # ts 1661517421.44
    ({}, None, None),  # relay switched on: no measurement
    (SWITCH_STATUS_2, ARRIVAL, True),
    ({}, None, None),  # ts 1.61 before SNTP, and only the mqtt component: nothing to store
]


@pytest.mark.parametrize("index", range(6))
@pytest.mark.parametrize("setup", ["default-prefix", "capture-prefix"])
def test_shelly_switch_decodes_every_capture(index, setup):
    topic = SHELLY_SWITCH[index]["topic"]
    if setup == "default-prefix":
        topic, parameter_map = shelly_default_topic(topic), SHELLY_GEN2_SWITCH
    else:
        parameter_map = with_prefix(SHELLY_GEN2_SWITCH, "shellies/")
    expected, time, from_arrival = SHELLY_SWITCH_EXPECTED[index]

    readings, problems = read(topic, SHELLY_SWITCH[index]["payload"], parameter_map)

    assert problems == []
    if expected:
        assert_decoded(readings, expected, time, from_arrival)
    else:
        assert readings == []


def test_shelly_capture_topic_is_no_device_of_the_default_prefix_map():
    assert device_identifier(SHELLY_SWITCH[0]["topic"], SHELLY_GEN2_SWITCH) is None
    assert device_identifier(SHELLY_SWITCH[1]["topic"], with_prefix(SHELLY_GEN2_SWITCH, "shellies/")) == "plus1pm"


def test_shelly_values_before_the_clock_is_set_take_the_arrival_time():
    payload = SHELLY_SWITCH[5]["payload"].replace('"mqtt":{"connected":true}', '"switch:0":{"id":0,"apower":12.5}')

    readings, problems = read(f"{SHELLY_ID}/events/rpc", payload, SHELLY_GEN2_SWITCH)

    assert problems == []
    assert_decoded(readings, {"power": ("power", 12.5)}, ARRIVAL, from_arrival=True)


def test_shelly_power_is_marked_instantaneous():
    readings, _ = read(shelly_default_topic(SHELLY_SWITCH[1]["topic"]), SHELLY_SWITCH[1]["payload"], SHELLY_GEN2_SWITCH)

    assert {r.channel_key: r.sample for r in readings} == {"power": "instant", "voltage": "instant", "current": "instant", "energy": None}


# Shelly Pro 3EM (emdata:0 counters) and EM Gen3 / Pro EM (em1:n).

PRO3EM = "shellypro3em-1234567890ab"


def test_shelly_pro_3em_emdata_notification():
    readings, problems = read(f"{PRO3EM}/events/rpc", SHELLY_EM[0]["payload"], SHELLY_PRO_3EM)

    assert problems == []
    assert_decoded(readings, {
        "a_total_act_energy": ("energy", 0.06), "a_total_act_ret_energy": ("energy", 0.0),
        "b_total_act_energy": ("energy", 0.06), "b_total_act_ret_energy": ("energy", 0.01),
        "c_total_act_energy": ("energy", 26289.44), "c_total_act_ret_energy": ("energy", 131881.85),
        "total_act": ("energy", 26289.57), "total_act_ret": ("energy", 131881.86),
    }, utc(2025, 9, 5, 8, 18, 0, 210000), from_arrival=False)  # ts 1757060280.21


def test_shelly_pro_3em_emdata_status():
    readings, problems = read(f"{PRO3EM}/status/emdata:0", SHELLY_EM[1]["payload"], SHELLY_PRO_3EM)

    assert problems == []
    assert_decoded(readings, {
        "a_total_act_energy": ("energy", 39922.93), "a_total_act_ret_energy": ("energy", 1075.97),
        "b_total_act_energy": ("energy", 39898.66), "b_total_act_ret_energy": ("energy", 484.19),
        "c_total_act_energy": ("energy", 40056.66), "c_total_act_ret_energy": ("energy", 46.89),
        "total_act": ("energy", 119878.25), "total_act_ret": ("energy", 1607.05),
    }, ARRIVAL, from_arrival=True)


def test_shelly_pro_3em_em_status_per_phase():
    # No verbatim em:0 capture exists (see the payload file); this one is built from its documented keys.
    payload = json.dumps({"id": 0, "a_current": 4.1, "a_voltage": 231.2, "a_act_power": -850.5, "a_aprt_power": 900.0,
                          "a_pf": -0.94, "a_freq": 50.0, "n_current": None, "total_act_power": -850.5, "user_calibrated_phase": []})

    readings, problems = read(f"{PRO3EM}/status/em:0", payload, SHELLY_PRO_3EM)

    assert_decoded(readings, {
        "a_current": ("current", 4.1), "a_voltage": ("voltage", 231.2), "a_act_power": ("power", -850.5),
        "a_aprt_power": ("apparent_power", 900.0), "a_pf": ("power_factor", -0.94), "a_freq": ("frequency", 50.0),
        "total_act_power": ("power", -850.5),
    }, ARRIVAL, from_arrival=True)
    assert problems == ["channel 'n_current': em:0.n_current = None is not a finite number"]


def test_shelly_em_gen3_notification_with_export():
    readings, problems = read("shellyemg3-dcb4d9c564f4/events/rpc", SHELLY_EM[2]["payload"], SHELLY_EM1)

    assert problems == []
    assert_decoded(readings, {
        "em1_0_current": ("current", 16.714), "em1_0_act_power": ("power", -1899.8), "em1_0_voltage": ("voltage", 117.6),
    }, utc(2026, 9, 7, 22, 43, 18, 370000), from_arrival=False)  # ts 1788820998.37


def test_an_em1_notification_holds_nothing_for_the_pro_3em_map():
    assert read("shellyemg3-dcb4d9c564f4/events/rpc", SHELLY_EM[2]["payload"], SHELLY_PRO_3EM) == ([], [])


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("em1:0", {"em1_0_current": ("current", 0.08), "em1_0_voltage": ("voltage", 234.9), "em1_0_act_power": ("power", 0.0),
                   "em1_0_aprt_power": ("apparent_power", 18.7), "em1_0_pf": ("power_factor", 0.0), "em1_0_freq": ("frequency", 50.0)}),
        ("em1:1", {"em1_1_current": ("current", 2.598), "em1_1_voltage": ("voltage", 234.9), "em1_1_act_power": ("power", 501.8),
                   "em1_1_aprt_power": ("apparent_power", 612.4), "em1_1_pf": ("power_factor", 0.84), "em1_1_freq": ("frequency", 50.0)}),
    ],
)
def test_shelly_pro_em_components_on_their_status_topics(component, expected):
    # The file's fourth example is an HTTP GetStatus reply, not an MQTT message; over MQTT each
    # component object is published on <prefix>/status/<component>.
    status = json.loads(SHELLY_EM[3]["payload"])[component]

    readings, problems = read(f"shellyproem50-1/status/{component}", json.dumps(status), SHELLY_EM1)

    assert problems == []
    assert_decoded(readings, expected, ARRIVAL, from_arrival=True)


# ESPHome: plain text per topic, unit from the map, time of arrival.

ESPHOME_EXPECTED = [
    {"power": ("power", 1534.2)},
    {"voltage": ("voltage", 231.4)},
    {"current": ("current", 6.71)},
    {"daily_energy": ("energy", 3217.0)},  # 3.217 kWh
]


@pytest.mark.parametrize("index", range(1, 5))
def test_esphome_state_messages(index):
    readings, problems = read(ESPHOME[index]["topic"], ESPHOME[index]["payload"], ESPHOME_STATE)

    assert problems == []
    assert_decoded(readings, ESPHOME_EXPECTED[index - 1], ARRIVAL, from_arrival=True)


def test_esphome_nan_state_is_a_problem_not_a_reading():
    readings, problems = read(ESPHOME[5]["topic"], ESPHOME[5]["payload"], ESPHOME_STATE)

    assert readings == []
    assert problems == ["channel 'power': payload = nan is not a finite number"]


@pytest.mark.parametrize("payload", ["None", "unavailable", "", "inf", "1_000", "12,5", b"\xff"])
def test_esphome_states_that_are_not_numbers_are_problems(payload):
    readings, problems = read("garage-meter/sensor/power/state", payload, ESPHOME_STATE)

    assert readings == [] and len(problems) == 1 and "'power'" in problems[0]


def test_esphome_availability_topic_is_the_device_status_not_a_state_topic():
    # The device's own topic (so no other device may claim it), read by decode_status, never as readings.
    assert device_identifier(ESPHOME[0]["topic"], ESPHOME_STATE) == "garage-meter"
    with pytest.raises(DecodeError, match="matches none of the map's topic patterns"):
        read(ESPHOME[0]["topic"], ESPHOME[0]["payload"], ESPHOME_STATE)


def test_esphome_sensor_the_map_does_not_define_is_ignored():
    assert read("garage-meter/sensor/wifi_signal/state", "-61", ESPHOME_STATE) == ([], [])


# emonhub: nodevar, node CSV and JSON formats of the same emonTx4 frame.

EMON_NODEVAR_EXPECTED = [
    {},  # MSG, a message counter: not metered
    {"Vrms": ("voltage", 239.52)},
    {"P1": ("power", 412.0)},
    {"P2": ("power", -1350.0)},
    {"E1": ("energy", 1048214.0)},
    {"E2": ("energy", 205331.0)},
]
EMON_FRAME = {
    "Vrms": ("voltage", 239.52),
    "P1": ("power", 412.0), "P2": ("power", -1350.0), "P3": ("power", 0.0),
    "P4": ("power", 0.0), "P5": ("power", 0.0), "P6": ("power", 0.0),
    "E1": ("energy", 1048214.0), "E2": ("energy", 205331.0), "E3": ("energy", 0.0),
    "E4": ("energy", 0.0), "E5": ("energy", 0.0), "E6": ("energy", 0.0),
}


@pytest.mark.parametrize("index", range(6))
def test_emonhub_nodevar_messages(index):
    readings, problems = read(EMON[index]["topic"], EMON[index]["payload"], EMONHUB)

    assert problems == []
    if EMON_NODEVAR_EXPECTED[index]:
        assert_decoded(readings, EMON_NODEVAR_EXPECTED[index], ARRIVAL, from_arrival=True)
    else:
        assert readings == []


def test_emonhub_node_csv_message():
    readings, problems = read(EMON[6]["topic"], EMON[6]["payload"], EMONHUB)

    assert problems == []
    assert_decoded(readings, EMON_FRAME, ARRIVAL, from_arrival=True)
    assert device_identifier(EMON[6]["topic"], EMONHUB) == "17"  # the node id, not its name


def test_emonhub_json_message():
    readings, problems = read(EMON[7]["topic"], EMON[7]["payload"], EMONHUB)

    assert problems == []
    assert_decoded(readings, EMON_FRAME, utc(2023, 12, 3, 13, 0, 0), from_arrival=False)  # time 1701608400
    assert {r.channel_key: r.sample for r in readings if r.metric == "power"} == {f"P{i}": "interval_average" for i in range(1, 7)}


def test_emonhub_short_csv_row_reports_the_missing_columns():
    readings, problems = read("emonhub/rx/17/values", "41387,239.52,412", EMONHUB)

    assert_decoded(readings, {"Vrms": ("voltage", 239.52), "P1": ("power", 412.0)}, ARRIVAL, from_arrival=True)
    assert len(problems) == 11 and problems[0] == "channel 'P2': column 3 is missing (the row has 3 values)"


@pytest.mark.parametrize(
    ("topic", "device"),
    [("emon/emonTx4_17/P1", "emonTx4_17"), ("emon/emonTx4_17", "emonTx4_17"), ("emonhub/rx/17/values", "17"), ("emon/a/b/c", None)],
)
def test_emonhub_device_from_each_topic_form(topic, device):
    assert device_identifier(topic, EMONHUB) == device


# Map features the built-in maps do not all use.


def json_map(channels: dict, **topic) -> dict:
    return {"format": "json", "topics": [{"pattern": "dev/{device}", **topic}],
            "timestamp": {"path": "t", "format": "unix_ms"}, "channels": channels}


def test_paths_take_escaped_dots_array_indexes_and_lists():
    parameter_map = json_map({
        "dotted": {"path": "a\\.b.c", "metric": "power", "unit": "kW"},
        "indexed": {"path": "by_minute[1]", "metric": "energy", "unit": "mWh"},
        "numeric": {"path": "by_minute.2", "metric": "energy", "unit": "mWh"},
        "listed": {"path": ["x.y", 0], "metric": "current", "unit": "mA"},
    })
    payload = json.dumps({"t": 1701608400123, "a.b": {"c": 1.5}, "by_minute": [7.0, 1500.0, 250.0], "x.y": [500]})

    readings, problems = read("dev/d1", payload, parameter_map)

    assert problems == []
    assert_decoded(readings, {"dotted": ("power", 1500.0), "indexed": ("energy", 1.5), "numeric": ("energy", 0.25),
                              "listed": ("current", 0.5)}, utc(2023, 12, 3, 13, 0, 0, 123000), from_arrival=False)


def test_sign_flips_power_and_rollover_is_passed_on_in_base_units():
    parameter_map = json_map({
        "pv": {"path": "p", "metric": "power", "unit": "kW", "sign": -1, "sample": "interval_average"},
        "meter": {"path": "e", "metric": "energy", "unit": "kWh", "scale": 0.1, "rollover": 99999.9},
        "idle": {"path": "z", "metric": "reactive_power", "unit": "kvar", "sign": -1},
    })

    readings, problems = read("dev/d1", json.dumps({"t": 1701608400000, "p": -2.5, "e": 123456, "z": 0}), parameter_map)

    assert problems == []
    assert_decoded(readings, {"pv": ("power", 2500.0), "meter": ("energy", 12_345_600.0), "idle": ("reactive_power", 0.0)},
                   utc(2023, 12, 3, 13), from_arrival=False)
    by_key = {r.channel_key: r for r in readings}
    assert by_key["pv"].sample == "interval_average" and by_key["pv"].rollover is None
    assert by_key["meter"].rollover == pytest.approx(99_999_900.0)
    assert str(by_key["idle"].value) == "0.0"  # not -0.0


def test_a_fixed_channel_plain_topic_like_shelly_gen1():
    parameter_map = {"format": "plain", "topics": [
        {"pattern": "shellies/{device}/emeter/0/power", "channel": "power"},
        {"pattern": "shellies/{device}/emeter/0/total", "channel": "energy"},
    ], "channels": {"power": {"metric": "power", "unit": "W"}, "energy": {"metric": "energy", "unit": "Wh"}}}

    readings, problems = read("shellies/shellyem3-1/emeter/0/total", "1234.5", parameter_map)

    assert problems == []
    assert_decoded(readings, {"energy": ("energy", 1234.5)}, ARRIVAL, from_arrival=True)


def test_a_topic_no_pattern_matches_is_refused():
    with pytest.raises(DecodeError, match="matches none"):
        read("tele/plug1/STATE", TASMOTA[0]["payload"], TASMOTA_SENSOR)


def test_an_invalid_stored_map_is_a_decode_error_naming_the_map():
    with pytest.raises(DecodeError, match="parameter map is wrong"):
        read("tele/plug1/SENSOR", TASMOTA[0]["payload"], {"topic": "tele/{device}/SENSOR"})


def test_arrival_time_without_offset_is_refused():
    with pytest.raises(DecodeError, match="no UTC offset"):
        decode("garage-meter/sensor/power/state", "1.0", ESPHOME_STATE, datetime(2024, 6, 1, 12))


@pytest.mark.parametrize("odd", [None, 42, "x", [], {"topics": "a/{device}"}, {"topics": [{"pattern": 5}]}])
def test_device_identifier_never_crashes_on_odd_maps(odd):
    assert device_identifier("a/b", odd) is None


# Map validation


@pytest.mark.parametrize("name", sorted(BUILT_IN_MAPS))
def test_every_built_in_map_is_valid(name):
    validate_parameter_map(BUILT_IN_MAPS[name])


def test_the_zoned_tasmota_map_is_valid():
    validate_parameter_map(tasmota_sensor_in("America/New_York", unsynced="refuse"))


def test_every_unit_measures_a_metric_with_a_base_unit_the_channel_model_knows():
    from assets.models import Channel

    assert {metric for metric, _ in UNIT_CONVERSIONS.values()} == set(BASE_UNITS)
    assert {str(metric): unit for metric, unit in Channel.BASE_UNITS.items()} == BASE_UNITS
    assert set(Channel.Metric.values) == set(BASE_UNITS)


def channel_map(**channel) -> dict:
    return {"format": "json", "topic": "dev/{device}", "timestamp": {"path": "t", "format": "unix"},
            "channels": {"c": {"path": "v", "metric": "power", "unit": "W", **channel}}}


def with_changes(base: dict, **changes) -> dict:
    changed = copy.deepcopy(base)
    changed.update(changes)
    return changed


ESPHOME_TOPIC_ONLY = {k: v for k, v in ESPHOME_STATE.items() if k != "topic"}
MALFORMED = [
    (["x"], "must be a JSON object"),
    (with_changes(TASMOTA_SENSOR, topc="tele/{device}"), r"unknown key\(s\) \['topc'\]"),
    (with_changes(TASMOTA_SENSOR, topic="tele/{device}/SENSOR"), 'either "topic"'),
    (with_changes(TASMOTA_SENSOR, topics=[]), '"topics" must be a non-empty list'),
    (with_changes(TASMOTA_SENSOR, topics=[42]), r"topics\[0\] must be a topic pattern"),
    (with_changes(TASMOTA_SENSOR, topics=["tele/+/{device}"]), "MQTT wildcard"),
    (with_changes(TASMOTA_SENSOR, topics=["tele/{device}/{sensor}"]), r"only \{device\} and \{channel\}"),
    (with_changes(TASMOTA_SENSOR, topics=["tele/{device}"], format="xml"), r'"format" must be one of'),
    (with_changes(TASMOTA_SENSOR, topics=[{"pattern": "tele/{device}", "fromat": "json"}]), r"unknown key\(s\) \['fromat'\]"),
    (with_changes(ESPHOME_TOPIC_ONLY, topic="{device}/sensor/power/state"), "exactly one of them"),
    (with_changes(TASMOTA_SENSOR, topics=["tele/{device}/{channel}"]), "only plain-value topics"),
    (with_changes(ESPHOME_TOPIC_ONLY, topics=[{"pattern": "{device}/{channel}", "timestamp": {"path": "t", "format": "unix"}}]), "holds no time"),
    (with_changes(ESPHOME_TOPIC_ONLY, topics=[{"pattern": "{device}/{channel}", "root": "a"}]), '"root" and "wrap" apply to JSON'),
    (with_changes(ESPHOME_TOPIC_ONLY, topics=[{"pattern": "{device}/p", "channel": "pwr"}]), "does not define"),
    (with_changes(TASMOTA_SENSOR, timestamp=None), '"timestamp" must be'),
    (with_changes(TASMOTA_SENSOR, timestamp={"path": "Time", "format": "local"}), 'must give the device\'s "timezone"'),
    (with_changes(TASMOTA_SENSOR, timestamp={"path": "Time", "format": "local", "timezone": "Mars/Olympus"}), "not an IANA time zone"),
    (with_changes(TASMOTA_SENSOR, timestamp={"path": "Time", "format": "iso8601", "timezone": "UTC"}), 'applies to the "local" format only'),
    (with_changes(TASMOTA_SENSOR, timestamp={"path": "Time", "format": "unix", "unsynced": "maybe"}), '"unsynced" must be|unsynced must be'),
    (with_changes(TASMOTA_SENSOR, timestamp={"source": "arrival", "path": "Time"}), "takes no other keys"),
    (with_changes(TASMOTA_SENSOR, channels={}), '"channels" must map channel keys'),
    (with_changes(EMONHUB, channels={"P1": {"metric": "power", "unit": "W"}}), 'no channel gives its "column"'),
    (with_changes({k: v for k, v in TASMOTA_SENSOR.items() if k != "timestamp"}, format="iotwatt_native",
                  timestamp={"source": "arrival"}, channels_path="c", quantities={"w": {"metric": "power", "unit": "W"}}), "carries its time"),
    (channel_map(unit="kWh"), "unit kWh measures energy, not 'power'"),
    (channel_map(unit="kVAh"), r"channels\.c\.unit must be one of"),
    (channel_map(unit=["W"]), r"channels\.c\.unit must be one of"),
    (channel_map(scale=0), r"channels\.c\.scale must be a non-zero number"),
    (channel_map(scale=10**400), r"channels\.c\.scale must be a non-zero number"),
    (channel_map(scale=1e308, unit="kW"), "out of range"),
    (channel_map(sign=2), r"channels\.c\.sign must be 1"),
    (channel_map(sign=True), r"channels\.c\.sign must be 1"),
    (channel_map(metric="energy", unit="Wh", sign=-1), "cannot be flipped"),
    (channel_map(sample="average"), 'sample must be "instant" or "interval_average"'),
    (channel_map(metric="energy", unit="Wh", sample="instant"), '"sample" applies to power'),
    (channel_map(rollover=1000), '"rollover" applies to energy counters only'),
    (channel_map(metric="energy", unit="Wh", rollover=-5), "rollover must be a positive number in Wh"),
    (channel_map(path="a..b"), "empty key"),
    (channel_map(path="a[x]"), "not an array index"),
    (channel_map(path="a\\"), "lone backslash"),
    (channel_map(path=42), "must be a dotted path"),
    (channel_map(path=["a", True]), "holds keys"),
    (channel_map(column=-1), "column must be a value's position"),
    (channel_map(unti="W"), r"unknown key\(s\) \['unti'\]"),
    ({"format": "json", "topic": "dev/{device}", "timestamp": {"path": "t", "format": "unix"}, "channels": {"c": "W"}}, "must be an object like"),
]


@pytest.mark.parametrize(("parameter_map", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_map_is_refused_with_a_clear_message(parameter_map, message):
    with pytest.raises(ParameterMapError, match=message):
        validate_parameter_map(parameter_map)


@pytest.mark.parametrize("odd", [None, 1, "text", 1.5, True, [], {"topic": None}, {"topics": None}, {"topics": [None]},
                                 {"format": []}, {"topic": ["a/{device}"]}, {"topic": "a/{device}", "timestamp": []}])
def test_odd_input_types_are_refused_as_map_errors_never_crashes(odd):
    with pytest.raises(ParameterMapError):
        validate_parameter_map(odd)


# Through ingest: the device is found under any of its model's topic patterns, and readings are stored in base units.


@pytest.mark.django_db
def test_ingest_stores_a_shelly_device_from_both_of_its_topics():
    from assets.models import Channel, Device, DeviceModel, Organisation, Site
    from telemetry.ingest import ingest_messages
    from telemetry.models import DeadLetter, Reading

    organisation = Organisation.objects.create(slug="formats", name="Formats")
    site = Site.objects.create(organisation=organisation, name="Lab", timezone="Europe/Berlin")
    model = DeviceModel.objects.create(key="shelly-plus-1pm", name="Shelly Plus 1PM", parameter_map=SHELLY_GEN2_SWITCH)
    model.full_clean()
    device = Device.objects.create(site=site, device_model=model, identifier=SHELLY_ID)
    channels = {
        key: Channel.objects.create(device=device, key=key, metric=metric)
        for key, metric in [("power", "power"), ("voltage", "voltage"), ("current", "current"), ("energy", "energy")]
    }
    arrival = "2022-08-26T12:36:30+00:00"
    batch = [{"topic": shelly_default_topic(SHELLY_SWITCH[i]["topic"]), "payload": SHELLY_SWITCH[i]["payload"], "received_at": arrival}
             for i in (0, 1)]

    result = ingest_messages(batch)

    assert (result.readings, result.dead_letters) == (5, 0) and not DeadLetter.objects.exists()
    stored = {(r.channel_id, r.time.isoformat(), r.value) for r in Reading.objects.all()}
    assert stored == {
        (channels["voltage"].id, "2022-08-26T12:36:25.440000+00:00", 232.7),  # NotifyStatus, ts 1661517385.44
        (channels["power"].id, arrival, 0.0),  # status topic: stamped on arrival
        (channels["voltage"].id, arrival, 232.7),
        (channels["current"].id, arrival, 0.0),
        (channels["energy"].id, arrival, 0.0),
    }
