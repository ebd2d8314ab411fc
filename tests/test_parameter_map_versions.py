"""Every parameter map a device model has had is kept, numbered, with who saved it."""

import copy
import json

import pytest

from assets.models import ParameterMapVersion
from telemetry.parameter_maps import IOTWATT_NATIVE

from .api_world import build_world, make_user, token_client

pytestmark = pytest.mark.django_db


def changed_map() -> dict:
    new = copy.deepcopy(IOTWATT_NATIVE)
    new["quantities"]["energy_mwh"] = {"metric": "energy", "unit": "MWh"}
    return new


def test_a_new_model_has_version_1_and_only_a_changed_map_makes_another():
    world = build_world("versions")
    model = world.device_model
    assert model.map_version == 1

    model.name = "Renamed"
    model.save()
    assert model.map_version == 1

    model.parameter_map = changed_map()
    model.save()
    assert model.map_version == 2
    first, second = model.map_versions.order_by("version")
    assert first.parameter_map == IOTWATT_NATIVE and second.parameter_map == changed_map()


def test_the_api_records_who_saved_each_version():
    world = build_world("api-versions")
    operator = world.users["operator"]

    response = token_client(operator).patch(
        f"/api/device-models/{world.device_model.pk}/", {"parameter_map": changed_map()}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["map_version"] == 2
    assert ParameterMapVersion.objects.get(device_model=world.device_model, version=2).saved_by == operator


def test_the_admin_records_who_saved_and_shows_the_history(client):
    world = build_world("admin-versions")
    root = make_user("root-versions", is_staff=True, is_superuser=True)
    client.force_login(root)
    model = world.device_model
    page = client.get(f"/admin/assets/devicemodel/{model.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data.update({"parameter_map": json.dumps(changed_map()), "organisation": model.organisation_id, "manufacturer": ""})
    data.update({"map_versions-TOTAL_FORMS": "1", "map_versions-INITIAL_FORMS": "1", "map_versions-MIN_NUM_FORMS": "0",
                 "map_versions-MAX_NUM_FORMS": "1000", "map_versions-0-id": model.map_versions.get().pk,
                 "map_versions-0-device_model": model.pk})

    response = client.post(f"/admin/assets/devicemodel/{model.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert ParameterMapVersion.objects.get(device_model=model, version=2).saved_by == root
    assert "parameter map version" in client.get(f"/admin/assets/devicemodel/{model.pk}/change/").content.decode().lower()


def test_true_where_the_map_said_1_is_a_new_version():
    """In Python True == 1; in a map they are different values."""
    model = build_world("bool-versions").device_model
    model.parameter_map = {**IOTWATT_NATIVE, "description": 1}
    model.save()
    model.parameter_map = {**IOTWATT_NATIVE, "description": True}
    model.save()

    assert model.map_version == 3


def test_a_save_of_other_fields_records_no_unsaved_map():
    model = build_world("fields-versions").device_model
    model.parameter_map = changed_map()  # changed in memory only
    model.name = "Renamed"
    model.save(update_fields=["name"])

    assert model.map_version == 1


def test_the_api_list_shows_map_versions_without_a_query_per_model():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from assets.models import DeviceModel

    world = build_world("many-versions")
    client = token_client(world.users["operator"])

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/device-models/").status_code == 200
        return len(captured)

    few = queries_for_list()
    for n in range(10):
        DeviceModel.objects.create(organisation=world.organisation, key=f"extra-{n}", name=f"Extra {n}", parameter_map=IOTWATT_NATIVE)
    assert queries_for_list() == few
