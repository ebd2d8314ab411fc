"""One comma-separated row per message, channels by position (emonhub's legacy node format,
`emonhub/rx/<node id>/values`: the decoder's variables in order, no names, no time)."""

import re

from .errors import DecodeError
from .extracted import Extracted, RawValue, shown
from .map_spec import MapSpec, TopicSpec
from .units import number_from_text


def read(payload: str | bytes, topic: TopicSpec, match: re.Match, spec: MapSpec) -> Extracted:
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        raise DecodeError("payload is not UTF-8 text") from exc
    cells = text.strip().split(",")
    extracted = Extracted(document=None)
    for key, quantity in spec.channels.items():
        if quantity.column is None:
            continue
        if quantity.column >= len(cells):
            extracted.problems.append(f"channel {key!r}: column {quantity.column} is missing (the row has {len(cells)} values)")
            continue
        cell = cells[quantity.column]
        extracted.values.append(RawValue(key, quantity, number_from_text(cell), f"column {quantity.column}", shown(cell)))
    return extracted
