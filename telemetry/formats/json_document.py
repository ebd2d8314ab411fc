"""One JSON object per message, each channel's value at its own path (Tasmota, Shelly Gen2, emonhub JSON).

A channel whose path is absent is simply not in this message: Shelly's NotifyStatus carries only
the keys that changed, and Tasmota sends Frequency only from drivers that measure it.
"""

import json
import re

from .errors import DecodeError
from .extracted import Extracted, RawValue, shown
from .map_spec import MapSpec, Quantity, TopicSpec
from .paths import MISSING, blocked_at, lookup, nest, path_text
from .units import finite_number, payload_unit_factor, units_of


def load_json_object(payload: str | bytes) -> dict:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("payload is nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python will convert (4,300): not a JSONDecodeError
        raise DecodeError(f"payload is not JSON we can read: {exc}") from exc
    if not isinstance(document, dict):
        raise DecodeError("payload is not a JSON object")
    return document


def read(payload: str | bytes, topic: TopicSpec, match: re.Match, spec: MapSpec) -> Extracted:
    document = load_json_object(payload)
    if topic.root:
        document = lookup(document, topic.root)
        if document is MISSING:
            raise DecodeError(f"field {path_text(topic.root)!r} is missing")
    document = nest(document, topic.wrap)
    extracted = Extracted(document)
    for key, quantity in spec.channels.items():
        raw = lookup(document, quantity.path)
        if raw is MISSING:
            # {"ENERGY": null} says the values are unavailable: a problem, where an absent key is just not sent.
            blocked = blocked_at(document, quantity.path)
            if blocked is not None:
                prefix, value = blocked
                extracted.problems.append(
                    f"channel {key!r}: {path_text(quantity.path)} has no value: {path_text(prefix)} is "
                    f"{json.dumps(value)[:40]} where an object was expected"
                )
            continue
        unit_factor = 1.0
        if quantity.unit_path is not None:
            unit_factor = _unit_named_in(document, key, quantity, extracted.problems)
            if unit_factor is None:
                continue
        extracted.values.append(RawValue(key, quantity, finite_number(raw), path_text(quantity.path), shown(raw), unit_factor))
    return extracted


def _unit_named_in(document, key: str, quantity: Quantity, problems: list[str]) -> float | None:
    """The factor of the unit this message gives the value; a missing or wrong unit is a problem of that reading alone."""
    raw_unit = lookup(document, quantity.unit_path)
    factor = payload_unit_factor(raw_unit, quantity.metric)
    if factor is None:
        unit = "missing" if raw_unit is MISSING else repr(shown(raw_unit)) if isinstance(raw_unit, str) else f"{shown(raw_unit)} (not text)"
        problems.append(
            f"channel {key!r}: {quantity.metric} unit at {path_text(quantity.unit_path)} is {unit}; "
            f"it must be one of {', '.join(units_of(quantity.metric))}"
        )
    return factor
