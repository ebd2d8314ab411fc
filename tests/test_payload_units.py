"""Units named by the payload ("unit_path"): converted with the declared-unit table, a wrong one is a problem, never a scaled reading.

E09 (../shared/cases/energy-cases.md): a Wh register read as kWh made costs 1000x too high.
E10: a W peak read as kW made the capacity charge 1000x too high.
"""

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reports.tariffs import CapacityCharge, FlatRate, Tariff, capacity_cost, energy_cost
from telemetry.decoders import DecodedReading, ParameterMapError, decode, validate_parameter_map

UTC = timezone.utc
ARRIVAL = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)  # the payloads carry their time; never used
TOPIC = "meters/m1/reading"


def units_map(**extra_channels) -> dict:
    return {
        "format": "json",
        "topic": "meters/{device}/reading",
        "timestamp": {"path": "ts", "format": "iso8601"},
        "channels": {
            "energy": {"path": "energy.value", "unit_path": "energy.unit", "metric": "energy"},
            "power": {"path": "power.value", "unit_path": "power.unit", "metric": "power", "sample": "interval_average"},
            **extra_channels,
        },
    }


def read(document: dict, parameter_map=None):
    return decode(TOPIC, json.dumps(document), parameter_map or units_map(), ARRIVAL)


def e09(value, unit: str, ts: str) -> dict:
    return {"ts": ts, "energy": {"value": value, "unit": unit}}


E09_TIMES = ("2025-01-10T00:00:00+01:00", "2025-01-11T00:00:00+01:00")


# E09: Wh and kWh registers give the same Wh


@pytest.mark.parametrize(("unit", "values"), [("Wh", (1523400, 1535700)), ("kWh", (1523.4, 1535.7)), ("MWh", (1.5234, 1.5357))])
def test_e09_counters_in_the_unit_the_payload_names_decode_to_the_same_wh(unit, values):
    decoded = [read(e09(value, unit, ts)) for value, ts in zip(values, E09_TIMES)]

    assert decoded == [
        ([DecodedReading("energy", "energy", datetime(2025, 1, 9, 23, tzinfo=UTC), 1_523_400.0)], []),
        ([DecodedReading("energy", "energy", datetime(2025, 1, 10, 23, tzinfo=UTC), 1_535_700.0)], []),
    ]


@pytest.mark.parametrize(("unit", "values"), [("Wh", (1523400, 1535700)), ("kWh", (1523.4, 1535.7))])
def test_e09_the_day_between_the_two_readings_is_12_3_kwh_and_costs_3_075_eur(unit, values):
    (first,), (second,) = (read(e09(value, unit, ts))[0] for value, ts in zip(values, E09_TIMES))

    cost = energy_cost(Tariff("EUR", FlatRate("0.25")), [(first.time, second.time, second.value - first.value)], "Europe/Brussels")

    assert cost.energy_kwh == Decimal("12.3")  # not 12,300 kWh
    assert (cost.exact_total, cost.total) == (Decimal("3.075"), Decimal("3.08"))


def test_a_milliwatt_hour_unit_is_not_a_megawatt_hour():
    (small,), _ = read(e09(1500, "mWh", E09_TIMES[0]))
    (large,), _ = read(e09(1500, "MWh", E09_TIMES[0]))

    assert (small.value, large.value) == (1.5, 1_500_000_000.0)


# E10: W and kW power


@pytest.mark.parametrize(("value", "unit"), [(4481, "W"), (4.481, "kW")])
def test_e10_a_peak_in_w_or_kw_decodes_to_4481_w_and_costs_22_41(value, unit):
    readings, problems = read({"ts": "2026-05-09T19:00:00+02:00", "power": {"value": value, "unit": unit}})

    assert problems == [] and [(r.metric, r.value, r.sample) for r in readings] == [("power", 4481.0, "interval_average")]
    charge = capacity_cost(Tariff("EUR", FlatRate("0.25"), CapacityCharge("5.00")), readings[0].value)
    assert charge.peak_kw == Decimal("4.481") and charge.amount == Decimal("22.41")


# A wrong unit is a problem of that reading alone


ENERGY_UNITS = "it must be one of mWh, Wh, kWh, MWh"
POWER_UNITS = "it must be one of W, kW, MW"


@pytest.mark.parametrize(
    ("energy_unit", "shown"),
    [("W", "'W'"), ("kW", "'kW'"), ("kwh", "'kwh'"), ("Joules", "'Joules'"), ("", "''"), (None, "None (not text)"), (1000, "1000 (not text)")],
)
def test_an_energy_counter_in_a_unit_that_is_not_energy_is_a_problem_and_the_power_still_decodes(energy_unit, shown):
    document = {"ts": E09_TIMES[0], "energy": {"value": 1523400, "unit": energy_unit}, "power": {"value": 350, "unit": "W"}}

    readings, problems = read(document)

    assert [(r.channel_key, r.value) for r in readings] == [("power", 350.0)]
    assert problems == [f"channel 'energy': energy unit at energy.unit is {shown}; {ENERGY_UNITS}"]


def test_power_in_kwh_is_a_problem_naming_the_power_units_and_the_counter_still_decodes():
    document = {"ts": E09_TIMES[0], "energy": {"value": 1523.4, "unit": "kWh"}, "power": {"value": 4.481, "unit": "kWh"}}

    readings, problems = read(document)

    assert [(r.channel_key, r.value) for r in readings] == [("energy", 1_523_400.0)]
    assert problems == [f"channel 'power': power unit at power.unit is 'kWh'; {POWER_UNITS}"]


def test_a_value_without_its_unit_is_a_problem_not_a_reading_in_some_default_unit():
    readings, problems = read({"ts": E09_TIMES[0], "energy": {"value": 1523400}})

    assert readings == []
    assert problems == [f"channel 'energy': energy unit at energy.unit is missing; {ENERGY_UNITS}"]


@pytest.mark.parametrize("value", [None, "unavailable", "unknown", "", "1523400", float("nan")])
def test_a_value_that_is_not_a_number_is_a_problem_even_with_a_good_unit(value):
    readings, problems = read({"ts": E09_TIMES[0], "energy": {"value": value, "unit": "Wh"}})

    assert readings == []
    assert len(problems) == 1 and "'energy'" in problems[0] and "not a finite number" in problems[0]


def test_a_channel_absent_from_the_message_is_no_problem():
    assert read({"ts": E09_TIMES[0], "power": {"value": 350, "unit": "W"}})[1] == []


def test_one_unit_field_may_serve_several_channels_and_scale_applies_in_that_unit():
    parameter_map = units_map(
        imported={"path": "import", "unit_path": "unit", "metric": "energy"},
        exported={"path": "export", "unit_path": "unit", "metric": "energy", "scale": 0.1},
    )

    readings, problems = read({"ts": E09_TIMES[0], "unit": "kWh", "import": 12.5, "export": 30}, parameter_map)

    assert problems == []
    assert {r.channel_key: r.value for r in readings} == {"imported": 12_500.0, "exported": 3_000.0}


# The map


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"path": "e.value", "unit_path": "e.unit", "unit": "Wh", "metric": "energy"}, 'give "unit" .* or "unit_path" .*, not both'),
        ({"path": "e.value", "unit_path": "e.unit", "metric": "enrgy"}, r"channels\.c\.metric must be one of \['energy'"),
        ({"path": "e.value", "unit_path": "e.unit"}, r"channels\.c\.metric must be one of"),
        ({"path": "e.value", "unit_path": "", "metric": "energy"}, r"channels\.c\.unit_path must name the field"),
        ({"path": "e.value", "unit_path": 42, "metric": "energy"}, r"channels\.c\.unit_path must be a dotted path"),
        ({"path": "e.value", "unit_path": "e..unit", "metric": "energy"}, r"channels\.c\.unit_path: path 'e\.\.unit' has an empty key"),
        ({"path": "e.value", "unit_path": "e.unit", "metric": "energy", "rollover": 100000}, '"rollover" is a width in the map\'s "unit"'),
        ({"path": "e.value", "unit_path": "e.unit", "metric": "energy", "sign": -1}, "cannot be flipped"),
        ({"path": "e.value", "unit_path": "e.unit", "metric": "energy", "sample": "instant"}, '"sample" applies to power'),
    ],
)
def test_a_wrong_unit_path_channel_is_refused_with_a_clear_message(channel, message):
    parameter_map = {"format": "json", "topic": "m/{device}", "timestamp": {"path": "ts", "format": "iso8601"}, "channels": {"c": channel}}

    with pytest.raises(ParameterMapError, match=message):
        validate_parameter_map(parameter_map)


@pytest.mark.parametrize(
    "topic",
    [{"pattern": "m/{device}/{channel}", "format": "plain"}, {"pattern": "m/{device}/c", "format": "plain", "channel": "c"}],
)
def test_a_unit_path_on_a_channel_a_plain_topic_carries_is_refused(topic):
    parameter_map = {"format": "json", "topics": ["m/{device}", topic], "timestamp": {"path": "ts", "format": "iso8601"},
                     "channels": {"c": {"path": "v", "unit_path": "u", "metric": "power"}}}

    with pytest.raises(ParameterMapError, match=r"channels\.c\.unit_path: topic .* bare plain value, with no unit to read"):
        validate_parameter_map(parameter_map)


def test_a_unit_path_on_a_csv_column_is_refused_but_allowed_beside_csv_columns_of_other_channels():
    channels = {"c": {"path": "v", "unit_path": "u", "metric": "power"}, "d": {"metric": "power", "unit": "W", "column": 0}}
    topics = ["m/{device}", {"pattern": "m/{device}/csv", "format": "csv"}]
    parameter_map = {"format": "json", "topics": topics, "timestamp": {"path": "ts", "format": "iso8601"}, "channels": channels}

    validate_parameter_map(parameter_map)
    channels["c"]["column"] = 1
    with pytest.raises(ParameterMapError, match="bare csv value"):
        validate_parameter_map(parameter_map)


def test_a_native_quantity_takes_no_unit_path():
    parameter_map = {"topic": "iotwatt/{device}/telemetry", "timestamp": {"path": "ts", "format": "iso8601"}, "channels_path": "channels",
                     "quantities": {"energy": {"metric": "energy", "unit_path": "unit"}}}

    with pytest.raises(ParameterMapError, match=r"unknown key\(s\) \['unit_path'\]"):
        validate_parameter_map(parameter_map)


# Through ingest: a wrong unit ends in a dead letter, the message's good readings are stored


@pytest.mark.django_db
def test_ingest_stores_the_good_reading_and_dead_letters_the_wrong_unit():
    from assets.models import Channel, Device, DeviceModel, Organisation, Site
    from telemetry.ingest import ingest_messages
    from telemetry.models import DeadLetter, Reading

    organisation = Organisation.objects.create(slug="units", name="Units")
    site = Site.objects.create(organisation=organisation, name="Brussels office", timezone="Europe/Brussels")
    model = DeviceModel.objects.create(key="unit-naming-meter", name="Unit-naming meter", parameter_map=units_map())
    model.full_clean()
    device = Device.objects.create(site=site, device_model=model, identifier="m1")
    Channel.objects.create(device=device, key="energy", metric="energy")
    power = Channel.objects.create(device=device, key="power", metric="power")
    payload = json.dumps({"ts": "2026-05-09T19:00:00+02:00", "energy": {"value": 1523400, "unit": "W"}, "power": {"value": 4481, "unit": "W"}})

    result = ingest_messages([{"topic": TOPIC, "payload": payload, "received_at": "2026-05-09T17:00:05+00:00"}])

    assert (result.readings, result.dead_letters) == (1, 1)
    assert [(r.channel_id, r.value) for r in Reading.objects.all()] == [(power.id, 4481.0)]
    letter = DeadLetter.objects.get()
    assert letter.topic == TOPIC and letter.payload == payload
    assert letter.reason == f"channel 'energy': energy unit at energy.unit is 'W'; {ENERGY_UNITS}"
