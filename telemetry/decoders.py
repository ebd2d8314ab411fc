"""Payload decoding: topic + payload + a device model's parameter map -> readings in base units.

Plain Python, no Django: the bridge's worker calls it, tests call it directly.

A parameter map is a JSON object. The native IotWatt format:

    {
      "topic": "iotwatt/{device}/telemetry",
      "timestamp": {"path": "ts", "format": "iso8601"},
      "channels_path": "channels",
      "quantities": {
        "energy_kwh": {"metric": "energy", "unit": "kWh"},
        "power_w": {"metric": "power", "unit": "W"},
        "energy_raw": {"metric": "energy", "unit": "Wh", "scale": 0.1}
      }
    }

Each quantity's value is multiplied by its optional `scale` (a raw register in
0.1 Wh steps has scale 0.1) and then converted from `unit` to the base unit.

and the payload it reads, many channels per message:

    {"ts": "2016-01-01T01:00:00Z",
     "channels": {"grid_import": {"energy_kwh": 2912.808, "power_w": 359.0}}}

`ts` is the measurement time (for a counter: the instant the register was read),
never the arrival time.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

# Every stored value is in the base unit of its metric; this is the one place units are converted.
UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "Wh": ("energy", 1.0),
    "kWh": ("energy", 1_000.0),
    "MWh": ("energy", 1_000_000.0),
    "W": ("power", 1.0),
    "kW": ("power", 1_000.0),
    "MW": ("power", 1_000_000.0),
}


class ParameterMapError(ValueError):
    """The parameter map itself is wrong (an operator's configuration error)."""


class DecodeError(ValueError):
    """The payload cannot be read with the map; the message goes to the dead letters with this reason."""


@dataclass(frozen=True)
class DecodedReading:
    channel_key: str
    metric: str
    time: datetime
    value: float  # in the metric's base unit


def validate_parameter_map(parameter_map: dict) -> None:
    if not isinstance(parameter_map, dict):
        raise ParameterMapError("The parameter map must be a JSON object.")
    topic = parameter_map.get("topic")
    if not isinstance(topic, str) or topic.count("{device}") != 1:
        raise ParameterMapError('"topic" must be a topic pattern with exactly one {device}, e.g. "iotwatt/{device}/telemetry".')
    ts = parameter_map.get("timestamp")
    if not isinstance(ts, dict) or not isinstance(ts.get("path"), str) or ts.get("format") not in ("iso8601", "unix"):
        raise ParameterMapError('"timestamp" must be {"path": "<field>", "format": "iso8601" | "unix"}.')
    if not isinstance(parameter_map.get("channels_path"), str):
        raise ParameterMapError('"channels_path" must name the payload field that holds the channels.')
    quantities = parameter_map.get("quantities")
    if not isinstance(quantities, dict) or not quantities:
        raise ParameterMapError('"quantities" must map payload fields to {"metric": ..., "unit": ...}.')
    for field, spec in quantities.items():
        unit = spec.get("unit") if isinstance(spec, dict) else None
        if not isinstance(unit, str) or unit not in UNIT_CONVERSIONS:
            raise ParameterMapError(f"quantities.{field}.unit must be one of {sorted(UNIT_CONVERSIONS)}, not {unit!r}.")
        if spec.get("metric") != UNIT_CONVERSIONS[unit][0]:
            raise ParameterMapError(f"quantities.{field}: unit {unit} measures {UNIT_CONVERSIONS[unit][0]}, not {spec.get('metric')!r}.")
        scale = finite_number(spec.get("scale", 1))
        if scale is None or scale == 0:
            raise ParameterMapError(f"quantities.{field}.scale must be a non-zero number, not {spec.get('scale')!r}.")


def topic_regex(topic_pattern: str) -> re.Pattern:
    literal_parts = [re.escape(part) for part in topic_pattern.split("{device}")]
    return re.compile("^" + "(?P<device>[^/]+)".join(literal_parts) + "$")


def device_identifier(topic: str, topic_pattern: str) -> str | None:
    match = topic_regex(topic_pattern).match(topic)
    return match.group("device") if match else None


def _lookup(payload: dict, dotted_path: str):
    value = payload
    for part in dotted_path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DecodeError(f"field {dotted_path!r} is missing")
        value = value[part]
    return value


def finite_number(raw) -> float | None:
    """The value as a float, or None for anything that is not a finite number (null, text, bool, NaN, 1e999)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        value = float(raw)
    except OverflowError:  # a JSON integer too long for a float
        return None
    return value if math.isfinite(value) else None


def parse_timestamp(raw, fmt: str) -> datetime:
    if fmt == "unix":
        seconds = finite_number(raw)
        if seconds is None:
            raise DecodeError(f"timestamp {raw!r} is not a Unix time in seconds")
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise DecodeError(f"timestamp {raw!r} is out of range") from exc
    if not isinstance(raw, str):
        raise DecodeError(f"timestamp {raw!r} is not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise DecodeError(f"timestamp {raw!r} is not ISO 8601") from exc
    if parsed.tzinfo is None:
        # A wall-clock time without an offset is ambiguous at DST changes; refuse it.
        raise DecodeError(f"timestamp {raw!r} has no UTC offset")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError as exc:
        raise DecodeError(f"timestamp {raw!r} is out of range") from exc


def decode(payload: str | bytes, parameter_map: dict) -> tuple[list[DecodedReading], list[str]]:
    """Return the readings of one message and the problems found in its parts.

    A whole-message problem (not JSON, no timestamp) raises DecodeError. A bad
    value of one channel is reported in the problem list and the other
    channels' readings are still returned.
    """
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("payload is nested too deeply") from exc
    if not isinstance(document, dict):
        raise DecodeError("payload is not a JSON object")
    ts_spec = parameter_map["timestamp"]
    time = parse_timestamp(_lookup(document, ts_spec["path"]), ts_spec["format"])
    channels = _lookup(document, parameter_map["channels_path"])
    if not isinstance(channels, dict):
        raise DecodeError(f"{parameter_map['channels_path']!r} is not an object of channels")

    readings: list[DecodedReading] = []
    problems: list[str] = []
    quantities = parameter_map["quantities"]
    for channel_key, fields in channels.items():
        if not isinstance(fields, dict):
            problems.append(f"channel {channel_key!r} is not an object")
            continue
        for field, raw in fields.items():
            spec = quantities.get(field)
            if spec is None:
                problems.append(f"channel {channel_key!r}: unknown quantity {field!r}")
                continue
            metric, unit_factor = UNIT_CONVERSIONS[spec["unit"]]
            factor = spec.get("scale", 1) * unit_factor
            number = finite_number(raw)
            value = number * factor if number is not None else None
            if value is None or not math.isfinite(value):  # checked after scaling too: 1e306 kWh overflows
                problems.append(f"channel {channel_key!r}: {field} = {str(raw)[:40]} is not a finite number")
                continue
            readings.append(DecodedReading(channel_key, metric, time, value))
    return readings, problems
