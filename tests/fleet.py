"""A simulated fleet of native IotWatt meters, 16 channels each, with readings anyone can recompute.

Channels ch01-ch08 are cumulative energy counters (Wh) and ch09-ch16 instantaneous power (W):
an IotWatt board carries both kinds, and the counters also exercise the 15-minute rollup.
Every value is a whole number, so what PostgreSQL stores compares exactly with what was sent.
"""

import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ENERGY_KEYS = [f"ch{n:02d}" for n in range(1, 9)]
POWER_KEYS = [f"ch{n:02d}" for n in range(9, 17)]
READINGS_PER_MESSAGE = len(ENERGY_KEYS) + len(POWER_KEYS)
FIRST_TIME = datetime(2025, 6, 1, tzinfo=timezone.utc)
INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Fleet:
    prefix: str
    devices: int
    messages_per_device: int

    @property
    def identifiers(self) -> list[str]:
        return [f"{self.prefix}-{d:03d}" for d in range(self.devices)]

    @property
    def readings(self) -> int:
        return self.devices * self.messages_per_device * READINGS_PER_MESSAGE

    def time(self, index: int) -> datetime:
        return FIRST_TIME + index * INTERVAL

    def values(self, device: int, index: int) -> dict[str, tuple[str, int]]:
        """channel key -> (quantity field, value) of message `index` of device number `device`."""
        values = {key: ("energy_wh", 1_000_000 * (device + 1) + index * (c + 1) * 7) for c, key in enumerate(ENERGY_KEYS)}
        values.update({key: ("power_w", 100 * (c + 1) + (device * 31 + index * 17) % 250) for c, key in enumerate(POWER_KEYS)})
        return values

    def message(self, device: int, index: int) -> tuple[str, str]:
        channels = {key: {field: value} for key, (field, value) in self.values(device, index).items()}
        payload = json.dumps({"ts": self.time(index).isoformat().replace("+00:00", "Z"), "channels": channels})
        return f"iotwatt/{self.identifiers[device]}/telemetry", payload

    def messages(self) -> list[tuple[str, str]]:
        """Round-robin over the devices, as a fleet reporting every minute would arrive."""
        return [self.message(d, i) for i in range(self.messages_per_device) for d in range(self.devices)]

    def expected_readings(self) -> set[tuple[str, str, datetime, float]]:
        """{(device identifier, channel key, time, value)} of every reading the fleet sends."""
        return {
            (identifier, key, self.time(i), float(value))
            for d, identifier in enumerate(self.identifiers)
            for i in range(self.messages_per_device)
            for key, (_, value) in self.values(d, i).items()
        }


def register_fleet(identifiers: list[str], site_name: str) -> None:
    """Devices of the built-in native model with their 16 channels, on one site of a test organisation."""
    from django.db import transaction

    from assets.models import Channel, Device, DeviceModel, Organisation, Site
    from telemetry.parameter_maps import IOTWATT_NATIVE

    with transaction.atomic():
        organisation, _ = Organisation.objects.get_or_create(slug="fleet", defaults={"name": "Fleet operator"})
        site = Site.objects.create(organisation=organisation, name=site_name, timezone="Europe/Berlin")
        model, _ = DeviceModel.objects.get_or_create(
            key="iotwatt-native", organisation=None, defaults={"name": "IotWatt native meter", "parameter_map": IOTWATT_NATIVE}
        )
        devices = Device.objects.bulk_create([Device(site=site, device_model=model, identifier=i) for i in identifiers])
        Channel.objects.bulk_create(
            [Channel(device=device, key=key, metric=Channel.Metric.ENERGY) for device in devices for key in ENERGY_KEYS]
            + [Channel(device=device, key=key, metric=Channel.Metric.POWER) for device in devices for key in POWER_KEYS]
        )


if __name__ == "__main__":
    # python -m tests.fleet '<json list of identifiers>' '<site name>', with DATABASE_URL naming the database.
    import django

    django.setup()
    register_fleet(json.loads(sys.argv[1]), sys.argv[2])
