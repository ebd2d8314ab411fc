"""The demo organisation: the Konstanz household as a site with its asset tree, meter and channels."""

from django.contrib.auth import get_user_model
from django.db import transaction

from assets.models import Asset, Channel, Device, DeviceModel, Organisation, Site
from telemetry.parameter_maps import IOTWATT_NATIVE

from .opsd import DEVICE_IDENTIFIER

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-energy-2016"

# channel key -> (asset name, asset kind); grid import is the house's main meter.
CIRCUITS = {
    "grid_import": ("Grid connection", "circuit"),
    "pv": ("PV inverter", "pv_inverter"),
    "heat_pump": ("Heat pump", "hvac"),
    "dishwasher": ("Dishwasher", "load"),
    "washing_machine": ("Washing machine", "load"),
    "freezer": ("Freezer", "load"),
}


@transaction.atomic
def create_demo_household(channel_keys: list[str]) -> Site:
    """Idempotent: a second demo run finds what the first created."""
    organisation, _ = Organisation.objects.get_or_create(slug="demo", defaults={"name": "IotWatt Demo"})
    site, _ = Site.objects.get_or_create(
        organisation=organisation, name="Konstanz household", defaults={"timezone": "Europe/Berlin"}
    )
    house, _ = Asset.objects.get_or_create(site=site, name="House", parent=None, defaults={"kind": "building"})
    panel, _ = Asset.objects.get_or_create(site=site, name="Main panel", parent=house, defaults={"kind": "panel"})
    model, _ = DeviceModel.objects.update_or_create(
        key="iotwatt-native",
        defaults={"name": "IotWatt native meter", "manufacturer": "IotWatt", "parameter_map": IOTWATT_NATIVE},
    )
    device, _ = Device.objects.get_or_create(
        identifier=DEVICE_IDENTIFIER, defaults={"site": site, "device_model": model, "name": "Household meter"}
    )
    for key in channel_keys:
        asset_name, kind = CIRCUITS.get(key, (key.replace("_", " ").capitalize(), "load"))
        asset, _ = Asset.objects.get_or_create(site=site, name=asset_name, parent=panel, defaults={"kind": kind})
        Channel.objects.get_or_create(
            device=device, key=key, metric=Channel.Metric.ENERGY, defaults={"asset": asset, "name": asset_name}
        )
    user_model = get_user_model()
    if not user_model.objects.filter(username=DEMO_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
    return site
