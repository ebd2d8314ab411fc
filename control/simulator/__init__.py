"""Simulated devices that speak IotWatt's MQTT protocols (docs/device-parameters.md), device side.

    with simulate(broker_url, count=3, prefix="sim-", profile="iotwatt-meter") as fleet:
        fleet.wait_online()
        device = fleet.devices[0]
        device.go_offline(); device.go_online()
"""

from .device import Counters, ParameterRule, SimulatedDevice
from .fleet import Fleet, build_devices, device_ids, simulate
from .profiles import BUILT_IN_PROFILES, Profile, load_profile
from .telemetry import CsvReplay, ProfileLoad

__all__ = [
    "BUILT_IN_PROFILES", "Counters", "CsvReplay", "Fleet", "ParameterRule", "Profile", "ProfileLoad",
    "SimulatedDevice", "build_devices", "device_ids", "load_profile", "simulate",
]
