"""`manage.py built_in_device_models`: the shared device models an operator starts from."""

import io

import pytest
from django.core.management import call_command

from assets.models import DeviceModel
from telemetry.parameter_maps import BUILT_IN_MAPS


@pytest.mark.django_db
def test_the_built_in_models_are_created_once_and_updated_in_place():
    out = io.StringIO()
    call_command("built_in_device_models", stdout=out)
    models = {model.key: model for model in DeviceModel.objects.filter(organisation=None)}
    assert set(models) == {name.replace("_", "-") for name in BUILT_IN_MAPS}
    assert models["tasmota-sensor"].parameter_map == BUILT_IN_MAPS["tasmota_sensor"]
    assert models["iotwatt-native"].parameter_map["configuration"]["protocol"] == "iotwatt"
    assert out.getvalue().count("created") == len(BUILT_IN_MAPS)
    DeviceModel.objects.filter(key="emonhub").update(name="renamed")
    again = io.StringIO()
    call_command("built_in_device_models", stdout=again)
    assert DeviceModel.objects.filter(organisation=None).count() == len(BUILT_IN_MAPS)
    assert DeviceModel.objects.get(key="emonhub").name == "OpenEnergyMonitor emonhub"
    assert again.getvalue().count("updated") == len(BUILT_IN_MAPS)
