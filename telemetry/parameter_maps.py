"""Built-in parameter maps: how to read the payloads of device models the product knows out of the box."""

# The native IotWatt telemetry message: many channels per message, values with their unit in the field name.
IOTWATT_NATIVE = {
    "topic": "iotwatt/{device}/telemetry",
    "timestamp": {"path": "ts", "format": "iso8601"},
    "channels_path": "channels",
    "quantities": {
        "energy_wh": {"metric": "energy", "unit": "Wh"},
        "energy_kwh": {"metric": "energy", "unit": "kWh"},
        "power_w": {"metric": "power", "unit": "W"},
        "power_kw": {"metric": "power", "unit": "kW"},
    },
}
