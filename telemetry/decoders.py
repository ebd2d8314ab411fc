"""Payload decoding: topic + payload + a device model's parameter map -> readings in base units.

Plain Python, no Django: the bridge's worker calls it, tests call it directly. The formats
themselves live in telemetry/formats/; this module is the one entry point.

The parameter map
-----------------
A JSON object. Built-in maps are in telemetry/parameter_maps.py.

    {
      "format": "json",                      # default format of the topics: iotwatt_native (the default),
                                             #   json, plain or csv
      "topics": [                            # or "topic": "<one pattern>"
        "tele/{device}/SENSOR",              # a pattern alone takes the map's format and timestamp
        {"pattern": "stat/{device}/STATUS10",
         "format": "json",                   # optional, per topic
         "root": "StatusSNS",                # json: descend here in the payload first
         "wrap": "",                         # json: then place the payload at this path (so a Shelly status
                                             #   topic, which is the object at params.switch:0 of a
                                             #   NotifyStatus, is read with the same channel paths)
         "timestamp": {...},                 # optional, overrides the map's
         "channel": "power"}                 # plain topics without {channel}: the one channel they carry
      ],
      "timestamp": {"path": "Time", "format": "local", "timezone": "Europe/Berlin", "unsynced": "arrival"},
      "channels": {                          # json, plain and csv topics: one entry per channel key
        "energy": {"path": "ENERGY.Total", "metric": "energy", "unit": "kWh", "rollover": 100000},
        "power": {"path": "ENERGY.Power", "metric": "power", "unit": "W", "sample": "instant", "sign": 1}
      },
      "status": {                            # optional: the device's availability topic
        "topic": "tele/{device}/LWT",        # one {device}, no {channel}; no telemetry topic may match it
        "online": "Online",                  # payload text (or a list of them) meaning online ...
        "offline": ["Offline"]               # ... and offline (compared after trimming white space)
      }
    }

Topic patterns are literal MQTT topics with exactly one `{device}` (the device's identifier, one
topic level) and, for plain topics, at most one `{channel}` (the channel key, one topic level).

Where a value sits, by format:
  json            `path` in the (rooted, wrapped) document, default the channel key. Dotted keys;
                  ':' is an ordinary character ("params.switch:0.aenergy.total"); "by_minute[1]" or
                  "by_minute.1" indexes an array; "a\\.b" is the key "a.b"; or a JSON list of keys.
                  A channel absent from a message is not in that message (Shelly sends only changes);
                  null or text where its path needs an object ({"ENERGY": null}) is a problem of
                  each channel under it, never a reading.
  plain           the whole payload is one decimal number of the channel named by {channel} (or the
                  topic's "channel"). Topics of channels the map does not define are ignored.
  csv             `column` (from 0) of a comma-separated row.
  iotwatt_native  "channels_path" names the object of channels; "quantities" maps each channel's
                  field names to {"metric", "unit", "scale"} (the channel keys come from the payload).

Each channel (or native quantity):
  metric, unit    unit one of UNIT_CONVERSIONS; it must measure the metric. Stored values are in the
                  metric's base unit: energy Wh (a cumulative counter), power W, voltage V, current A,
                  reactive_power var, apparent_power VA, frequency Hz, power_factor (dimensionless, "PF").
  unit_path       json only, instead of `unit`: where each message names its value's unit, e.g.
                  {"energy": {"value": 1523400, "unit": "Wh"}} with "path": "energy.value",
                  "unit_path": "energy.unit". The named unit must be one of UNIT_CONVERSIONS that
                  measures the metric (compared exactly: "mWh" is not "MWh") and is converted to the
                  base unit like a declared one (1523.4 "kWh" is 1523400 Wh; 4481 "W" is never kW).
                  A missing, unknown or wrong-metric unit ("W" for an energy counter, "kWh" for power)
                  makes that channel's value a problem naming the channel, the unit and the accepted
                  units; the message's other channels still decode. Not with "unit" or "rollover",
                  nor on a channel that a plain or csv topic carries (a bare value names no unit).
  scale           optional, default 1: the raw number times scale is in `unit` (a 0.1 Wh register: 0.1),
                  or in the unit the message names.
  sign            optional, 1 or -1: -1 flips a device whose power sign is the opposite of the channel's
                  (stored power is positive in the direction the channel measures, e.g. import for a
                  grid main). Counters cannot be flipped: import and export are separate counters.
  sample          optional, rates only: "instant", "interval_average" (the mean over the interval
                  ending at the reading's time) or "interval_average_start" (over the interval
                  starting at it). Passed on in DecodedReading.sample.
  rollover        optional, counters only: where the register wraps to 0, in `unit`. Passed on in
                  DecodedReading.rollover, in the base unit.

Timestamps (see telemetry/formats/timestamps.py):
  {"source": "arrival"}  the device sends none: the message's arrival time, and the readings carry
                         time_from_arrival=True. plain and csv topics always use it.
  {"path": ..., "format": "iso8601" (with an offset) | "unix" (s) | "unix_ms" | "local",
   "timezone": IANA name (required by "local": a wall-clock time without offset, e.g. Tasmota's Time;
               a time repeated or skipped at a DST change is refused),
   "unsynced": "refuse" | "arrival"}  a time before 2000 is a clock never set (Tasmota 1970-01-01,
               Shelly ts 1.61 after boot): refuse the message, or use the arrival time instead.

Device status: devices publish their availability on a topic of its own, retained, and set it
as their MQTT last will, so the broker publishes "offline" when the connection dies without a
goodbye and keeps the latest state for anyone who subscribes later. `decode_status` reads it:
True (online), False (offline), or None for a topic that is not the map's status topic. A
status payload that is neither value raises DecodeError. Status topics count as the device's
topics (`topic_patterns`), so no other device may claim them.

Outcome: `decode` returns (readings, problems). A problem with the whole message (not JSON, a
topic no pattern matches, no usable time) raises DecodeError and the message becomes a dead
letter with that reason; a bad value of one channel (null, NaN, "nan", "unavailable", text) is a
problem while the other channels still decode.
"""

import math
import re
from datetime import datetime

from .formats import csv_node, iotwatt_native, json_document, plain_value
from .formats.errors import DecodeError, ParameterMapError
from .formats.map_spec import MapSpec, TopicSpec, parse_map
from .formats.readings import DecodedReading
from .formats.timestamps import parse_timestamp, resolve_time
from .formats.topics import levels_overlap, match_topic, topic_regex
from .formats.units import BASE_UNITS, UNIT_CONVERSIONS, finite_number

__all__ = [
    "BASE_UNITS",
    "UNIT_CONVERSIONS",
    "DecodeError",
    "compile_map",
    "DecodedReading",
    "ParameterMapError",
    "decode",
    "decode_status",
    "device_identifier",
    "finite_number",
    "parse_timestamp",
    "topic_patterns",
    "topic_regex",
    "validate_parameter_map",
]

_READERS = {
    "iotwatt_native": iotwatt_native.read,
    "json": json_document.read,
    "plain": plain_value.read,
    "csv": csv_node.read,
}


def validate_parameter_map(parameter_map) -> None:
    """Raise ParameterMapError saying what is wrong and where; never anything else."""
    from control.definitions import DefinitionError, configuration_of  # the map's configuration section is control's

    parse_map(parameter_map)
    try:
        configuration_of(parameter_map)
    except DefinitionError as exc:
        raise ParameterMapError(str(exc)) from exc


def topic_patterns(parameter_map) -> list[str]:
    """The map's topic patterns, read leniently: whatever looks like a pattern, even in a map that is otherwise wrong."""
    if not isinstance(parameter_map, dict):
        return []
    entries = parameter_map.get("topics", [parameter_map.get("topic")])
    if not isinstance(entries, list):
        return []
    patterns = [entry.get("pattern") if isinstance(entry, dict) else entry for entry in entries]
    status = parameter_map.get("status")
    if isinstance(status, dict):
        patterns.append(status.get("topic"))
    return [pattern for pattern in patterns if isinstance(pattern, str)]


def claimed_topics(parameter_map, identifier: str) -> list[list[str]]:
    """The topics a device with this identifier and map would receive, as levels ("+" for {channel})."""
    return [
        ["+" if level == "{channel}" else level for level in pattern.replace("{device}", identifier).split("/")]
        for pattern in topic_patterns(parameter_map)
    ]


def topics_overlap(first: list[list[str]], second: list[list[str]]) -> bool:
    """Could one published topic be claimed by both sets? Then a device could receive another's data."""
    return any(levels_overlap(a, b) for a in first for b in second)


def device_identifier(topic: str, parameter_map_or_pattern) -> str | None:
    """The device named by `topic` under the first of the map's patterns it matches (or under one pattern)."""
    patterns = [parameter_map_or_pattern] if isinstance(parameter_map_or_pattern, str) else topic_patterns(parameter_map_or_pattern)
    for pattern in patterns:
        match = match_topic(topic, pattern)
        if match:
            return match.group("device")
    return None


def compile_map(parameter_map: dict) -> MapSpec:
    """The map checked and compiled once, for decoding many messages of the same device model."""
    try:
        return parse_map(parameter_map)
    except ParameterMapError as exc:
        raise DecodeError(f"the device model's parameter map is wrong: {exc}") from exc


def decode(
    topic: str, payload: str | bytes, parameter_map: dict | MapSpec, received_at: datetime
) -> tuple[list[DecodedReading], list[str]]:
    """Return the readings of one message and the problems found in its parts.

    `parameter_map`: the map as stored, or compiled by `compile_map` (faster for many messages).
    `received_at` (timezone-aware) is used only where the map takes the time from the arrival.
    """
    spec = parameter_map if isinstance(parameter_map, MapSpec) else compile_map(parameter_map)
    topic_spec, match = _matching_topic(spec, topic)
    extracted = _READERS[topic_spec.format](payload, topic_spec, match, spec)
    time, from_arrival = resolve_time(topic_spec.timestamp, extracted.document, received_at)

    readings: list[DecodedReading] = []
    problems = list(extracted.problems)
    for item in extracted.values:
        quantity = item.quantity
        value = item.number * quantity.factor * item.unit_factor if item.number is not None else None
        if value is None or not math.isfinite(value):  # checked after scaling too: 1e306 kWh overflows
            problems.append(f"channel {item.channel_key!r}: {item.source} = {item.shown} is not a finite number")
            continue
        readings.append(
            DecodedReading(
                item.channel_key, quantity.metric, time, value + 0.0,  # + 0.0: a flipped zero is stored as 0, not -0
                time_from_arrival=from_arrival, sample=quantity.sample, rollover=quantity.rollover,
            )
        )
    return readings, problems


def decode_status(topic: str, payload: str | bytes, parameter_map: dict) -> bool | None:
    """True (online) or False (offline) for a message on the map's status topic; None for any other topic."""
    # Most messages are telemetry: a regex match tells them apart before the whole map is checked.
    status = parameter_map.get("status") if isinstance(parameter_map, dict) else None
    status_pattern = status.get("topic") if isinstance(status, dict) else None
    if not isinstance(status_pattern, str) or not match_topic(topic, status_pattern):
        return None
    try:
        spec = parse_map(parameter_map)
    except ParameterMapError as exc:
        raise DecodeError(f"the device model's parameter map is wrong: {exc}") from exc
    if spec.status is None or not spec.status.regex.match(topic):
        return None
    try:
        text = (payload.decode("utf-8") if isinstance(payload, bytes) else payload).strip()
    except UnicodeDecodeError:
        raise DecodeError("the status payload is not UTF-8 text") from None
    if text in spec.status.online:
        return True
    if text in spec.status.offline:
        return False
    raise DecodeError(
        f"status payload {text[:100]!r} is neither online ({', '.join(sorted(spec.status.online))}) "
        f"nor offline ({', '.join(sorted(spec.status.offline))})"
    )


def _matching_topic(spec: MapSpec, topic: str) -> tuple[TopicSpec, re.Match]:
    for topic_spec in spec.topics:
        match = topic_spec.regex.match(topic)
        if match:
            return topic_spec, match
    patterns = ", ".join(repr(t.pattern) for t in spec.topics)
    raise DecodeError(f"topic {topic[:200]!r} matches none of the map's topic patterns ({patterns})")
