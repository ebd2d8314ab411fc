"""The native IotWatt message: many channels per message, each channel an object of quantity fields.

    {"ts": "2016-01-01T01:00:00Z",
     "channels": {"grid_import": {"energy_kwh": 2912.808, "power_w": 359.0}}}
"""

import re

from .errors import DecodeError
from .extracted import Extracted, RawValue, shown
from .json_document import load_json_object
from .map_spec import MapSpec, TopicSpec
from .paths import MISSING, lookup, path_text
from .units import finite_number


def read(payload: str | bytes, topic: TopicSpec, match: re.Match, spec: MapSpec) -> Extracted:
    document = load_json_object(payload)
    channels = lookup(document, spec.channels_path)
    if channels is MISSING:
        raise DecodeError(f"field {path_text(spec.channels_path)!r} is missing")
    if not isinstance(channels, dict):
        raise DecodeError(f"{path_text(spec.channels_path)!r} is not an object of channels")
    extracted = Extracted(document)
    for channel_key, fields in channels.items():
        if not isinstance(fields, dict):
            extracted.problems.append(f"channel {channel_key!r} is not an object")
            continue
        for field, raw in fields.items():
            quantity = spec.quantities.get(field)
            if quantity is None:
                extracted.problems.append(f"channel {channel_key!r}: unknown quantity {field!r}")
                continue
            extracted.values.append(RawValue(channel_key, quantity, finite_number(raw), field, shown(raw)))
    return extracted
