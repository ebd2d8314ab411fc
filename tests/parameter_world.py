"""Devices of the parameter tests: a site, and devices of the built-in models that take configuration."""

import copy

from assets.models import Device, DeviceModel, Organisation, Site
from telemetry.parameter_maps import IOTWATT_NATIVE, SHELLY_GEN2_SWITCH, TASMOTA_SENSOR

MAPS = {"iotwatt": IOTWATT_NATIVE, "tasmota": TASMOTA_SENSOR, "shelly_rpc": SHELLY_GEN2_SWITCH}


def device_model(protocol: str = "iotwatt", organisation: Organisation | None = None) -> DeviceModel:
    model, _ = DeviceModel.objects.get_or_create(
        organisation=organisation, key=f"params-{protocol.replace('_', '-')}",
        defaults={"name": f"Parameters {protocol}", "parameter_map": copy.deepcopy(MAPS[protocol])},
    )
    return model


def make_site(slug: str = "params") -> Site:
    organisation, _ = Organisation.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    site, _ = Site.objects.get_or_create(organisation=organisation, name=f"{slug} site", defaults={"timezone": "Europe/Berlin"})
    return site


def make_device(identifier: str, protocol: str = "iotwatt", site: Site | None = None, tags=(), online=None) -> Device:
    site = site or make_site()
    device = Device.objects.create(site=site, device_model=device_model(protocol), identifier=identifier, tags=list(tags))
    if online is not None:
        Device.objects.filter(pk=device.pk).update(online=online)
        device.refresh_from_db()
    return device
