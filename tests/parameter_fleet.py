"""A fleet of configurable devices in an api_world organisation, for the parameter admin and API tests.

Besides the world's own device (site 1, model 1, no tag): meter-1 (site 1, model 1, floor-3),
meter-2 (site 2, model 1, floor-3 and pilot) and meter-3 (site 2, model 2, pilot).
"""

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from assets.models import Device, DeviceModel, Site
from control.answers import apply_answer
from control.definitions import configuration_of
from control.protocols import read_answer
from telemetry.parameter_maps import IOTWATT_NATIVE

from .api_world import World

NATIVE = configuration_of(IOTWATT_NATIVE)
ANSWERED_AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@dataclass
class Fleet:
    world: World
    second_site: Site
    second_model: DeviceModel
    devices: dict  # name -> Device, "meter-0" being the world's own device

    def named(self, *names) -> set[int]:
        return {self.devices[name].pk for name in names}


def build_fleet(world: World) -> Fleet:
    organisation = world.organisation
    second_site = Site.objects.create(organisation=organisation, name=f"{organisation.slug} second site", timezone="Europe/Berlin")
    second_model = DeviceModel.objects.create(
        key=f"{organisation.slug}-second-model", name=f"{organisation.slug} second model", organisation=organisation,
        parameter_map=copy.deepcopy(IOTWATT_NATIVE),
    )
    layout = {
        "meter-1": (world.site, world.device_model, ["floor-3"]),
        "meter-2": (second_site, world.device_model, ["floor-3", "pilot"]),
        "meter-3": (second_site, second_model, ["pilot"]),
    }
    devices = {"meter-0": world.device}
    for name, (site, model, tags) in layout.items():
        devices[name] = Device.objects.create(site=site, device_model=model, identifier=f"{organisation.slug}-{name}", tags=tags)
    return Fleet(world, second_site, second_model, devices)


def device_says(device: Device, message: dict) -> str:
    """A native device's message on config/reported, applied as the MQTT handler applies it."""
    raw = json.dumps(message)
    return apply_answer(device, NATIVE, read_answer("iotwatt", raw, NATIVE), raw, ANSWERED_AT)
