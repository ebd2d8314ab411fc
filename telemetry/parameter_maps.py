"""Built-in parameter maps: how to read the payloads of device models the product knows out of the box.

The map format is documented in telemetry/decoders.py. Channel keys are the names a device's
channels must have (Channel.key) for its readings to be stored; each key is one measured thing.
"""

import copy


def _rate(path, metric: str, unit: str, sample: str = "instant") -> dict:
    return {"path": path, "metric": metric, "unit": unit, "sample": sample}


def _counter(path, unit: str) -> dict:
    return {"path": path, "metric": "energy", "unit": unit}


# The native IotWatt telemetry message: many channels per message, values with their unit in the field name.
# Channel keys come from the payload ("grid_import", ...).
# Status: a native device publishes "online" retained on `iotwatt/<device>/status` once connected and
# sets "offline" (retained) there as its last will, so the broker announces a connection that dies.
IOTWATT_NATIVE = {
    "topic": "iotwatt/{device}/telemetry",
    "status": {"topic": "iotwatt/{device}/status", "online": "online", "offline": "offline"},
    "timestamp": {"path": "ts", "format": "iso8601"},
    "channels_path": "channels",
    "quantities": {
        "energy_wh": {"metric": "energy", "unit": "Wh"},
        "energy_kwh": {"metric": "energy", "unit": "kWh"},
        "power_w": {"metric": "power", "unit": "W"},
        "power_kw": {"metric": "power", "unit": "kW"},
    },
    # Configuration over `iotwatt/<device>/config/set` and `.../config/reported`: docs/device-parameters.md.
    "configuration": {
        "protocol": "iotwatt",
        "parameters": {
            "reporting_interval_s": {"type": "integer", "unit": "s", "minimum": 1, "maximum": 3600, "default": 60,
                                     "description": "Seconds between telemetry messages"},
            "ct_ratio": {"type": "integer", "unit": "A", "choices": [50, 100, 200, 400, 600], "default": 100, "reboot": True,
                         "description": "Primary current of the current transformers"},
            "relay_default": {"type": "string", "choices": ["on", "off", "last"], "default": "last",
                              "description": "Relay state after power returns"},
            "max_power_w": {"type": "number", "unit": "W", "minimum": 0, "description": "Power limit the device enforces"},
            "firmware": {"type": "string", "writable": False},
        },
    },
}


# Tasmota energy drivers (HLW8012, BL0937, CSE7766, PZEM-0xx): the ENERGY object of `tele/<topic>/SENSOR`,
# and the same object in the reply to `Status 10` (`Status 8` on older firmware) under StatusSNS.
# Channel keys:
#   energy          ENERGY.Total, kWh cumulative import counter -> Wh
#   power           ENERGY.Power W          apparent_power  ENERGY.ApparentPower VA
#   reactive_power  ENERGY.ReactivePower var power_factor  ENERGY.Factor
#   voltage         ENERGY.Voltage V        current         ENERGY.Current A
#   frequency       ENERGY.Frequency Hz (only drivers that measure it)
# Not read: Today/Yesterday (reset at the device's local midnight; Total holds the same energy)
# and Period (energy since the last message; no interval-energy metric).
# Time: Tasmota's Time is local wall-clock time without offset, in whatever Timezone the device is
# set to, and 1970-01-01T.. before NTP syncs. The built-in map cannot know the device's zone, so it
# uses the arrival time (Tasmota publishes the moment it reads). tasmota_sensor_in(zone) reads Time.
# Status: `tele/<topic>/LWT`, "Online" (retained, on connect) and "Offline" (retained, the last will).
_TASMOTA_CHANNELS = {
    "energy": _counter("ENERGY.Total", "kWh"),
    "power": _rate("ENERGY.Power", "power", "W"),
    "apparent_power": _rate("ENERGY.ApparentPower", "apparent_power", "VA"),
    "reactive_power": _rate("ENERGY.ReactivePower", "reactive_power", "var"),
    "power_factor": _rate("ENERGY.Factor", "power_factor", "PF"),
    "voltage": _rate("ENERGY.Voltage", "voltage", "V"),
    "current": _rate("ENERGY.Current", "current", "A"),
    "frequency": _rate("ENERGY.Frequency", "frequency", "Hz"),
}
TASMOTA_SENSOR = {
    "format": "json",
    "topics": [
        "tele/{device}/SENSOR",
        {"pattern": "stat/{device}/STATUS10", "root": "StatusSNS"},
        {"pattern": "stat/{device}/STATUS8", "root": "StatusSNS"},
    ],
    "timestamp": {"source": "arrival"},
    "channels": _TASMOTA_CHANNELS,
    "status": {"topic": "tele/{device}/LWT", "online": "Online", "offline": "Offline"},
    # Tasmota takes configuration as commands on `cmnd/<topic>/<Command>` and answers on `stat/<topic>/RESULT`.
    "configuration": {
        "protocol": "tasmota",
        "parameters": {
            "tele_period_s": {"type": "integer", "unit": "s", "minimum": 10, "maximum": 3600, "default": 300, "command": "TelePeriod",
                              "description": "Seconds between SENSOR messages"},
            "power_on_state": {"type": "integer", "choices": [0, 1, 2, 3, 4, 5], "default": 3, "command": "PowerOnState",
                               "description": "Relay after power returns: 0 off, 1 on, 2 toggle, 3 last, 4 on and locked, 5 inverted PulseTime"},
            "power_delta": {"type": "integer", "minimum": 0, "maximum": 32000, "default": 0, "command": "PowerDelta",
                            "description": "Report at once when power changes by this much (101-32000: W + 100; 1-100: %)"},
        },
    },
}


def tasmota_sensor_in(timezone: str, unsynced: str = "arrival") -> dict:
    """TASMOTA_SENSOR reading the device's Time in its IANA `timezone` (the zone its Timezone/DST
    settings give). A clock not yet set by NTP (1970) falls back to the arrival time, or with
    unsynced="refuse" the message is refused."""
    parameter_map = copy.deepcopy(TASMOTA_SENSOR)
    parameter_map["timestamp"] = {"path": "Time", "format": "local", "timezone": timezone, "unsynced": unsynced}
    return parameter_map


# Shelly Gen2/Gen3 relays with metering (Plus 1PM, Plus Plug S, Pro 4PM...), component switch:0:
# NotifyStatus frames on `<prefix>/events/rpc` (only the changed keys, time in params.ts) and the
# full status on `<prefix>/status/switch:0` (no time: arrival). A ts before 2000 (1.61 s after
# boot, before SNTP) falls back to the arrival time.
# Channel keys:
#   power            switch:0.apower W          energy           switch:0.aenergy.total Wh counter
#   returned_energy  switch:0.ret_aenergy.total Wh (bidirectional models)
#   voltage          switch:0.voltage V         current          switch:0.current A
#   frequency        switch:0.freq Hz           power_factor     switch:0.pf
# Status (every Gen2/Gen3 device): `<prefix>/online`, "true" (retained, on connect) and "false" (the last will).
# Not read: aenergy.by_minute (mWh per minute, stamped by minute_ts, not params.ts: interval energy
# with its own time; the counter gives the same energy).
_SHELLY_STATUS = {"topic": "{device}/online", "online": "true", "offline": "false"}


def _shelly_component_map(component: str, channels: dict) -> dict:
    prefix = f"params.{component}."
    return {
        "format": "json",
        "topics": [
            {"pattern": "{device}/events/rpc",
             "timestamp": {"path": "params.ts", "format": "unix", "unsynced": "arrival"}},
            {"pattern": f"{{device}}/status/{component}", "wrap": f"params.{component}", "timestamp": {"source": "arrival"}},
        ],
        "channels": {key: dict(spec, path=prefix + spec["path"]) for key, spec in channels.items()},
        "status": dict(_SHELLY_STATUS),
        # Shelly Gen2 RPC over MQTT: requests on `<prefix>/rpc`, answers on `<src>/rpc`.
        "configuration": {
            "protocol": "shelly_rpc",
            "parameters": {
                "device_name": {"type": "string", "rpc": {"method": "Sys.SetConfig", "config_key": "device.name"}},
                **({"initial_state": {
                    "type": "string", "choices": ["off", "on", "restore_last", "match_input"], "default": "restore_last",
                    "rpc": {"method": "Switch.SetConfig", "params": {"id": 0}, "config_key": "initial_state"},
                    "description": "Relay after power returns",
                }} if component.startswith("switch:") else {}),
            },
        },
    }


SHELLY_GEN2_SWITCH = _shelly_component_map("switch:0", {
    "power": _rate("apower", "power", "W"),
    "energy": _counter("aenergy.total", "Wh"),
    "returned_energy": _counter("ret_aenergy.total", "Wh"),
    "voltage": _rate("voltage", "voltage", "V"),
    "current": _rate("current", "current", "A"),
    "frequency": _rate("freq", "frequency", "Hz"),
    "power_factor": _rate("pf", "power_factor", "PF"),
})


# Shelly Pro 3EM: em:0 (instantaneous values per phase a/b/c) and emdata:0 (counters), in
# NotifyStatus frames on `<prefix>/events/rpc` and on `<prefix>/status/em:0`, `<prefix>/status/emdata:0`.
# Channel keys are Shelly's field names:
#   em:0      a_/b_/c_act_power W (signed: + import, - export), total_act_power W,
#             a_/b_/c_aprt_power VA, total_aprt_power VA, a_/b_/c_voltage V, a_/b_/c_/n_current A,
#             total_current A, a_/b_/c_pf, a_/b_/c_freq Hz
#   emdata:0  a_/b_/c_total_act_energy Wh, total_act Wh (import counters),
#             a_/b_/c_total_act_ret_energy Wh, total_act_ret Wh (export counters)
_PHASES = ("a", "b", "c")
_EM0 = {
    **{f"{p}_act_power": _rate(f"em:0.{p}_act_power", "power", "W") for p in _PHASES},
    "total_act_power": _rate("em:0.total_act_power", "power", "W"),
    **{f"{p}_aprt_power": _rate(f"em:0.{p}_aprt_power", "apparent_power", "VA") for p in _PHASES},
    "total_aprt_power": _rate("em:0.total_aprt_power", "apparent_power", "VA"),
    **{f"{p}_voltage": _rate(f"em:0.{p}_voltage", "voltage", "V") for p in _PHASES},
    **{f"{p}_current": _rate(f"em:0.{p}_current", "current", "A") for p in (*_PHASES, "n")},
    "total_current": _rate("em:0.total_current", "current", "A"),
    **{f"{p}_pf": _rate(f"em:0.{p}_pf", "power_factor", "PF") for p in _PHASES},
    **{f"{p}_freq": _rate(f"em:0.{p}_freq", "frequency", "Hz") for p in _PHASES},
}
_EMDATA0 = {
    **{f"{p}_total_act_energy": _counter(f"emdata:0.{p}_total_act_energy", "Wh") for p in _PHASES},
    "total_act": _counter("emdata:0.total_act", "Wh"),
    **{f"{p}_total_act_ret_energy": _counter(f"emdata:0.{p}_total_act_ret_energy", "Wh") for p in _PHASES},
    "total_act_ret": _counter("emdata:0.total_act_ret", "Wh"),
}
_SHELLY_NOTIFY = {"pattern": "{device}/events/rpc", "root": "params",
                  "timestamp": {"path": "ts", "format": "unix", "unsynced": "arrival"}}
SHELLY_PRO_3EM = {
    "format": "json",
    "topics": [
        _SHELLY_NOTIFY,
        {"pattern": "{device}/status/em:0", "wrap": "em:0", "timestamp": {"source": "arrival"}},
        {"pattern": "{device}/status/emdata:0", "wrap": "emdata:0", "timestamp": {"source": "arrival"}},
    ],
    "channels": {**_EM0, **_EMDATA0},
    "status": dict(_SHELLY_STATUS),
}


# Shelly EM Gen3 / Pro EM: two CT channels, components em1:0 and em1:1 (values) and
# em1data:0, em1data:1 (counters). Channel keys: em1_<n>_<field> for act_power W (signed),
# aprt_power VA, voltage V, current A, pf, freq Hz; em1data_<n>_total_act_energy and
# em1data_<n>_total_act_ret_energy Wh.
def _em1_channels(n: int) -> dict:
    return {
        f"em1_{n}_act_power": _rate(f"em1:{n}.act_power", "power", "W"),
        f"em1_{n}_aprt_power": _rate(f"em1:{n}.aprt_power", "apparent_power", "VA"),
        f"em1_{n}_voltage": _rate(f"em1:{n}.voltage", "voltage", "V"),
        f"em1_{n}_current": _rate(f"em1:{n}.current", "current", "A"),
        f"em1_{n}_pf": _rate(f"em1:{n}.pf", "power_factor", "PF"),
        f"em1_{n}_freq": _rate(f"em1:{n}.freq", "frequency", "Hz"),
        f"em1data_{n}_total_act_energy": _counter(f"em1data:{n}.total_act_energy", "Wh"),
        f"em1data_{n}_total_act_ret_energy": _counter(f"em1data:{n}.total_act_ret_energy", "Wh"),
    }


SHELLY_EM1 = {
    "format": "json",
    "topics": [_SHELLY_NOTIFY] + [
        {"pattern": f"{{device}}/status/{component}", "wrap": component, "timestamp": {"source": "arrival"}}
        for component in ("em1:0", "em1:1", "em1data:0", "em1data:1")
    ],
    "channels": {**_em1_channels(0), **_em1_channels(1)},
    "status": dict(_SHELLY_STATUS),
}


# ESPHome `mqtt:` sensors: `<node>/sensor/<object_id>/state`, one decimal text per topic, no time
# (arrival), no unit: the unit is here. The keys are the usual object ids of energy-meter configs;
# check them (and their units: ESPHome energy sensors are often kWh but may be Wh) against the
# node's YAML, and copy this map to add others. A state of 'nan' or 'None' is a problem.
# Channel keys: power W, voltage V, current A, power_factor, frequency Hz, apparent_power VA,
# reactive_power var, energy kWh (a total_increasing counter), daily_energy and total_daily_energy
# kWh (counters that reset at the node's local midnight: a reset to the counter maths).
# Status: `<node>/status`, "online" (the birth message) and "offline" (the last will), both retained.
ESPHOME_STATE = {
    "format": "plain",
    "topic": "{device}/sensor/{channel}/state",
    "channels": {
        "power": {"metric": "power", "unit": "W", "sample": "instant"},
        "voltage": {"metric": "voltage", "unit": "V", "sample": "instant"},
        "current": {"metric": "current", "unit": "A", "sample": "instant"},
        "power_factor": {"metric": "power_factor", "unit": "PF", "sample": "instant"},
        "frequency": {"metric": "frequency", "unit": "Hz", "sample": "instant"},
        "apparent_power": {"metric": "apparent_power", "unit": "VA", "sample": "instant"},
        "reactive_power": {"metric": "reactive_power", "unit": "var", "sample": "instant"},
        "energy": {"metric": "energy", "unit": "kWh"},
        "daily_energy": {"metric": "energy", "unit": "kWh"},
        "total_daily_energy": {"metric": "energy", "unit": "kWh"},
    },
    "status": {"topic": "{device}/status", "online": "online", "offline": "offline"},
}


# emonTx4 / emonTx5 / emonPi2 through emonhub, in any of its three MQTT formats:
#   nodevar  `emon/<nodename>/<var>`, one number per topic, time of arrival
#   JSON     `emon/<nodename>`, all variables plus "time" (Unix s, set by emonhub on receipt)
#   node     `emonhub/rx/<node id>/values`, the decoder's variables as CSV, time of arrival
#            (here the device identifier is the node id, e.g. "17", not the node name)
# Channel keys are the emonTx4 variable names (CSV columns in decoder order: MSG, Vrms, P1..P6,
# E1..E6, T1..T3, pulse):
#   Vrms  V (RMS over the reporting interval)
#   P1..P6  W real power per CT, signed (negative = export when the CT faces the grid),
#           averaged over the reporting interval
#   E1..E6  Wh cumulative counters per CT
# Not read: MSG (message counter), T1..T3 (temperatures), pulse.
# No status: emonhub's MQTT interfacer sets no last will and publishes no availability topic, and the
# emonTx nodes reach the broker only through the hub; a node's status is its last message (last_seen_at).
EMONHUB = {
    "format": "json",
    "topics": [
        {"pattern": "emon/{device}/{channel}", "format": "plain"},
        {"pattern": "emon/{device}", "timestamp": {"path": "time", "format": "unix", "unsynced": "refuse"}},
        {"pattern": "emonhub/rx/{device}/values", "format": "csv"},
    ],
    "channels": {
        "Vrms": {"metric": "voltage", "unit": "V", "sample": "interval_average", "column": 1},
        **{f"P{i}": {"metric": "power", "unit": "W", "sample": "interval_average", "column": 1 + i} for i in range(1, 7)},
        **{f"E{i}": {"metric": "energy", "unit": "Wh", "column": 7 + i} for i in range(1, 7)},
    },
}


# IoTaWatt has no MQTT client: it uploads over HTTP (Emoncms bulk, InfluxDB line protocol, PVOutput)
# and serves a Query API, so none of its formats reaches the MQTT path these maps serve.

# IoTaWatt over HTTP: its InfluxDB uploads (telemetry/influx_upload.py) arrive as native messages on
# `iotawatt-influx/<device tag>`, a channel per measurement (output name) and the units tag as the field.
# Values are averages over the upload interval starting at the line's time. Wh and kWh outputs are the
# energy of one interval, not a counter: they are left out, so they become dead letters, not wrong energy.
IOTAWATT_INFLUX = {
    "topic": "iotawatt-influx/{device}",
    "timestamp": {"path": "ts", "format": "iso8601"},
    "channels_path": "channels",
    "quantities": {
        units: {"metric": metric, "unit": unit, "sample": "interval_average_start"}
        for units, metric, unit in (
            ("Watts", "power", "W"), ("kW", "power", "kW"), ("Volts", "voltage", "V"),
            ("VA", "apparent_power", "VA"), ("PF", "power_factor", "PF"), ("Hz", "frequency", "Hz"),
        )
    },
}


BUILT_IN_MAPS = {
    "iotwatt_native": IOTWATT_NATIVE,
    "iotawatt_influx": IOTAWATT_INFLUX,
    "tasmota_sensor": TASMOTA_SENSOR,
    "shelly_gen2_switch": SHELLY_GEN2_SWITCH,
    "shelly_pro_3em": SHELLY_PRO_3EM,
    "shelly_em1": SHELLY_EM1,
    "esphome_state": ESPHOME_STATE,
    "emonhub": EMONHUB,
}
