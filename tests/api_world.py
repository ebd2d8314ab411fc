"""Organisations with a full set of objects each, and API clients for their members (REST API tests)."""

import itertools
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assets.models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site
from assets.tenancy import ORGANISATION_PATH
from telemetry.parameter_maps import IOTWATT_NATIVE

_serial = itertools.count(1)

# A small org-owned type: a rack that stands on the site or in a panel, with one bounded attribute.
RACK_SCHEMA = {
    "type": "object",
    "properties": {
        "rated_power_kw": {"type": "number", "minimum": 0, "unit": "kW"},
        "units": {"type": "integer", "minimum": 1, "default": 42},
    },
    "additionalProperties": False,
}


@dataclass
class World:
    """One organisation: a site with a tree (root → panel → circuit, and a rack), its own asset
    type and device model, a device with a channel, and a viewer, an operator and an admin."""

    organisation: Organisation
    site: Site
    root: Asset
    panel: Asset
    circuit: Asset
    rack: Asset
    asset_type: AssetType
    device_model: DeviceModel
    device: Device
    channel: Channel
    users: dict = field(default_factory=dict)  # role -> user
    memberships: dict = field(default_factory=dict)  # role -> Membership

    def objects(self) -> dict:
        """One object of each model of this organisation (what other organisations must never reach)."""
        return {
            Organisation: self.organisation,
            Membership: self.memberships["viewer"],
            Site: self.site,
            AssetType: self.asset_type,
            Asset: self.panel,
            DeviceModel: self.device_model,
            Device: self.device,
            Channel: self.channel,
        }

    def client(self, role: str) -> APIClient:
        return token_client(self.users[role])


def rows_of(world: World, model):
    """All rows of `model` that belong to the world's organisation."""
    return model.objects.filter(**{ORGANISATION_PATH[model]: world.organisation.pk})


def standard_type(key: str) -> AssetType:
    return AssetType.objects.get(key=key, organisation=None)


def make_user(username: str, password: str | None = None, **extra):
    """No password unless asked: hashing one takes a good part of a second."""
    return get_user_model().objects.create_user(username=username, password=password, **extra)


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def build_world(slug: str, zone: str = "Europe/Berlin") -> World:
    n = next(_serial)
    organisation = Organisation.objects.create(name=f"Org {slug}", slug=f"{slug}-{n}")
    site = Site.objects.create(organisation=organisation, name=f"Site {slug}", timezone=zone)
    rack_type = AssetType.objects.create(
        key=f"rack-{slug}-{n}", name=f"Rack {slug}", organisation=organisation, attribute_schema=RACK_SCHEMA
    )
    rack_type.allowed_parents.set([standard_type("site"), standard_type("electrical_panel")])
    root = Asset.objects.create(site=site, name=f"{slug} root", asset_type=standard_type("site"))
    panel = Asset.objects.create(site=site, name=f"{slug} panel", parent=root, asset_type=standard_type("electrical_panel"))
    circuit = Asset.objects.create(site=site, name=f"{slug} circuit", parent=panel, asset_type=standard_type("circuit"))
    rack = Asset.objects.create(site=site, name=f"{slug} rack", parent=root, asset_type=rack_type, tags=["it"])
    device_model = DeviceModel.objects.create(
        key=f"meter-{slug}-{n}", name=f"Meter {slug}", organisation=organisation, parameter_map=IOTWATT_NATIVE
    )
    device = Device.objects.create(site=site, device_model=device_model, identifier=f"dev-{slug}-{n}")
    channel = Channel.objects.create(device=device, key="main", metric=Channel.Metric.ENERGY, role=Channel.Role.MAIN, asset=panel)
    world = World(organisation, site, root, panel, circuit, rack, rack_type, device_model, device, channel)
    for role in Membership.Role.values:
        user = make_user(f"{slug}-{role}-{n}")
        world.users[role] = user
        world.memberships[role] = Membership.objects.create(user=user, organisation=organisation, role=role)
    return world
