"""No device can be registered on topics another device already receives: no organisation takes another's readings."""

import json

import pytest
from django.core.exceptions import ValidationError

from assets.models import Channel, Device, DeviceModel, Organisation, Site
from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, Reading
from telemetry.parameter_maps import IOTWATT_NATIVE

pytestmark = pytest.mark.django_db

# A map an attacker could write: the victim's topic, with {device} standing on its first level.
HIJACK_MAP = {**IOTWATT_NATIVE, "topic": "{device}/victim-1/telemetry"}


def site(slug: str) -> Site:
    organisation = Organisation.objects.create(name=slug, slug=slug)
    return Site.objects.create(organisation=organisation, name=f"{slug} site", timezone="Europe/Berlin")


@pytest.fixture
def victim():
    model = DeviceModel.objects.create(key="native", name="Native", parameter_map=IOTWATT_NATIVE)
    device = Device.objects.create(site=site("victim"), device_model=model, identifier="victim-1")
    Channel.objects.create(device=device, key="grid", metric="energy")
    return device


def test_a_device_whose_topics_overlap_another_devices_is_refused(victim):
    attacker_site = site("attacker")
    model = DeviceModel.objects.create(key="hijack", name="Hijack", organisation=attacker_site.organisation, parameter_map=HIJACK_MAP)
    intruder = Device(site=attacker_site, device_model=model, identifier="iotwatt")

    with pytest.raises(ValidationError) as refused:
        intruder.full_clean()

    assert "identifier" in refused.value.message_dict


def test_changing_a_models_topics_onto_another_devices_is_refused(victim):
    attacker_site = site("attacker")
    model = DeviceModel.objects.create(key="mine", name="Mine", organisation=attacker_site.organisation, parameter_map=IOTWATT_NATIVE)
    Device.objects.create(site=attacker_site, device_model=model, identifier="iotwatt")
    model.parameter_map = HIJACK_MAP

    with pytest.raises(ValidationError) as refused:
        model.full_clean()

    assert "parameter_map" in refused.value.message_dict


def test_a_topic_two_devices_claim_goes_to_neither(victim):
    """Should an overlap exist anyway (registered before the check), nothing is misrouted."""
    attacker_site = site("attacker")
    model = DeviceModel.objects.create(key="hijack", name="Hijack", organisation=attacker_site.organisation, parameter_map=HIJACK_MAP)
    intruder = Device.objects.create(site=attacker_site, device_model=model, identifier="iotwatt")  # no clean(): forced in
    Channel.objects.create(device=intruder, key="grid", metric="energy")
    payload = json.dumps({"ts": "2024-01-01T00:00:00Z", "channels": {"grid": {"energy_kwh": 1}}})

    ingest_messages([{"topic": "iotwatt/victim-1/telemetry", "payload": payload, "received_at": "2024-01-01T00:00:00+00:00"}])

    assert not Reading.objects.filter(channel__device=intruder).exists()
    assert "no single registered device" in DeadLetter.objects.get().reason


def test_the_same_identifier_pattern_on_other_topics_is_fine(victim):
    model = DeviceModel.objects.create(key="other", name="Other", parameter_map={**IOTWATT_NATIVE, "topic": "plant/{device}/data"})
    Device(site=site("neighbour"), device_model=model, identifier="meter-9").full_clean()
