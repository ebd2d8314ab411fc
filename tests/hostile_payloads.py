"""Malformed and hostile MQTT messages from registered native meters, generated from a seed.

Every message carries a marker ("h" and six digits) near the start of its payload, so the
dead letter it becomes can be found again: in the text of a text payload, or in the first
nine bytes of a binary one (the first twelve characters of its base64 form). Each is built
so that it has at least one thing wrong; only "mixed" messages also hold valid readings,
which must be stored beside the dead letter.
"""

import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .fleet import ENERGY_KEYS, FIRST_TIME, POWER_KEYS

MARKER = re.compile(r"h\d{6}")
# Hostile messages are stamped from here, one second apart: after the valid fleet messages of the test
# (fewer than 120, a minute apart), yet close to them, so the buckets a batch rolls up stay few.
FIRST_HOSTILE_TIME = FIRST_TIME + timedelta(hours=2)


@dataclass
class HostileMessage:
    marker: str
    kind: str
    topic: str
    payload: str | bytes
    valid_readings: set = field(default_factory=set)  # {(identifier, channel key, time, value)} it also holds


def iso(time: datetime) -> str:
    return time.isoformat().replace("+00:00", "Z")


def native(marker: str, ts, channels) -> str:
    """A native message with the marker first; the decoder ignores the extra field."""
    return json.dumps({"m": marker, "ts": ts, "channels": channels}, allow_nan=True)


def malformed_json(rng, m, ts):
    good = native(m, ts, {"ch01": {"energy_wh": 1}})
    return rng.choice([
        good[: rng.randrange(20, len(good) - 1)],  # cut off mid-message, after the marker
        good + "}",  # a brace too many
        good.replace('"', "'"),  # single quotes
        good.replace(",", "", 1),  # a missing comma
        '{m: "%s", ts: "%s"}' % (m, ts),  # unquoted keys
        good + " // sent by firmware 1.2",  # a comment
        '{"m": "%s", "ts": "%s", "channels": {"ch01": {"energy_wh": 0x1F}}}' % (m, ts),  # hex literal
        '{"m": "%s", "channels": {"ch01": {"energy_wh": 1,}}}' % m,  # trailing comma
    ])


def not_an_object(rng, m, ts):
    return rng.choice([json.dumps([m, ts, 1]), json.dumps(m), f'"{m}" 1'])


def wrong_types(rng, m, ts):
    energy, power = rng.choice(ENERGY_KEYS), rng.choice(POWER_KEYS)
    return rng.choice([
        native(m, ts, [{"ch01": {"energy_wh": 1}}]),  # channels a list
        native(m, ts, "ch01=1"),  # channels text
        native(m, ts, 42),
        native(m, ts, None),
        native(m, ts, {energy: [1, 2]}),  # a channel that is not an object
        native(m, ts, {energy: 12}),
        native(m, ts, {energy: {"energy_wh": "12.5"}}),  # a number as text
        native(m, ts, {energy: {"energy_wh": True}}),
        native(m, ts, {power: {"power_w": {"value": 1}}}),
        native(m, ts, {power: {"power_w": [230.1]}}),
        native(m, 1751328000, {energy: {"energy_wh": 1}}),  # Unix seconds where ISO 8601 is expected
        native(m, True, {energy: {"energy_wh": 1}}),
        native(m, None, {energy: {"energy_wh": 1}}),
        json.dumps({"m": m, "channels": {energy: {"energy_wh": 1}}}),  # no ts
        json.dumps({"m": m, "ts": ts}),  # no channels
    ])


def non_finite(rng, m, ts):
    key, field_name = rng.choice([(rng.choice(ENERGY_KEYS), "energy_wh"), (rng.choice(POWER_KEYS), "power_w")])
    token = rng.choice(["NaN", "Infinity", "-Infinity", '"nan"', '"inf"', '"-inf"', "1e400"])
    return '{"m": "%s", "ts": "%s", "channels": {"%s": {"%s": %s}}}' % (m, ts, key, field_name, token)


def unavailable(rng, m, ts):
    value = rng.choice(["unavailable", None, "", "unknown", "N/A", "-"])
    if rng.random() < 0.5:
        return native(m, ts, {rng.choice(ENERGY_KEYS): {"energy_wh": value}})
    return native(m, ts, {rng.choice(POWER_KEYS): {"power_w": value}})


def bad_time(rng, m, ts):
    when = rng.choice([
        "2999-01-01T00:00:00Z",  # far future
        iso(datetime.now(timezone.utc) + timedelta(days=rng.randrange(1, 3650))),
        "1999-12-31T23:59:59Z",  # before the horizon
        "1970-01-01T00:00:00Z",  # a clock never set
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2025-07-01T00:00:00",  # no UTC offset
        "2025-02-30T00:00:00Z",  # no such day
        "yesterday",
        "",
    ])
    return native(m, when, {rng.choice(ENERGY_KEYS): {"energy_wh": rng.randrange(1, 10_000)}})


def binary_junk(rng, m, ts):
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    # \xff never appears in UTF-8, so the payload is never text; the marker fills nine bytes, whole base64 groups.
    return f"#{m}#".encode() + b"\xff" + junk + rng.choice([b"", b"\xc3", b"\xed\xa0\x80", b"\x00\x00"])


def nul_bytes(rng, m, ts):
    key = rng.choice(ENERGY_KEYS)
    return rng.choice([
        native(m, ts, {key: {"energy_wh": 1}}).replace('"ts"', '"t\x00s"'),  # a raw NUL inside a key
        '{"m": "%s", "ts": "%s", "channels": {"%s\\u0000": {"energy_wh": 1}}}' % (m, ts, key),  # escaped NUL in a channel key
        native(m, ts, {key: {"energy_wh": "1\x00"}}),
        native(m, ts + "\x00", {key: {"energy_wh": 1}}),
        f'{{"m": "{m}"}}\x00{{"ts": "{ts}"}}',
    ])


def huge_numbers(rng, m, ts):
    key = rng.choice(ENERGY_KEYS)
    value = rng.choice([
        "1" + "0" * 400,  # a JSON integer past any float
        "9" * 5000,  # past Python's limit for converting digits to int
        "1e400",
        "-1e400",
    ])
    if rng.random() < 0.3:
        return '{"m": "%s", "ts": "%s", "channels": {"%s": {"energy_kwh": 1e306}}}' % (m, ts, key)  # overflows on kWh -> Wh
    return '{"m": "%s", "ts": "%s", "channels": {"%s": {"energy_wh": %s}}}' % (m, ts, key, value)


def deep_nesting(rng, m, ts):
    depth = rng.choice([900, 990, 5_000, 50_000])
    nested = "[" * depth + "]" * depth
    if rng.random() < 0.5:
        return '{"m": "%s", "x": %s}' % (m, nested)
    return '{"m": "%s", "ts": "%s", "channels": {"ch01": {"energy_wh": %s}}}' % (m, ts, nested)


def long_strings(rng, m, ts):
    # Some past the 256 KiB a payload size limit would allow, so the test holds with or without one.
    chunk = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé€😀") for _ in range(1_000))
    text = chunk * rng.choice([5, 60, 220])
    return rng.choice([
        native(m, ts, {text: {"energy_wh": 1}}),  # a channel key
        native(m, text, {"ch01": {"energy_wh": 1}}),  # the time
        native(m, ts, {"ch01": {"energy_wh": text}}),  # the value
        native(m, ts, {"ch01": {text: 1}}),  # the quantity
    ])


def unknown_channels(rng, m, ts):
    key = rng.choice(["ch17", "ch00", "CH01", "ch1", "", " ch01", "ch01 ", "../../etc/passwd", "'; DROP TABLE telemetry_reading; --",
                      "<script>alert(1)</script>", "😀", "ch01\u202e", "__proto__"])
    if rng.random() < 0.3:  # a power channel sent as energy: no such energy channel
        return native(m, ts, {rng.choice(POWER_KEYS): {"energy_wh": 5}})
    return native(m, ts, {key: {"energy_wh": 5}})


def unknown_quantity(rng, m, ts):
    return native(m, ts, {rng.choice(ENERGY_KEYS): {rng.choice(["energy_mwh", "voltage_v", "Energy_Wh", "energy", "power"]): 1}})


def lone_surrogate(rng, m, ts):
    # Escaped in JSON, so the payload itself is plain UTF-8 text.
    return rng.choice([
        '{"m": "%s", "ts": "%s", "channels": {"ch01": {"energy_wh": "\\ud800"}}}' % (m, ts),
        '{"m": "%s", "ts": "%s", "channels": {"ch\\udfff": {"energy_wh": 1}}}' % (m, ts),
        '{"m": "%s", "ts": "2025-07-01T00:00:00\\udc00Z", "channels": {"ch01": {"energy_wh": 1}}}' % m,
    ])


KINDS = {
    # kind: (generator, weight)
    "malformed json": (malformed_json, 14),
    "not an object": (not_an_object, 4),
    "wrong types": (wrong_types, 14),
    "NaN/Infinity": (non_finite, 10),
    "unavailable/null": (unavailable, 10),
    "timestamp out of range or unreadable": (bad_time, 10),
    "binary junk, invalid UTF-8": (binary_junk, 8),
    "NUL bytes": (nul_bytes, 5),
    "huge numbers": (huge_numbers, 5),
    "deep nesting": (deep_nesting, 2),
    "very long strings": (long_strings, 1),
    "unknown channel keys": (unknown_channels, 8),
    "unknown quantity": (unknown_quantity, 4),
    "lone surrogate": (lone_surrogate, 2),
    "valid readings beside a bad one": (None, 10),
    "wrong topic for a registered device": (None, 5),
}
# Topics no device model claims, though a registered meter's identifier is in them.
WRONG_TOPICS = ["iotwatt/{d}/telemetry/extra", "iotwatt/{d}/status", "iotwatt/{d}", "iotwatt/{d}/telemetry/", "iotwatt/{d}/{d}/telemetry"]


def mixed(rng, m, ts, identifier, time):
    """Good channels and one bad one in the same message: the good readings are stored."""
    good = {key: rng.randrange(1, 1_000_000) for key in rng.sample(ENERGY_KEYS, 3)}
    good_power = {key: rng.randrange(0, 5_000) for key in rng.sample(POWER_KEYS, 2)}
    channels = {key: {"energy_wh": v} for key, v in good.items()} | {key: {"power_w": v} for key, v in good_power.items()}
    bad_key = rng.choice(sorted(set(POWER_KEYS) - set(good_power)))
    channels[bad_key] = rng.choice([{"power_w": None}, {"power_w": "unavailable"}, {"power_w": float("nan")}, {"volts": 230}, [1]])
    if rng.random() < 0.3:
        channels["ch42"] = {"energy_wh": 1}  # and a channel the meter does not have
    readings = {(identifier, key, time, float(v)) for key, v in (good | good_power).items()}
    return native(m, ts, channels), readings


def hostile_messages(seed: int, count: int, identifiers: list[str]) -> list[HostileMessage]:
    rng = random.Random(seed)
    kinds, weights = list(KINDS), [weight for _, weight in KINDS.values()]
    messages = []
    for number in range(count):
        kind = rng.choices(kinds, weights)[0]
        marker, identifier = f"h{number:06d}", rng.choice(identifiers)
        time = FIRST_HOSTILE_TIME + timedelta(seconds=number)
        topic, readings = f"iotwatt/{identifier}/telemetry", set()
        if kind == "valid readings beside a bad one":
            payload, readings = mixed(rng, marker, iso(time), identifier, time)
        elif kind == "wrong topic for a registered device":
            topic = rng.choice(WRONG_TOPICS).format(d=identifier)
            payload = native(marker, iso(time), {"ch01": {"energy_wh": 1}, "ch09": {"power_w": 1}})
        else:
            payload = KINDS[kind][0](rng, marker, iso(time))
        messages.append(HostileMessage(marker, kind, topic, payload, readings))
    return messages
