"""A missing or non-numeric value is never a reading of 0, in every built-in map's formats. No database.

E02 and E04 (../shared/cases/energy-cases.md): a counter whose payload said null or "unavailable"
was booked as 0, so the next good value looked like a reset plus the whole register as today's energy,
or the energy across the gap was dropped. Here each such value must give no reading of its channel
and one problem naming it, while the message's other channels still decode.
"""

from datetime import datetime, timezone

import pytest

from telemetry.decoders import decode
from telemetry.influx_upload import messages_from_lines
from telemetry.parameter_maps import (
    EMONHUB,
    ESPHOME_STATE,
    IOTAWATT_INFLUX,
    IOTWATT_NATIVE,
    SHELLY_GEN2_SWITCH,
    SHELLY_PRO_3EM,
    TASMOTA_SENSOR,
)

UTC = timezone.utc
ARRIVAL = datetime(2024, 1, 20, 9, 0, 20, tzinfo=UTC)

# As JSON text: what devices and bridges send for a sensor that has no value.
BAD_JSON = ["null", '"unavailable"', '"unknown"', '""', "NaN", "Infinity", '"n/a"', '"15508.45"', "true", "[]", "{}"]
# As plain text (a whole payload, a CSV cell, a line-protocol field value).
BAD_TEXT = ["null", "unavailable", "unknown", "", "NaN", "nan", "inf", "n/a", "None", "0x10", "1_000", "15508.45 kWh"]


def assert_no_reading_of(key: str, readings, problems, expected_others: dict[str, float]):
    """No reading of `key` (so never a 0), one problem naming it, and the other channels at their values."""
    assert key not in {r.channel_key for r in readings}
    assert {r.channel_key: r.value for r in readings} == expected_others
    assert len(problems) == 1 and repr(key) in problems[0], problems


# Each case: the map, a topic, the payload with {bad} where the bad value goes, the channel that holds
# it, and the other channels' values in base units.
JSON_CASES = {
    "tasmota power": (TASMOTA_SENSOR, "tele/plug1/SENSOR",
                      '{"Time":"2024-01-20T10:00:20","ENERGY":{"Total":15508.42,"Power":{bad},"Voltage":230}}',
                      "power", {"energy": 15_508_420.0, "voltage": 230.0}),
    "tasmota counter": (TASMOTA_SENSOR, "tele/plug1/SENSOR", '{"Time":"2024-01-20T10:00:20","ENERGY":{"Total":{bad},"Power":35}}',
                        "energy", {"power": 35.0}),
    "shelly gen2 switch": (SHELLY_GEN2_SWITCH, "shellyplus1pm-1/events/rpc",
                           '{"src":"shellyplus1pm-1","method":"NotifyStatus","params":{"ts":1705744820.0,'
                           '"switch:0":{"id":0,"aenergy":{"total":{bad}},"apower":35.2}}}',
                           "energy", {"power": 35.2}),
    "shelly pro 3em": (SHELLY_PRO_3EM, "shellypro3em-1/status/emdata:0",
                       '{"id":0,"a_total_act_energy":1200.5,"total_act":{bad},"total_act_ret":0.0}',
                       "total_act", {"a_total_act_energy": 1200.5, "total_act_ret": 0.0}),
    "emonhub json": (EMONHUB, "emon/emonTx4_17", '{"time":1705744820,"Vrms":239.52,"P1":412,"E1":{bad}}',
                     "E1", {"Vrms": 239.52, "P1": 412.0}),
    "native iotwatt": (IOTWATT_NATIVE, "iotwatt/m1/telemetry",
                       '{"ts":"2024-01-20T10:00:20+01:00","channels":{"main":{"energy_kwh":{bad}},"heat_pump":{"energy_kwh":2.5}}}',
                       "main", {"heat_pump": 2500.0}),
}
# MSG, Vrms, P1..P6, E1..E6 in emonhub's node CSV: E1 (column 8) is the bad one.
CSV_ROW = ",".join(["41387", "239.52", "412", "0", "0", "0", "0", "0", "{bad}", "205331", "0", "0", "0", "0"])
TEXT_CASES = {
    "esphome": (ESPHOME_STATE, "garage-meter/sensor/energy/state", "{bad}", "energy", {}),
    "emonhub nodevar": (EMONHUB, "emon/emonTx4_17/E1", "{bad}", "E1", {}),
    "emonhub node csv": (EMONHUB, "emonhub/rx/17/values", CSV_ROW, "E1", {
        "Vrms": 239.52, "P1": 412.0, **{f"P{i}": 0.0 for i in range(2, 7)}, "E2": 205331.0, **{f"E{i}": 0.0 for i in range(3, 7)},
    }),
}


# JSON payloads get the JSON forms of a missing value, bare-value payloads the text forms.
EVERY_CASE = [(name, bad) for name in sorted(JSON_CASES) for bad in BAD_JSON] + [(name, bad) for name in sorted(TEXT_CASES) for bad in BAD_TEXT]


@pytest.mark.parametrize(("case", "bad"), EVERY_CASE)
def test_a_missing_or_non_numeric_value_gives_no_reading_and_one_problem(case, bad):
    parameter_map, topic, template, key, others = {**JSON_CASES, **TEXT_CASES}[case]

    readings, problems = decode(topic, template.replace("{bad}", bad), parameter_map, ARRIVAL)

    assert_no_reading_of(key, readings, problems, others)


# IoTaWatt's InfluxDB lines, turned into native messages and read with the iotawatt_influx map


# A space ends a line-protocol field, so values with one are unreadable lines, not values.
@pytest.mark.parametrize("bad", [*(text for text in BAD_TEXT if " " not in text), '"unavailable"', '""', "t", "false"])
def test_iotawatt_influx(bad):
    body = (f"mains,device=iotawatt1,units=Watts value={bad} 1705744800\n"
            "mains,device=iotawatt1,units=Volts value=239.5 1705744800\n")
    upload = messages_from_lines(body, "s", ARRIVAL)
    assert upload.bad_lines == [] and len(upload.messages) == 1
    message = upload.messages[0]

    readings, problems = decode(message["topic"], message["payload"], IOTAWATT_INFLUX, ARRIVAL)

    assert {(r.metric, r.value) for r in readings} == {("voltage", 239.5)}
    assert len(problems) == 1 and "'mains'" in problems[0] and "Watts" in problems[0], problems


# A null or text standing where the object of values should be: the values are unavailable, not absent


@pytest.mark.parametrize("bad", ["null", '"unavailable"', "0"])
def test_an_unavailable_object_of_values_is_a_problem_of_each_channel_inside_it(bad):
    payload = '{"src":"shellyplus1pm-1","method":"NotifyStatus","params":{"ts":1705744820.0,"switch:0":{"aenergy":%s,"apower":35.2}}}' % bad

    readings, problems = decode("shellyplus1pm-1/events/rpc", payload, SHELLY_GEN2_SWITCH, ARRIVAL)

    assert_no_reading_of("energy", readings, problems, {"power": 35.2})
    assert problems == [f"channel 'energy': params.switch:0.aenergy.total has no value: params.switch:0.aenergy is {bad} where an object was expected"]


def test_a_null_tasmota_energy_object_gives_one_problem_per_channel_and_no_reading():
    readings, problems = decode("tele/plug1/SENSOR", '{"Time":"2024-01-20T10:00:20","ENERGY":null}', TASMOTA_SENSOR, ARRIVAL)

    assert readings == []
    assert len(problems) == len(TASMOTA_SENSOR["channels"]) and all("ENERGY is null where an object was expected" in p for p in problems)


def test_an_object_that_is_simply_not_sent_is_no_problem():
    # Shelly's NotifyStatus carries only what changed: no "aenergy" key is no news, not a missing value.
    payload = '{"src":"shellyplus1pm-1","method":"NotifyStatus","params":{"ts":1705744820.0,"switch:0":{"apower":35.2}}}'

    assert decode("shellyplus1pm-1/events/rpc", payload, SHELLY_GEN2_SWITCH, ARRIVAL)[1] == []
