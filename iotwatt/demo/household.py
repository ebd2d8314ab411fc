"""The demo organisation: the Konstanz household as a site with its asset tree, meter and channels."""

from django.contrib.auth import get_user_model
from django.db import transaction

from assets.models import Asset, AssetType, Channel, Device, DeviceModel, Organisation, Site
from telemetry.parameter_maps import IOTWATT_NATIVE

from .opsd import DEVICE_IDENTIFIER

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-energy-2016"

# channel key -> (asset name, asset type, channel role, parent). The grid import meter is
# the main panel's incomer and the appliances below it are sub-metered; PV is generation.
# The heat pump has its own grid supply and meter (a heat-pump tariff, usual in Germany),
# so it is a main meter beside the panel, not a sub-meter inside it.
CIRCUITS = {
    "grid_import": ("Main panel", "electrical_panel", Channel.Role.MAIN, "house"),
    "pv": ("PV inverter", "pv_inverter", Channel.Role.GENERATION, "panel"),
    "heat_pump": ("Heat pump", "hvac_unit", Channel.Role.MAIN, "house"),
    "dishwasher": ("Dishwasher", "generic_load", Channel.Role.SUB_METER, "panel"),
    "washing_machine": ("Washing machine", "generic_load", Channel.Role.SUB_METER, "panel"),
    "freezer": ("Freezer", "generic_load", Channel.Role.SUB_METER, "panel"),
}


def _asset(site: Site, parent: Asset | None, name: str, type_key: str, **attributes) -> Asset:
    asset = Asset.objects.filter(site=site, name=name, parent=parent).first()
    if asset is None:
        asset = Asset(site=site, parent=parent, name=name, asset_type=AssetType.objects.get(key=type_key, organisation=None), attributes=attributes)
        asset.full_clean()  # allowed parent, attributes valid, defaults filled in
        asset.save()
    return asset


@transaction.atomic
def create_demo_household(channel_keys: list[str]) -> Site:
    """Idempotent: a second demo run finds what the first created."""
    organisation, _ = Organisation.objects.get_or_create(slug="demo", defaults={"name": "IotWatt Demo"})
    site, _ = Site.objects.get_or_create(
        organisation=organisation, name="Konstanz household", defaults={"timezone": "Europe/Berlin"}
    )
    root = _asset(site, None, site.name, "site", address="Konstanz, Germany")
    house = _asset(site, root, "House", "building", use="residential")
    panel = _asset(site, house, "Main panel", "electrical_panel", voltage_v=400, phases=3)
    model, _ = DeviceModel.objects.update_or_create(
        key="iotwatt-native",
        organisation=None,
        defaults={"name": "IotWatt native meter", "manufacturer": "IotWatt", "parameter_map": IOTWATT_NATIVE},
    )
    device, _ = Device.objects.get_or_create(
        identifier=DEVICE_IDENTIFIER, defaults={"site": site, "device_model": model, "name": "Household meter"}
    )
    for key in channel_keys:
        asset_name, type_key, role, parent = CIRCUITS.get(
            key, (key.replace("_", " ").capitalize(), "generic_load", Channel.Role.SUB_METER, "panel")
        )
        asset = _asset(site, {"house": house, "panel": panel}[parent], asset_name, type_key)
        Channel.objects.update_or_create(
            device=device, key=key, metric=Channel.Metric.ENERGY,
            defaults={"asset": asset, "role": role, "name": key.replace("_", " ").capitalize()},
        )
    user_model = get_user_model()
    if not user_model.objects.filter(username=DEMO_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
    return site
