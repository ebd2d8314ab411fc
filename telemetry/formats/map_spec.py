"""A parameter map, checked once and turned into plain objects the format readers use.

Every problem raises ParameterMapError with the place in the map and what is expected there;
no input type makes this raise anything else. The format itself is documented in telemetry/decoders.py.
"""

import math
import re
from dataclasses import dataclass

from .errors import ParameterMapError
from .paths import Path, parse_path
from .timestamps import ARRIVAL, TimestampSpec, parse_timestamp_spec
from .topics import levels_overlap, pattern_problem, topic_regex, wildcard_levels
from .units import BASE_UNITS, UNIT_CONVERSIONS, finite_number

FORMATS = ("iotwatt_native", "json", "plain", "csv")
# interval_average: the mean over the interval ending at the reading's time; interval_average_start:
# over the interval starting at it (IoTaWatt's InfluxDB uploads stamp the start).
SAMPLES = ("instant", "interval_average", "interval_average_start")
# Maps stored before formats existed have no "format": they are native IotWatt maps.
DEFAULT_FORMAT = "iotwatt_native"

_MAP_KEYS = {"description", "format", "topic", "topics", "timestamp", "channels", "channels_path", "quantities", "status", "configuration"}
_STATUS_KEYS = {"topic", "online", "offline", "description"}
_TOPIC_KEYS = {"pattern", "format", "root", "wrap", "timestamp", "channel"}
_QUANTITY_KEYS = {"metric", "unit", "scale", "sign", "sample", "rollover", "description"}
_CHANNEL_KEYS = _QUANTITY_KEYS | {"path", "column", "unit_path"}


@dataclass(frozen=True)
class Quantity:
    """How one raw number becomes a reading in base units."""

    key: str  # the channel key (json, plain, csv) or the payload field name (native)
    metric: str
    factor: float  # scale x unit factor x sign (with unit_path: scale x sign; the unit's factor comes per message)
    sample: str | None
    rollover: float | None  # in the base unit
    path: Path = ()  # json: where the value sits in the document
    column: int | None = None  # csv: which value of the row
    unit_path: Path | None = None  # json: where each message names the value's unit, if the map does not


@dataclass(frozen=True)
class TopicSpec:
    pattern: str
    regex: re.Pattern
    format: str
    root: Path  # descend here in the payload first (Tasmota STATUS10: "StatusSNS")
    wrap: Path  # then place the payload at this path (a Shelly status topic is the object at params.switch:0)
    timestamp: TimestampSpec
    channel: str | None  # plain: the channel a topic without {channel} always carries


@dataclass(frozen=True)
class StatusSpec:
    """The device's availability topic (retained, usually its MQTT last will) and what its payloads mean."""

    pattern: str
    regex: re.Pattern
    online: frozenset[str]
    offline: frozenset[str]


@dataclass(frozen=True)
class MapSpec:
    topics: tuple[TopicSpec, ...]
    channels: dict[str, Quantity]  # json, plain, csv: by channel key
    channels_path: Path  # native: where the channels object sits
    quantities: dict[str, Quantity]  # native: by payload field name
    status: StatusSpec | None = None


def _format(value, label: str) -> str:
    if not isinstance(value, str) or value not in FORMATS:
        raise ParameterMapError(f"{label} must be one of {list(FORMATS)}, not {_short(value)}.")
    return value


def _refuse_unknown_keys(where: str, entry: dict, allowed: set[str]) -> None:
    """A misspelt key is an error, not silently ignored: say which keys are unknown and which may be there."""
    unknown = sorted(str(key) for key in set(entry) - allowed)
    if unknown:
        raise ParameterMapError(f"{where} has unknown key(s) {unknown}; it may hold {sorted(allowed)}.")


def parse_map(raw) -> MapSpec:
    if not isinstance(raw, dict):
        raise ParameterMapError("The parameter map must be a JSON object.")
    _refuse_unknown_keys("The parameter map", raw, _MAP_KEYS)
    default_format = _format(raw.get("format", DEFAULT_FORMAT), '"format"')
    default_timestamp = raw.get("timestamp")
    topics = tuple(_topic(where, entry, default_format, default_timestamp) for where, entry in _topic_entries(raw))
    formats = {topic.format for topic in topics}

    channels_path: Path = ()
    quantities: dict[str, Quantity] = {}
    if "iotwatt_native" in formats:
        if not isinstance(raw.get("channels_path"), str):
            raise ParameterMapError('"channels_path" must name the payload field that holds the channels.')
        channels_path = parse_path(raw["channels_path"], '"channels_path"')
        source = raw.get("quantities")
        if not isinstance(source, dict) or not source:
            raise ParameterMapError('"quantities" must map payload fields to {"metric": ..., "unit": ...}.')
        quantities = {key: _quantity(f"quantities.{key}", key, spec, _QUANTITY_KEYS) for key, spec in source.items()}

    channels: dict[str, Quantity] = {}
    if formats - {"iotwatt_native"}:
        source = raw.get("channels")
        if not isinstance(source, dict) or not source:
            raise ParameterMapError(
                '"channels" must map channel keys to {"path": ..., "metric": ..., "unit": ...} '
                f"for the {', '.join(sorted(formats - {'iotwatt_native'}))} topics."
            )
        channels = {key: _quantity(f"channels.{key}", key, spec, _CHANNEL_KEYS) for key, spec in source.items()}
        for topic in topics:
            if topic.channel is not None and topic.channel not in channels:
                raise ParameterMapError(f"topic {topic.pattern!r} carries channel {topic.channel!r}, which \"channels\" does not define.")
            if topic.format == "csv" and not any(q.column is not None for q in channels.values()):
                raise ParameterMapError(f'topic {topic.pattern!r} is CSV, but no channel gives its "column".')
            _refuse_units_from_bare_values(topic, channels)
    status = _status(raw["status"], topics) if "status" in raw else None
    return MapSpec(topics=topics, channels=channels, channels_path=channels_path, quantities=quantities, status=status)


def _refuse_units_from_bare_values(topic: TopicSpec, channels: dict[str, "Quantity"]) -> None:
    """A plain or CSV payload is a bare number: a channel it carries cannot read its unit from it."""
    if topic.format == "plain":
        carried = [topic.channel] if topic.channel is not None else list(channels)
    elif topic.format == "csv":
        carried = [key for key, quantity in channels.items() if quantity.column is not None]
    else:
        return
    for key in carried:
        if channels[key].unit_path is not None:
            raise ParameterMapError(
                f'channels.{key}.unit_path: topic {topic.pattern!r} carries this channel as a bare {topic.format} value, '
                'with no unit to read; declare its "unit" instead.'
            )


def _status(entry, topics: tuple[TopicSpec, ...]) -> StatusSpec:
    if not isinstance(entry, dict):
        raise ParameterMapError('"status" must be an object like {"topic": "tele/{device}/LWT", "online": "Online", "offline": "Offline"}.')
    _refuse_unknown_keys('"status"', entry, _STATUS_KEYS)
    pattern = entry.get("topic")
    problem = pattern_problem(pattern)
    if problem:
        raise ParameterMapError(f'"status.topic" {problem}.')
    if "{channel}" in pattern:
        raise ParameterMapError('"status.topic" names the device only; a status is not a channel\'s.')
    # Checked in order, status first: a telemetry topic that could also be the status topic would lose its readings.
    for topic in topics:
        if levels_overlap(wildcard_levels(pattern), wildcard_levels(topic.pattern)):
            raise ParameterMapError(f'"status.topic" {pattern!r} could also be the telemetry topic {topic.pattern!r}; give it a topic of its own.')
    online = _status_values(entry.get("online"), '"status.online"')
    offline = _status_values(entry.get("offline"), '"status.offline"')
    if online & offline:
        raise ParameterMapError(f'"status": {sorted(online & offline)} cannot mean both online and offline.')
    return StatusSpec(pattern=pattern, regex=topic_regex(pattern), online=online, offline=offline)


def _status_values(raw, label: str) -> frozenset[str]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ParameterMapError(f"{label} must be the payload text (or a list of them), e.g. \"online\", not {_short(raw)}.")
    return frozenset(v.strip() for v in values)



def _topic_entries(raw: dict) -> list[tuple[str, object]]:
    if "topic" in raw and "topics" in raw:
        raise ParameterMapError('Give either "topic" (one pattern) or "topics" (a list), not both.')
    if "topics" not in raw:
        return [('"topic"', raw.get("topic"))]
    entries = raw["topics"]
    if not isinstance(entries, list) or not entries:
        raise ParameterMapError('"topics" must be a non-empty list of topic patterns or {"pattern": ...} objects.')
    return [(f"topics[{i}]", entry) for i, entry in enumerate(entries)]


def _topic(where: str, entry, default_format: str, default_timestamp) -> TopicSpec:
    if isinstance(entry, str) or entry is None:
        entry = {"pattern": entry}
    if not isinstance(entry, dict):
        raise ParameterMapError(f'{where} must be a topic pattern or an object {{"pattern": ..., "format": ...}}, not {_short(entry)}.')
    _refuse_unknown_keys(where, entry, _TOPIC_KEYS)
    pattern = entry.get("pattern")
    label = where if where == '"topic"' else f"{where}.pattern"
    problem = pattern_problem(pattern)
    if problem:
        raise ParameterMapError(f"{label} {problem}.")
    fmt = _format(entry.get("format", default_format), f"{where}.format")
    channel = entry.get("channel")
    if fmt == "plain":
        if ("{channel}" in pattern) == (channel is not None):
            raise ParameterMapError(f'{where}: a plain-value topic names its channel with {{channel}} in the pattern or with "channel", exactly one of them.')
        if channel is not None and not isinstance(channel, str):
            raise ParameterMapError(f"{where}.channel must be a channel key, not {_short(channel)}.")
    elif "{channel}" in pattern or channel is not None:
        raise ParameterMapError(f"{where}: only plain-value topics carry one channel; a {fmt} payload names its channels itself.")
    if fmt in ("plain", "csv"):
        # These payloads are bare values: the time can only be the arrival.
        if "timestamp" in entry and entry["timestamp"] != {"source": "arrival"}:
            raise ParameterMapError(f'{where}.timestamp: a {fmt} payload holds no time; use {{"source": "arrival"}} or leave it out.')
        timestamp = ARRIVAL
    else:
        source = entry.get("timestamp", default_timestamp)
        timestamp = parse_timestamp_spec(source, f"{where}.timestamp" if "timestamp" in entry else '"timestamp"')
    if fmt == "iotwatt_native" and timestamp.from_arrival:
        raise ParameterMapError(f"{where}: the native IotWatt message carries its time; give its field in \"timestamp\".")
    root = parse_path(entry.get("root", ""), f"{where}.root")
    wrap = parse_path(entry.get("wrap", ""), f"{where}.wrap")
    if (root or wrap) and fmt != "json":
        raise ParameterMapError(f'{where}: "root" and "wrap" apply to JSON topics only.')
    return TopicSpec(pattern=pattern, regex=topic_regex(pattern), format=fmt, root=root, wrap=wrap, timestamp=timestamp, channel=channel)


def _quantity(where: str, key, spec, allowed: set[str]) -> Quantity:
    if not isinstance(key, str) or not key:
        raise ParameterMapError(f"{where}: a channel key must be non-empty text.")
    if not isinstance(spec, dict):
        raise ParameterMapError(f'{where} must be an object like {{"metric": "power", "unit": "W"}}, not {_short(spec)}.')
    _refuse_unknown_keys(where, spec, allowed)
    unit_path = None
    if "unit_path" in spec:
        metric, unit, unit_path = _unit_from_payload(where, spec)
        unit_factor = 1.0  # applied per message, from the unit the message names
    else:
        unit = spec.get("unit")
        if not isinstance(unit, str) or unit not in UNIT_CONVERSIONS:
            raise ParameterMapError(f"{where}.unit must be one of {list(UNIT_CONVERSIONS)}, not {_short(unit)}.")
        metric, unit_factor = UNIT_CONVERSIONS[unit]
        if spec.get("metric") != metric:
            raise ParameterMapError(f"{where}: unit {unit} measures {metric}, not {_short(spec.get('metric'))}.")
    scale = finite_number(spec.get("scale", 1))
    if scale is None or scale == 0:
        raise ParameterMapError(f"{where}.scale must be a non-zero number, not {_short(spec.get('scale'))}.")
    sign = spec.get("sign", 1)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ParameterMapError(f"{where}.sign must be 1 (keep the device's sign) or -1 (flip it), not {_short(sign)}.")
    if metric == "energy" and sign == -1:
        raise ParameterMapError(f"{where}: an energy counter only counts up, so it cannot be flipped; map import and export counters to separate channels.")
    factor = scale * unit_factor * sign
    if not math.isfinite(factor) or factor == 0:
        raise ParameterMapError(f"{where}.scale {scale!r} is out of range.")
    sample = spec.get("sample")
    if sample is not None:
        if metric == "energy":
            raise ParameterMapError(f'{where}: a counter is read at an instant; "sample" applies to power, voltage and the other rates.')
        if not isinstance(sample, str) or sample not in SAMPLES:
            raise ParameterMapError(f'{where}.sample must be "instant" or "interval_average", not {_short(sample)}.')
    rollover = spec.get("rollover")
    if rollover is not None:
        if metric != "energy":
            raise ParameterMapError(f'{where}: "rollover" applies to energy counters only.')
        if unit_path is not None:
            raise ParameterMapError(f'{where}: "rollover" is a width in the map\'s "unit"; a counter whose unit each message names has none. Declare "unit" to give a rollover.')
        width = finite_number(rollover)
        if width is None or width <= 0 or not math.isfinite(width * unit_factor):
            raise ParameterMapError(f"{where}.rollover must be a positive number in {unit} (where the counter wraps to 0), not {_short(rollover)}.")
        rollover = width * unit_factor
    path: Path = ()
    if "path" in allowed:
        path = parse_path(spec.get("path", key), f"{where}.path")
    column = spec.get("column")
    if column is not None and (isinstance(column, bool) or not isinstance(column, int) or column < 0):
        raise ParameterMapError(f"{where}.column must be a value's position in the CSV row, counted from 0, not {_short(column)}.")
    return Quantity(key=key, metric=metric, factor=factor, sample=sample, rollover=rollover, path=path, column=column, unit_path=unit_path)


def _unit_from_payload(where: str, spec: dict) -> tuple[str, str, Path]:
    """A channel whose unit each message names: its metric (the units it accepts), base unit and the unit's path."""
    if "unit" in spec:
        raise ParameterMapError(f'{where}: give "unit" (the same in every message) or "unit_path" (named by each message), not both.')
    metric = spec.get("metric")
    if not isinstance(metric, str) or metric not in BASE_UNITS:
        raise ParameterMapError(f'{where}.metric must be one of {list(BASE_UNITS)} (it says which units the payload may name), not {_short(metric)}.')
    unit_path = parse_path(spec["unit_path"], f"{where}.unit_path")
    if not unit_path:
        raise ParameterMapError(f'{where}.unit_path must name the field that holds the unit, such as "energy.unit".')
    return metric, BASE_UNITS[metric], unit_path


def _short(raw) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
