"""Device profiles: what a simulated device model has (parameters with its own rules, relays, loads).

A profile is a dict, built in here or read from a JSON file of the same shape:

    {"name": "...", "protocol": "iotwatt" | "tasmota" | "shelly_rpc",
     "parameters": {"<name>": {<rule>}, ...},
     "relays": {"<relay>": "on" | "off", ...},
     "channels": {"<channel key>": {"relay": "<relay>", "base_w": 200, "peak_w": 1500, "noise_w": 50}},
     "telemetry_interval_parameter": "<parameter giving the seconds between telemetry messages>",
     "telemetry_interval_s": 60}

A rule has the fields of docs/device-parameters.md (type, minimum, maximum, choices, default,
writable) as the device's firmware sees them, which need not be what the server was told: real
firmware refuses values the server thought valid. Device-only fields:
  "refuse": {"above" | "below": x, or "values": [...], "reason": "..."} (or a list of them): the
      hardware turns the value down although it passes the other rules;
  "out_of_range": "clamp" (default) | "keep": how a Tasmota device treats a number beyond its
      limits: moved to the nearest limit, or ignored (the old value stays);
  "rpc": {"method": "Switch.SetConfig", "params": {"id": 0}, "config_key": "initial_state"}: the
      Shelly RPC that sets it (the key may be dotted: "device.name").
Tasmota parameters are named after their command (TelePeriod), as the device knows no other name.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path

PROTOCOLS = ("iotwatt", "tasmota", "shelly_rpc")
TYPES = ("integer", "number", "boolean", "string")
DEFAULT_TELEMETRY_INTERVAL_S = 60.0

IOTWATT_METER = {
    "name": "iotwatt-meter",
    "protocol": "iotwatt",
    "parameters": {
        "reporting_interval_s": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 60},
        # The server's map offers 600 too; this hardware revision lists fewer ratios, and its input
        # stage cannot take 400 although the firmware lists it: two ways a device says no on its own.
        "ct_ratio": {
            "type": "integer", "choices": [50, 100, 200, 400], "default": 100, "reboot": True,
            "refuse": {"above": 200, "reason": "CT input saturates above 200 A"},
        },
        "relay_default": {"type": "string", "choices": ["on", "off", "last"], "default": "last"},
        "max_power_w": {"type": "number", "minimum": 0, "default": 11000},
        "firmware": {"type": "string", "writable": False, "default": "2.4.1"},
    },
    "relays": {"relay0": "on"},
    "channels": {"grid_import": {"relay": "relay0", "base_w": 250, "peak_w": 1800, "noise_w": 60}},
    "telemetry_interval_parameter": "reporting_interval_s",
}

TASMOTA_PLUG = {
    "name": "tasmota-plug",
    "protocol": "tasmota",
    "parameters": {
        "TelePeriod": {"type": "integer", "minimum": 10, "maximum": 3600, "default": 300},
        # Tasmota ignores a PowerOnState it does not know instead of moving it to a limit.
        "PowerOnState": {"type": "integer", "minimum": 0, "maximum": 5, "default": 3, "out_of_range": "keep"},
        "PowerDelta": {"type": "integer", "minimum": 0, "maximum": 32000, "default": 0},
    },
    "relays": {"power1": "on"},
    "channels": {"load": {"relay": "power1", "base_w": 40, "peak_w": 900, "noise_w": 15}},
    "telemetry_interval_parameter": "TelePeriod",
}

SHELLY_PLUS_1PM = {
    "name": "shelly-plus-1pm",
    "protocol": "shelly_rpc",
    "parameters": {
        "initial_state": {
            "type": "string", "choices": ["off", "on", "restore_last", "match_input"], "default": "match_input",
            "rpc": {"method": "Switch.SetConfig", "params": {"id": 0}, "config_key": "initial_state"},
        },
        "power_limit": {
            "type": "integer", "minimum": 0, "maximum": 3840, "default": 3840,
            "rpc": {"method": "Switch.SetConfig", "params": {"id": 0}, "config_key": "power_limit"},
        },
        "device_name": {
            "type": "string", "default": "",
            "rpc": {"method": "Sys.SetConfig", "params": {}, "config_key": "device.name"},
        },
    },
    "relays": {"switch:0": "on"},
    "channels": {"load": {"relay": "switch:0", "base_w": 60, "peak_w": 1200, "noise_w": 20}},
    "telemetry_interval_s": 30,
}

BUILT_IN_PROFILES = {profile["name"]: profile for profile in (IOTWATT_METER, TASMOTA_PLUG, SHELLY_PLUS_1PM)}


@dataclass(frozen=True)
class Profile:
    name: str
    protocol: str
    parameters: dict
    relays: dict
    channels: dict
    telemetry_interval_parameter: str | None = None
    telemetry_interval_s: float = DEFAULT_TELEMETRY_INTERVAL_S

    @classmethod
    def from_dict(cls, data: dict) -> "Profile":
        """Checked here so that a mistake in a JSON profile shows at start, not as an odd answer later."""
        data = copy.deepcopy(data)
        name = data.get("name", "custom")
        if data.get("protocol") not in PROTOCOLS:
            raise ValueError(f"profile {name}: protocol must be one of {', '.join(PROTOCOLS)}, not {data.get('protocol')!r}")
        parameters = data.get("parameters", {})
        for parameter, rule in parameters.items():
            if rule.get("type") not in TYPES:
                raise ValueError(f"profile {name}: parameter {parameter} needs a type among {', '.join(TYPES)}")
            if data["protocol"] == "shelly_rpc" and rule.get("writable", True) and "rpc" not in rule:
                raise ValueError(f"profile {name}: parameter {parameter} needs the rpc that sets it")
        relays = data.get("relays", {})
        for channel, load in data.get("channels", {}).items():
            if load.get("relay") is not None and load["relay"] not in relays:
                raise ValueError(f"profile {name}: channel {channel} follows relay {load['relay']!r}, which it does not have")
        interval_parameter = data.get("telemetry_interval_parameter")
        if interval_parameter is not None and interval_parameter not in parameters:
            raise ValueError(f"profile {name}: telemetry_interval_parameter {interval_parameter!r} is not one of its parameters")
        return cls(
            name=name,
            protocol=data["protocol"],
            parameters=parameters,
            relays=relays,
            channels=data.get("channels", {}),
            telemetry_interval_parameter=interval_parameter,
            telemetry_interval_s=float(data.get("telemetry_interval_s", DEFAULT_TELEMETRY_INTERVAL_S)),
        )


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, else a JSON file of the same shape."""
    if str(name_or_path) in BUILT_IN_PROFILES:
        return Profile.from_dict(BUILT_IN_PROFILES[str(name_or_path)])
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"no built-in profile {name_or_path!r} (built in: {', '.join(BUILT_IN_PROFILES)}) and no such file")
    return Profile.from_dict(json.loads(path.read_text()))
