"""IoTaWatt's uploads in InfluxDB line protocol, received over HTTP (IoTaWatt has no MQTT client).

IoTaWatt posts lines such as

    mains,device=iotawatt1,units=Watts value=1532.4 1701608400

to `<server>/write?precision=s` (InfluxDB v1) or `<server>/api/v2/write?precision=s` (v2):
the measurement is the output's name, the `device` tag names the device, `units` the
quantity, and the time (Unix seconds) is the start of the interval whose average the value is.
Each line becomes part of a message of the device in the native IotWatt form, on the
topic `iotawatt-influx/<device>`, and goes through the same ingest as MQTT messages
(the built-in map `iotawatt_influx` reads it); a line that cannot be read is a dead letter.
Only devices registered with that map, in an organisation the uploader may write, are taken.
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

TOPIC_PREFIX = "iotawatt-influx/"
# Dead letters of lines that could not be read: no device to replay them to (fix the uploader instead).
UNREADABLE_LINE_TOPIC = "iotawatt-influx"
PRECISIONS = {"s": 1, "ms": 1_000, "us": 1_000_000, "u": 1_000_000, "ns": 1_000_000_000}

# Separators that are not escaped with a backslash (line protocol escapes "," " " "=" that way).
_UNESCAPED_SPACE = re.compile(r"(?<!\\) ")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(r"(?<!\\)=")


class LineError(ValueError):
    """A line that is not line protocol as IoTaWatt writes it; the message says why."""


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    value: str  # as written: the number is read by the decoder, which also says what is wrong with it
    time: datetime


def _unescape(text: str) -> str:
    return re.sub(r"\\([, =\\])", r"\1", text)


def parse_line(line: str, precision: str) -> Point:
    parts = _UNESCAPED_SPACE.split(line.strip())
    if len(parts) != 3:
        raise LineError("expected `<measurement>[,<tag>=<value>...] <field>=<value> <time>`")
    series, fields, stamp = parts
    measurement, *tag_items = _UNESCAPED_COMMA.split(series)
    tags = {}
    for item in tag_items:
        pair = _UNESCAPED_EQUALS.split(item, maxsplit=1)
        if len(pair) != 2:
            raise LineError(f"tag {item[:40]!r} is not key=value")
        tags[_unescape(pair[0])] = _unescape(pair[1])
    values = {}
    for item in _UNESCAPED_COMMA.split(fields):
        pair = _UNESCAPED_EQUALS.split(item, maxsplit=1)
        if len(pair) != 2:
            raise LineError(f"field {item[:40]!r} is not key=value")
        values[_unescape(pair[0])] = pair[1]
    # IoTaWatt's field key is "value" unless the user renamed it; one field is taken whatever its name.
    value = values.get("value", next(iter(values.values())) if len(values) == 1 else None)
    if value is None:
        raise LineError(f"no field named value among {sorted(values)[:5]}")
    if not stamp.lstrip("-").isdigit():
        raise LineError(f"time {stamp[:30]!r} is not an integer")
    try:
        time = datetime.fromtimestamp(int(stamp) / PRECISIONS[precision], tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise LineError(f"time {stamp[:30]!r} is out of range") from None
    return Point(_unescape(measurement), tags, value, time)


def _number(text: str):
    """The field value as JSON would carry it: integers may end in i (line protocol), strings are quoted."""
    text = text[:-1] if text.endswith(("i", "u")) and text[:-1].lstrip("-").isdigit() else text
    try:
        return json.loads(text)
    except ValueError:
        return text  # the decoder reports it as not a number


@dataclass
class Upload:
    messages: list[dict]  # in the bridge's form, for ingest_messages
    bad_lines: list[tuple[str, str]]  # (line, reason)
    devices: set[str]


def messages_from_lines(body: str, precision: str, received_at: datetime) -> Upload:
    """One native message per (device, time): a device's outputs at one instant travel together."""
    grouped: dict[tuple[str, datetime], dict] = defaultdict(dict)
    bad_lines = []
    for line in body.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            point = parse_line(line, precision)
        except LineError as exc:
            bad_lines.append((line, str(exc)))
            continue
        device, units = point.tags.get("device"), point.tags.get("units")
        if not device or any(c in device for c in "/+#\x00"):
            bad_lines.append((line, "the device tag is missing or holds / + # or NUL"))
            continue
        if not units:
            bad_lines.append((line, "the units tag is missing (IoTaWatt's default: units=<unit>)"))
            continue
        grouped[(device, point.time)].setdefault(point.measurement, {})[units] = _number(point.value)
    messages = [
        {
            "topic": f"{TOPIC_PREFIX}{device}",
            "payload": json.dumps({"ts": time.isoformat(), "channels": channels}),
            "received_at": received_at.isoformat(),
        }
        for (device, time), channels in grouped.items()
    ]
    return Upload(messages, bad_lines, {device for device, _ in grouped})
