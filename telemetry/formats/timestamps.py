"""Where a message's time comes from: a field of the payload, or the message's arrival when the device sends none.

A timestamp spec in a map is either
    {"source": "arrival"}
or
    {"path": "<field>", "format": "iso8601" | "unix" | "unix_ms" | "local",
     "timezone": "<IANA zone>"          (with "local" only, and then required),
     "unsynced": "refuse" | "arrival"}  (optional: what to do with a clock that was never set)
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DecodeError, ParameterMapError
from .paths import MISSING, Path, lookup, parse_path, path_text
from .units import finite_number

UTC = timezone.utc
FORMATS = ("iso8601", "unix", "unix_ms", "local")
UNSYNCED_CHOICES = ("refuse", "arrival")
# A device clock before this was never set (Tasmota boots at 1970-01-01T00:00, Shelly's ts counts from 0 before SNTP).
CLOCK_SET_FROM = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimestampSpec:
    from_arrival: bool
    path: Path = ()
    format: str = ""
    zone: ZoneInfo | None = None
    unsynced: str | None = None  # None: no check here (the ingest horizon still refuses old readings)


ARRIVAL = TimestampSpec(from_arrival=True)

_SHAPE = '{"path": "<field>", "format": "iso8601" | "unix" | "unix_ms" | "local"} or {"source": "arrival"}'


def parse_timestamp_spec(raw, where: str) -> TimestampSpec:
    if not isinstance(raw, dict):
        raise ParameterMapError(f"{where} must be {_SHAPE}, not {_short(raw)}.")
    if raw.get("source") == "arrival":
        if set(raw) != {"source"}:
            raise ParameterMapError(f'{where}: {{"source": "arrival"}} takes no other keys.')
        return ARRIVAL
    unknown = set(raw) - {"path", "format", "timezone", "unsynced"}
    fmt = raw.get("format")
    if unknown or not isinstance(raw.get("path"), (str, list)) or not isinstance(fmt, str) or fmt not in FORMATS:
        raise ParameterMapError(f"{where} must be {_SHAPE}, not {_short(raw)}.")
    path = parse_path(raw["path"], f"{where}.path")
    zone = None
    if fmt == "local":
        name = raw.get("timezone")
        if not isinstance(name, str):
            raise ParameterMapError(
                f'{where}: a "local" time has no UTC offset, so the map must give the device\'s "timezone" '
                f'(an IANA name such as "Europe/Berlin"), or use {{"source": "arrival"}}.'
            )
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ParameterMapError(f"{where}.timezone {name!r} is not an IANA time zone name (for example Europe/Berlin).") from None
    elif "timezone" in raw:
        raise ParameterMapError(f'{where}.timezone applies to the "local" format only; {fmt} times carry their own offset.')
    unsynced = raw.get("unsynced")
    if unsynced is not None and (not isinstance(unsynced, str) or unsynced not in UNSYNCED_CHOICES):
        raise ParameterMapError(f'{where}.unsynced must be "refuse" or "arrival", not {_short(unsynced)}.')
    return TimestampSpec(from_arrival=False, path=path, format=fmt, zone=zone, unsynced=unsynced)


def resolve_time(spec: TimestampSpec, document, received_at: datetime) -> tuple[datetime, bool]:
    """(UTC time of the message, whether it is the arrival time)."""
    if spec.from_arrival:
        return arrival_time(received_at), True
    raw = lookup(document, spec.path)
    if raw is MISSING:
        raise DecodeError(f"field {path_text(spec.path)!r} is missing")
    time = parse_timestamp(raw, spec.format, spec.zone)
    if spec.unsynced and time < CLOCK_SET_FROM:
        if spec.unsynced == "arrival":
            return arrival_time(received_at), True
        raise DecodeError(f"the device clock was never set: timestamp {_short(raw)} is before {CLOCK_SET_FROM.date()}")
    return time, False


def arrival_time(received_at) -> datetime:
    if not isinstance(received_at, datetime) or received_at.utcoffset() is None:
        raise DecodeError(f"the message carries no time and its arrival time {received_at!r} has no UTC offset")
    return received_at.astimezone(UTC)


def parse_timestamp(raw, fmt: str, zone: ZoneInfo | None = None) -> datetime:
    if fmt in ("unix", "unix_ms"):
        number = finite_number(raw)
        if number is None:
            raise DecodeError(f"timestamp {_short(raw)} is not a Unix time in {'milliseconds' if fmt == 'unix_ms' else 'seconds'}")
        try:
            return datetime.fromtimestamp(number / 1000 if fmt == "unix_ms" else number, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise DecodeError(f"timestamp {_short(raw)} is out of range") from exc
    if not isinstance(raw, str):
        raise DecodeError(f"timestamp {_short(raw)} is not an ISO 8601 string")
    if "\x00" in raw:
        # CPython 3.11's fromisoformat stops reading at a NUL: "2025-06-01T00:00:00Z\x00junk" would pass.
        raise DecodeError(f"timestamp {_short(raw)} is not ISO 8601")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise DecodeError(f"timestamp {_short(raw)} is not ISO 8601") from exc
    if parsed.tzinfo is None:
        if fmt != "local" or zone is None:
            # A wall-clock time without an offset is ambiguous at DST changes; refuse it.
            raise DecodeError(f"timestamp {_short(raw)} has no UTC offset")
        parsed = _in_zone(parsed, zone, raw)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise DecodeError(f"timestamp {_short(raw)} is out of range") from exc


def _in_zone(naive: datetime, zone: ZoneInfo, raw: str) -> datetime:
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        # No single instant: placing it anyway would land on a real minute the device also reports (docs/energy.md).
        utc = timezone.utc
        if first.astimezone(utc).astimezone(zone).replace(tzinfo=None) != naive:
            raise DecodeError(f"local time {raw!r} does not exist in {zone.key}: the clocks went forward over it (a DST change)")
        raise DecodeError(f"local time {raw!r} is ambiguous in {zone.key}: the clocks went back and it happened twice (a DST change)")
    return first


def _short(raw) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
