"""How each payload format is read; `telemetry.decoders` is the entry point and documents the map format.

    errors.py          the two errors: a bad map (operator) vs a bad message (device)
    readings.py        DecodedReading, what every format produces
    units.py           units -> base units, and reading numbers from JSON and from text
    paths.py           dotted JSON paths ("params.switch:0.aenergy.total", "by_minute[1]", "a\\.b")
    topics.py          topic patterns with {device} and {channel}
    timestamps.py      where a message's time comes from (payload field or arrival)
    map_spec.py        a parameter map checked once and turned into plain objects
    extracted.py       what a format reader hands back: raw numbers, before units, sign and time
    json_document.py   one JSON object per message, values at paths (Tasmota, Shelly, emonhub JSON)
    plain_value.py     one plain number per topic, channel named by the topic (ESPHome, emonhub nodevar)
    csv_node.py        one comma-separated row per message, channels by column (emonhub node format)
    iotwatt_native.py  the native IotWatt message, many channels by name
"""
