"""Rules every asset save keeps, whatever the path (admin, API, import)."""

import pytest
from django.core.exceptions import ValidationError

from assets.json_values import json_problem
from assets.models import Asset, AssetType, Organisation, Site, validate_timezone

pytestmark = pytest.mark.django_db


def standard(key: str) -> AssetType:
    return AssetType.objects.get(key=key, organisation=None)


@pytest.fixture
def panel():
    organisation = Organisation.objects.create(name="Acme", slug="acme")
    site = Site.objects.create(organisation=organisation, name="HQ", timezone="Europe/Madrid")
    root = Asset.objects.create(site=site, asset_type=standard("site"), name="HQ")
    building = Asset.objects.create(site=site, asset_type=standard("building"), name="Main", parent=root)
    panel = Asset.objects.create(site=site, asset_type=standard("electrical_panel"), name="Panel", parent=building)
    Asset.objects.create(site=site, asset_type=standard("circuit"), name="C1", parent=panel)
    return panel


def test_a_parent_cannot_change_to_a_type_its_children_may_not_sit_under(panel):
    panel.asset_type = standard("generic_load")
    panel.attributes = {}

    with pytest.raises(ValidationError) as refused:
        panel.save()

    assert "C1" in refused.value.message_dict["asset_type"][0]


@pytest.mark.parametrize(
    "attributes, problem",
    [
        ({"address": "a\x00b"}, "NUL"),
        ({"address": "\udfff"}, "surrogate"),
        ({"grid_connection_kva": float("inf")}, "cannot store"),
    ],
)
def test_attributes_postgresql_cannot_store_are_refused_with_a_message(panel, attributes, problem):
    root = panel.parent.parent
    root.attributes = attributes
    with pytest.raises(ValidationError) as refused:
        root.save()
    assert problem in str(refused.value.message_dict["attributes"])


def test_deep_json_is_refused_without_recursing():
    deep = current = {}
    for _ in range(100_000):
        current["x"] = current = {}
    assert "nested more than" in json_problem(deep)


@pytest.mark.parametrize("name", ["localtime", "Factory", "Mars/Olympus"])
def test_a_site_zone_must_be_a_real_place(name):
    with pytest.raises(ValidationError):
        validate_timezone(name)
