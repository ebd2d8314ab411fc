"""Payload decoding with the native IotWatt parameter map, map validation, and devices from topics. No database."""

import copy
import json
from datetime import datetime, timezone

import pytest

from telemetry.decoders import (
    DecodedReading,
    DecodeError,
    ParameterMapError,
    decode,
    device_identifier,
    validate_parameter_map,
)
from telemetry.parameter_maps import IOTWATT_NATIVE

UTC = timezone.utc
TS = "2016-01-01T01:00:00Z"
TS_UTC = datetime(2016, 1, 1, 1, 0, tzinfo=UTC)


def native(channels: dict, ts=TS) -> str:
    return json.dumps({"ts": ts, "channels": channels})


TOPIC = "iotwatt/m1/telemetry"
ARRIVAL = datetime(2016, 1, 1, 1, 0, 5, tzinfo=UTC)  # the native format carries its own time; never used


def decode_native(payload):
    return decode(TOPIC, payload, IOTWATT_NATIVE, ARRIVAL)


def values(readings) -> dict[tuple[str, str], float]:
    return {(r.channel_key, r.metric): r.value for r in readings}


# What decodes


def test_one_message_decodes_many_channels():
    payload = native({
        "grid_import": {"energy_kwh": 2912.808, "power_w": 359.0},
        "solar": {"energy_wh": 120.0},
        "heat_pump": {"power_kw": 1.5},
    })

    readings, problems = decode_native(payload)

    assert problems == []
    assert set(values(readings)) == {
        ("grid_import", "energy"),
        ("grid_import", "power"),
        ("solar", "energy"),
        ("heat_pump", "power"),
    }


def test_kwh_is_stored_as_wh():
    readings, _ = decode_native(native({"grid_import": {"energy_kwh": 2912.808}}))

    assert readings[0].metric == "energy"
    assert readings[0].value == pytest.approx(2_912_808.0)


def test_kw_is_stored_as_w():
    readings, _ = decode_native(native({"heat_pump": {"power_kw": 1.5}}))

    assert readings[0].metric == "power"
    assert readings[0].value == 1500.0


def test_base_units_pass_unchanged():
    readings, _ = decode_native(native({"solar": {"energy_wh": 120.0, "power_w": 359.0}}))

    assert values(readings) == {("solar", "energy"): 120.0, ("solar", "power"): 359.0}


def test_integer_values_decode_as_floats():
    readings, _ = decode_native(native({"solar": {"energy_wh": 7}}))

    assert readings[0].value == 7.0
    assert isinstance(readings[0].value, float)


def test_every_reading_of_a_message_carries_the_payload_timestamp():
    readings, _ = decode_native(native({"a": {"energy_wh": 1.0}, "b": {"power_w": 2.0}}))

    assert {r.time for r in readings} == {TS_UTC}


def test_a_timestamp_with_an_offset_is_converted_to_utc():
    readings, _ = decode_native(native({"a": {"energy_wh": 1.0}}, ts="2024-05-10T08:00:00+02:00"))

    assert readings[0].time == datetime(2024, 5, 10, 6, 0, tzinfo=UTC)
    assert readings[0].time.utcoffset().total_seconds() == 0


def test_a_timestamp_with_a_quarter_hour_offset_is_converted_to_utc():
    readings, _ = decode_native(native({"a": {"energy_wh": 1.0}}, ts="2024-06-01T00:00:00+05:45"))

    assert readings[0].time == datetime(2024, 5, 31, 18, 15, tzinfo=UTC)


def test_a_bytes_payload_decodes_like_text():
    payload = native({"a": {"energy_kwh": 1.0}})

    assert decode_native(payload.encode()) == decode_native(payload)


def test_decoded_reading_names_channel_metric_time_and_base_value():
    readings, _ = decode_native(native({"grid_import": {"power_kw": 0.25}}))

    assert readings == [DecodedReading("grid_import", "power", TS_UTC, 250.0)]


# Whole-message refusals


def test_a_timestamp_without_offset_is_refused():
    with pytest.raises(DecodeError, match="no UTC offset"):
        decode_native(native({"a": {"energy_wh": 1.0}}, ts="2024-03-31T02:30:00"))


def test_a_timestamp_that_is_not_iso_8601_is_refused():
    with pytest.raises(DecodeError, match="not ISO 8601"):
        decode_native(native({"a": {"energy_wh": 1.0}}, ts="yesterday at noon"))


@pytest.mark.parametrize("ts", ["2016-01-01T01:00:00Z\x00", "2016-01-01T01:00:00Z\x00junk"])
def test_a_timestamp_with_a_nul_is_refused_though_the_text_before_it_is_iso_8601(ts):
    with pytest.raises(DecodeError, match="not ISO 8601"):
        decode_native(native({"a": {"energy_wh": 1.0}}, ts=ts))


def test_a_numeric_timestamp_is_refused_by_an_iso_8601_map():
    with pytest.raises(DecodeError, match="not an ISO 8601 string"):
        decode_native(native({"a": {"energy_wh": 1.0}}, ts=1451610000))


def test_a_payload_that_is_not_json_is_refused():
    with pytest.raises(DecodeError, match="not JSON"):
        decode_native("ts=2016-01-01T01:00:00Z grid_import=2912.808")


def test_a_payload_that_is_not_utf8_is_refused_as_not_json():
    with pytest.raises(DecodeError, match="not JSON"):
        decode_native(b'{"ts": "\xff"}')


def test_an_integer_too_long_for_python_to_read_is_refused_as_not_json():
    """Python refuses to convert more than 4,300 digits (a guard against slow conversions) with a plain ValueError."""
    with pytest.raises(DecodeError, match="not JSON"):
        decode_native('{"ts": "%s", "channels": {"a": {"energy_wh": %s}}}' % (TS, "9" * 5000))


@pytest.mark.parametrize("document", ["[1, 2]", "42", '"text"', "null"])
def test_a_json_document_that_is_not_an_object_is_refused(document):
    with pytest.raises(DecodeError, match="not a JSON object"):
        decode_native(document)


def test_a_payload_without_timestamp_is_refused_naming_the_field():
    with pytest.raises(DecodeError, match="'ts' is missing"):
        decode_native(json.dumps({"channels": {"a": {"energy_wh": 1.0}}}))


def test_a_payload_without_channels_is_refused_naming_the_field():
    with pytest.raises(DecodeError, match="'channels' is missing"):
        decode_native(json.dumps({"ts": TS}))


def test_channels_that_are_not_an_object_are_refused():
    with pytest.raises(DecodeError, match="not an object of channels"):
        decode_native(json.dumps({"ts": TS, "channels": [{"energy_wh": 1.0}]}))


# One bad channel does not spoil the others


@pytest.mark.parametrize(
    "raw_value",
    ["NaN", "Infinity", "-Infinity", "1e999", "null", '"12.5"', '"unavailable"', "true", "false"],
)
def test_a_bad_value_is_a_problem_while_other_channels_still_decode(raw_value):
    payload = '{"ts": "%s", "channels": {"bad": {"energy_kwh": %s}, "good": {"energy_kwh": 2.0}}}' % (TS, raw_value)

    readings, problems = decode_native(payload)

    assert values(readings) == {("good", "energy"): 2000.0}
    assert len(problems) == 1
    assert "'bad'" in problems[0] and "not a finite number" in problems[0]


def test_a_bad_value_does_not_spoil_the_other_quantity_of_its_channel():
    readings, problems = decode_native(native({"a": {"energy_kwh": None, "power_w": 10.0}}))

    assert values(readings) == {("a", "power"): 10.0}
    assert len(problems) == 1


def test_an_unknown_quantity_is_a_problem_while_the_rest_decodes():
    readings, problems = decode_native(native({"a": {"voltage_v": 230.0, "energy_wh": 5.0}}))

    assert values(readings) == {("a", "energy"): 5.0}
    assert len(problems) == 1 and "unknown quantity 'voltage_v'" in problems[0]


def test_a_channel_that_is_not_an_object_is_a_problem_while_the_rest_decodes():
    readings, problems = decode_native(native({"a": 5.0, "b": {"energy_wh": 5.0}}))

    assert values(readings) == {("b", "energy"): 5.0}
    assert problems == ["channel 'a' is not an object"]


# Hostile values: refused or reported, never raised.


def test_an_integer_too_large_for_a_float_is_a_problem_while_other_channels_still_decode():
    payload = '{"ts": "%s", "channels": {"bad": {"energy_kwh": 1%s}, "good": {"energy_kwh": 2}}}' % (TS, "0" * 400)

    readings, problems = decode_native(payload)

    assert values(readings) == {("good", "energy"): 2000.0}
    assert len(problems) == 1


def test_a_value_that_overflows_in_unit_conversion_is_a_problem():
    readings, problems = decode_native(native({"bad": {"energy_kwh": 1e306}, "good": {"energy_kwh": 2.0}}))

    assert values(readings) == {("good", "energy"): 2000.0}
    assert len(problems) == 1


def test_a_timestamp_outside_the_utc_range_is_refused():
    with pytest.raises(DecodeError):
        decode_native(native({"a": {"energy_wh": 1.0}}, ts="9999-12-31T23:59:59-01:00"))


def test_a_payload_nested_too_deep_is_refused():
    with pytest.raises(DecodeError):
        decode_native("[" * 100_000 + "]" * 100_000)


# Parameter map validation


def map_with(**changes) -> dict:
    parameter_map = copy.deepcopy(IOTWATT_NATIVE)
    parameter_map.update(changes)
    return parameter_map


def test_the_native_map_is_valid():
    validate_parameter_map(IOTWATT_NATIVE)


def test_a_map_with_an_unknown_unit_is_refused():
    bad = map_with(quantities={"energy_kvah": {"metric": "energy", "unit": "kVAh"}})

    with pytest.raises(ParameterMapError, match="unit must be one of"):
        validate_parameter_map(bad)


def test_a_map_whose_unit_does_not_measure_its_metric_is_refused():
    bad = map_with(quantities={"power_kwh": {"metric": "power", "unit": "kWh"}})

    with pytest.raises(ParameterMapError, match="unit kWh measures energy"):
        validate_parameter_map(bad)


def test_a_map_topic_without_device_is_refused():
    with pytest.raises(ParameterMapError, match=r"\{device\}"):
        validate_parameter_map(map_with(topic="iotwatt/+/telemetry"))


def test_a_map_topic_with_two_device_placeholders_is_refused():
    with pytest.raises(ParameterMapError, match=r"exactly one \{device\}"):
        validate_parameter_map(map_with(topic="iotwatt/{device}/{device}"))


def test_a_map_with_an_unknown_timestamp_format_is_refused():
    with pytest.raises(ParameterMapError, match='"timestamp"'):
        validate_parameter_map(map_with(timestamp={"path": "ts", "format": "rfc2822"}))


def test_a_map_without_quantities_is_refused():
    with pytest.raises(ParameterMapError, match='"quantities"'):
        validate_parameter_map(map_with(quantities={}))


def test_a_map_that_is_not_an_object_is_refused():
    with pytest.raises(ParameterMapError, match="JSON object"):
        validate_parameter_map(["iotwatt/{device}/telemetry"])


# Devices from topics


def test_device_identifier_is_read_from_the_topic():
    assert device_identifier("iotwatt/plant-7_main/telemetry", IOTWATT_NATIVE["topic"]) == "plant-7_main"


@pytest.mark.parametrize(
    "topic",
    [
        "iotwatt/plant-7/status",
        "other/plant-7/telemetry",
        "iotwatt/plant-7/telemetry/extra",
        "iotwatt/site/plant-7/telemetry",
        "iotwatt//telemetry",
    ],
)
def test_device_identifier_is_none_for_other_topics(topic):
    assert device_identifier(topic, IOTWATT_NATIVE["topic"]) is None


def test_topic_pattern_characters_are_literal():
    # "+" and "." are regex syntax; in a pattern they must match only themselves.
    assert device_identifier("a.b+/dev1/x", "a.b+/{device}/x") == "dev1"
    assert device_identifier("aXbb/dev1/x", "a.b+/{device}/x") is None


def test_a_quantity_scale_applies_before_the_unit_conversion():
    parameter_map = map_with(quantities={"register": {"metric": "energy", "unit": "kWh", "scale": 0.1}})

    readings, problems = decode(TOPIC, native({"a": {"register": 12345}}), parameter_map, ARRIVAL)

    assert problems == []
    assert readings[0].value == pytest.approx(1_234_500.0)


@pytest.mark.parametrize("scale", [0, "10", None, float("nan"), True])
def test_a_scale_that_is_not_a_non_zero_number_is_refused(scale):
    with pytest.raises(ParameterMapError, match="scale"):
        validate_parameter_map(map_with(quantities={"register": {"metric": "energy", "unit": "Wh", "scale": scale}}))


@pytest.mark.parametrize(
    "quantity",
    [{"metric": "energy", "unit": ["Wh"]}, {"metric": "energy", "unit": "Wh", "scale": 10**400}],
    ids=["unit-is-a-list", "scale-overflows"],
)
def test_a_malformed_quantity_is_refused_with_a_message_not_a_crash(quantity):
    with pytest.raises(ParameterMapError):
        validate_parameter_map(map_with(quantities={"q": quantity}))


def test_a_malformed_timestamp_format_is_refused():
    with pytest.raises(ParameterMapError, match="timestamp"):
        validate_parameter_map(map_with(timestamp={"path": "ts", "format": ["iso8601"]}))
