"""One plain number per topic; the topic names the channel (ESPHome state topics, emonhub nodevar).

The payload carries no unit and no time: the unit comes from the map, the time is the arrival.
A topic whose channel the map does not define is not metered here (emonhub's MSG counter, a
temperature) and yields nothing rather than a problem: the device sends it every few seconds.
"""

import re

from .extracted import Extracted, RawValue, shown
from .map_spec import MapSpec, TopicSpec
from .units import number_from_text


def read(payload: str | bytes, topic: TopicSpec, match: re.Match, spec: MapSpec) -> Extracted:
    key = topic.channel or match.group("channel")
    quantity = spec.channels.get(key)
    extracted = Extracted(document=None)
    if quantity is None:
        return extracted
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError:
        extracted.problems.append(f"channel {key!r}: the payload is not UTF-8 text")
        return extracted
    extracted.values.append(RawValue(key, quantity, number_from_text(text), "payload", shown(text)))
    return extracted
