"""The asset tree through the REST API: attributes against the type's schema, tree rules,
subtree/ancestors, filtering, ordering, pagination, authentication and energy per period."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from assets.models import Asset, AssetType, Channel, Device, Site
from telemetry.ingest import ingest_messages

from .api_world import build_world, make_user, standard_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def a():
    return build_world("a")


@pytest.fixture
def operator(a):
    return a.client("operator")


def create_asset(client, **fields):
    return client.post(reverse("asset-list"), fields, format="json")


def asset_url(asset, action=None):
    return reverse(f"asset-{action}" if action else "asset-detail", args=[asset.pk if hasattr(asset, "pk") else asset])


# Attributes


def test_invalid_attribute_answers_400_with_its_path(operator, a):
    response = create_asset(
        operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("hvac_unit").pk, name="AHU",
        attributes={"rated_power_kw": -5},
    )
    assert response.status_code == 400
    assert response.json() == {"attributes": {"rated_power_kw": ["-5 is less than the minimum of 0"]}}


def test_every_attribute_problem_is_reported_by_attribute(operator, a):
    response = create_asset(
        operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("hvac_unit").pk, name="AHU",
        attributes={"rated_power_kw": "big", "colour": "red", "controllable": "yes"},
    )
    assert response.status_code == 400
    errors = response.json()["attributes"]
    assert errors["rated_power_kw"] == ["'big' is not of type 'number'"]
    assert errors["controllable"] == ["'yes' is not of type 'boolean'"]
    assert "Unknown attribute" in errors[""][0] if "" in errors else "Unknown attribute" in errors["non_field_errors"][0]
    assert not Asset.objects.filter(name="AHU").exists()


def test_attributes_must_be_an_object(operator, a):
    response = create_asset(operator, site=a.site.pk, parent=a.root.pk, asset_type=a.asset_type.pk, name="R", attributes=[1])
    assert response.status_code == 400
    assert "attributes" in response.json()


def test_missing_attributes_get_their_schema_defaults(operator, a):
    response = create_asset(operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("electrical_panel").pk, name="DB-2")
    assert response.status_code == 201, response.content
    assert response.json()["attributes"] == {"voltage_v": 400, "phases": 3}
    assert Asset.objects.get(pk=response.json()["id"]).attributes == {"voltage_v": 400, "phases": 3}
    # A value given stays as given.
    response = create_asset(
        operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("electrical_panel").pk, name="DB-3",
        attributes={"phases": 1},
    )
    assert response.json()["attributes"] == {"voltage_v": 400, "phases": 1}


def test_changing_the_type_checks_the_stored_attributes_against_the_new_schema(operator, a):
    a.rack.attributes = {"rated_power_kw": 3, "units": 42}
    a.rack.save()
    response = operator.patch(asset_url(a.rack), {"asset_type": standard_type("lighting").pk}, format="json")
    assert response.status_code == 400
    assert "Unknown attribute" in str(response.json()["attributes"]) and "'units'" in str(response.json()["attributes"])
    a.rack.refresh_from_db()
    assert a.rack.asset_type_id == a.asset_type.pk


def test_null_characters_are_refused_not_a_server_error(operator, a):
    response = create_asset(
        operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("generic_load").pk, name="x",
        attributes={"rated_power_kw\u0000": 1},
    )
    assert response.status_code == 400
    assert "attributes" in response.json()


# Tree rules


def test_a_cycle_is_refused_on_parent(operator, a):
    sub_panel = Asset.objects.create(site=a.site, name="sub", parent=a.panel, asset_type=standard_type("electrical_panel"))
    response = operator.patch(asset_url(a.panel), {"parent": sub_panel.pk}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["parent"]
    response = operator.patch(asset_url(a.panel), {"parent": a.panel.pk}, format="json")
    assert response.status_code == 400 and "parent" in response.json()
    a.panel.refresh_from_db()
    assert a.panel.parent_id == a.root.pk


def test_a_forbidden_parent_type_is_refused(operator, a):
    response = create_asset(operator, site=a.site.pk, parent=a.root.pk, asset_type=standard_type("circuit").pk, name="C9")
    assert response.status_code == 400
    assert response.json() == {"parent": ["A Circuit cannot sit under a Site."]}


def test_a_type_that_cannot_be_root_needs_a_parent(operator, a):
    response = create_asset(operator, site=a.site.pk, asset_type=standard_type("building").pk, name="B")
    assert response.status_code == 400
    assert response.json() == {"parent": ["A Building needs a parent."]}


def test_a_parent_in_another_site_is_refused_and_assets_stay_in_their_site(operator, a):
    other = Site.objects.create(organisation=a.organisation, name="Other", timezone="Europe/Paris")
    other_root = Asset.objects.create(site=other, name="other root", asset_type=standard_type("site"))
    response = operator.patch(asset_url(a.panel), {"parent": other_root.pk}, format="json")
    assert response.status_code == 400
    assert response.json() == {"parent": ["The parent belongs to another site."]}
    response = operator.patch(asset_url(a.panel), {"site": other.pk, "parent": other_root.pk}, format="json")
    assert response.status_code == 400 and "site" in response.json()
    a.panel.refresh_from_db()
    assert (a.panel.site_id, a.panel.parent_id) == (a.site.pk, a.root.pk)


def test_moving_an_asset_is_a_patch_of_its_parent(operator, a):
    sub_panel = Asset.objects.create(site=a.site, name="sub", parent=a.root, asset_type=standard_type("electrical_panel"))
    response = operator.patch(asset_url(a.rack), {"parent": sub_panel.pk}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["parent"] == sub_panel.pk
    ancestors = operator.get(asset_url(a.rack, "ancestors")).json()
    assert [row["id"] for row in ancestors] == [a.root.pk, sub_panel.pk]


def test_subtree_and_ancestors(operator, a):
    subtree = operator.get(asset_url(a.root, "subtree")).json()
    ids = [row["id"] for row in subtree["results"]]
    assert subtree["count"] == 4
    assert ids[0] == a.root.pk
    assert set(ids) == {a.root.pk, a.panel.pk, a.circuit.pk, a.rack.pk}
    assert ids.index(a.panel.pk) < ids.index(a.circuit.pk)
    assert [row["id"] for row in operator.get(asset_url(a.panel, "subtree")).json()["results"]] == [a.panel.pk, a.circuit.pk]
    assert [row["id"] for row in operator.get(asset_url(a.circuit, "ancestors")).json()] == [a.root.pk, a.panel.pk]
    assert operator.get(asset_url(a.root, "ancestors")).json() == []


# Filtering, ordering, pagination


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_asset_filters(operator, a):
    other_site = Site.objects.create(organisation=a.organisation, name="Other", timezone="UTC")
    other_root = Asset.objects.create(site=other_site, name="o", asset_type=standard_type("site"))
    url = reverse("asset-list")
    assert set(ids(operator.get(url, {"site": other_site.pk}))) == {other_root.pk}
    assert set(ids(operator.get(url, {"asset_type": a.asset_type.pk}))) == {a.rack.pk}
    assert set(ids(operator.get(url, {"parent": a.root.pk}))) == {a.panel.pk, a.rack.pk}
    assert set(ids(operator.get(url, {"root": "true"}))) == {a.root.pk, other_root.pk}
    assert set(ids(operator.get(url, {"tag": "it"}))) == {a.rack.pk}
    assert ids(operator.get(url, {"tag": "none"})) == []
    assert operator.get(url, {"site": 10**12}).status_code == 400  # like any id the user cannot see


def test_channel_device_and_site_filters(operator, a):
    second = Device.objects.create(site=a.site, device_model=a.device_model, identifier="second-meter")
    power = Channel.objects.create(device=second, key="p", metric="power", role="sub_meter", asset=a.circuit)
    url = reverse("channel-list")
    assert ids(operator.get(url, {"device": second.pk})) == [power.pk]
    assert ids(operator.get(url, {"asset": a.panel.pk})) == [a.channel.pk]
    assert ids(operator.get(url, {"role": "main"})) == [a.channel.pk]
    assert ids(operator.get(url, {"metric": "power"})) == [power.pk]
    assert operator.get(url, {"metric": "volume"}).status_code == 400
    assert ids(operator.get(reverse("device-list"), {"site": a.site.pk, "device_model": a.device_model.pk})) == [a.device.pk, second.pk]
    assert ids(operator.get(reverse("site-list"), {"organisation": a.organisation.pk})) == [a.site.pk]
    row = operator.get(reverse("channel-detail", args=[power.pk])).json()
    assert row == {"id": power.pk, "device": second.pk, "key": "p", "metric": "power", "unit": "W", "role": "sub_meter",
                   "asset": a.circuit.pk, "name": "", "max_power_w": None, "max_gap_s": None}


def test_ordering(operator, a):
    url = reverse("asset-list")
    by_name = ids(operator.get(url, {"ordering": "name"}))
    names = {asset.pk: asset.name for asset in Asset.objects.all()}
    assert [names[pk] for pk in by_name] == sorted(names[pk] for pk in by_name)
    assert ids(operator.get(url, {"ordering": "-name"})) == by_name[::-1]
    assert ids(operator.get(url, {"ordering": "-id"})) == sorted(by_name, reverse=True)


def test_pagination_is_50_a_page_and_page_size_is_capped_at_500(operator, a):
    Asset.objects.bulk_create(
        [Asset(site=a.site, parent=a.root, name=f"load {i:03}", asset_type=standard_type("generic_load")) for i in range(520)]
    )
    url = reverse("asset-list")
    body = operator.get(url).json()
    assert body["count"] == 524 and len(body["results"]) == 50 and body["next"]
    assert len(operator.get(url, {"page_size": 7}).json()["results"]) == 7
    assert len(operator.get(url, {"page_size": 10_000}).json()["results"]) == 500
    last = operator.get(url, {"page_size": 500, "page": 2}).json()
    assert len(last["results"]) == 24 and last["next"] is None
    assert operator.get(url, {"page": 99}).status_code == 404
    assert len(operator.get(asset_url(a.root, "subtree"), {"page_size": 10}).json()["results"]) == 10


# Authentication


def test_token_authentication():
    user = make_user("tokenuser", password="correct horse")
    response = APIClient().post(reverse("api-token"), {"username": "tokenuser", "password": "correct horse"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert APIClient().post(reverse("api-token"), {"username": "tokenuser", "password": "wrong"}, format="json").status_code == 400
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("asset-list")).status_code == 200
    assert user.auth_token.key == token
    unauthenticated = APIClient().get(reverse("asset-list"))
    assert unauthenticated.status_code == 401 and unauthenticated["WWW-Authenticate"] == "Token"


def test_session_authentication(a):
    client = APIClient()
    client.force_login(a.users["viewer"])
    assert ids(client.get(reverse("site-list"))) == [a.site.pk]


def test_schema_and_docs_are_served():
    client = APIClient()
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/assets/{id}/energy/" in paths and "/api/auth/token/" in paths
    assert client.get(reverse("api-docs")).status_code == 200


# Energy


def feed_meters(device: Device, first: datetime, hours: int, steps_kwh: dict[str, float]) -> None:
    """Hourly counter readings of every channel key, in one native IotWatt message per hour."""
    messages = []
    for i in range(hours + 1):
        ts = (first + timedelta(hours=i)).astimezone(timezone.utc).isoformat()
        channels = {key: {"energy_kwh": 1000 + step * i} for key, step in steps_kwh.items()}
        messages.append({"topic": f"iotwatt/{device.identifier}/telemetry", "payload": json.dumps({"ts": ts, "channels": channels}),
                         "received_at": ts})
    result = ingest_messages(messages)
    assert result.dead_letters == 0


def test_energy_per_local_day_splits_consumption_and_unmetered(operator, a):
    """A main meter on the panel, two sub-meters on its circuits: consumption is the main, unmetered the rest."""
    circuit2 = Asset.objects.create(site=a.site, name="c2", parent=a.panel, asset_type=standard_type("circuit"))
    Channel.objects.create(device=a.device, key="c1", metric="energy", role="sub_meter", asset=a.circuit)
    Channel.objects.create(device=a.device, key="c2", metric="energy", role="sub_meter", asset=circuit2)
    berlin = timezone(timedelta(hours=1))
    feed_meters(a.device, datetime(2024, 3, 1, tzinfo=berlin), 48, {"main": 2.0, "c1": 0.5, "c2": 0.25})

    body = operator.get(asset_url(a.panel, "energy"), {"period": "day"}).json()
    assert body["period"] == "day" and body["timezone"] == "Europe/Berlin" and body["asset"] == a.panel.pk
    assert [row["start"] for row in body["results"]] == ["2024-03-01T00:00:00+01:00", "2024-03-02T00:00:00+01:00"]
    for row in body["results"]:
        assert row["consumption_wh"] == pytest.approx(48_000)
        assert row["unmetered_wh"] == pytest.approx(48_000 - 12_000 - 6_000)
        assert (row["generation_wh"], row["export_wh"], row["storage_wh"]) == (0, 0, 0)
        assert sorted(row["by_channel"].values()) == pytest.approx([6_000, 12_000, 48_000])

    # From the site's root the main is counted once; a circuit alone is its sub-meter.
    root_rows = operator.get(asset_url(a.root, "energy")).json()["results"]
    assert [row["consumption_wh"] for row in root_rows] == pytest.approx([48_000, 48_000])
    circuit_rows = operator.get(asset_url(a.circuit, "energy")).json()["results"]
    assert [row["consumption_wh"] for row in circuit_rows] == pytest.approx([12_000, 12_000])
    assert [row["unmetered_wh"] for row in circuit_rows] == [0, 0]

    hours = operator.get(asset_url(a.panel, "energy"), {"period": "hour"}).json()["results"]
    assert len(hours) == 48 and hours[0]["consumption_wh"] == pytest.approx(2_000)
    month = operator.get(asset_url(a.panel, "energy"), {"period": "month"}).json()["results"]
    assert [(row["start"], row["consumption_wh"]) for row in month] == [("2024-03-01T00:00:00+01:00", pytest.approx(96_000))]


def test_energy_with_an_unknown_period_is_400(operator, a):
    response = operator.get(asset_url(a.panel, "energy"), {"period": "fortnight"})
    assert response.status_code == 400 and "period" in response.json()
    assert operator.get(asset_url(a.panel, "energy")).json()["results"] == []


# Cross-object rules inside one organisation


def test_a_channel_measures_an_asset_of_its_devices_site(operator, a):
    other = Site.objects.create(organisation=a.organisation, name="Other", timezone="UTC")
    elsewhere = Asset.objects.create(site=other, name="o", asset_type=standard_type("site"))
    response = operator.patch(reverse("channel-detail", args=[a.channel.pk]), {"asset": elsewhere.pk}, format="json")
    assert response.status_code == 400 and "asset" in response.json()
    # Nor can the device move away from the assets its channels measure.
    response = operator.patch(reverse("device-detail", args=[a.device.pk]), {"site": other.pk}, format="json")
    assert response.status_code == 400 and "site" in response.json()


def test_an_invalid_parameter_map_or_schema_is_a_400(operator, a):
    response = operator.post(reverse("devicemodel-list"), {"key": "bad", "name": "Bad", "organisation": a.organisation.pk,
                                                           "parameter_map": {"topic": "no-device-here"}}, format="json")
    assert response.status_code == 400 and "parameter_map" in response.json()
    response = operator.post(reverse("assettype-list"), {"key": "bad", "name": "Bad", "organisation": a.organisation.pk,
                                                         "attribute_schema": {"type": "array"}}, format="json")
    assert response.status_code == 400 and "attribute_schema" in response.json()


@pytest.mark.parametrize("parameter_map", [
    {"topic": "t/{device}", "timestamp": {"path": "ts", "format": []}, "channels_path": "c", "quantities": {}},
    {"topic": "t/{device}", "timestamp": {"path": "ts", "format": "unix"}, "channels_path": "c",
     "quantities": {"x": {"unit": ["Wh"], "metric": "energy"}}},
    {"topic": "t/{device}", "timestamp": {"path": "ts", "format": "unix"}, "channels_path": "c",
     "quantities": {"x": {"unit": "Wh", "metric": "energy", "scale": 10**400}}},
])
def test_parameter_maps_the_decoder_chokes_on_are_a_400(operator, a, parameter_map):
    response = operator.post(reverse("devicemodel-list"), {"key": "odd", "name": "Odd", "organisation": a.organisation.pk,
                                                           "parameter_map": parameter_map}, format="json")
    assert response.status_code == 400 and "parameter_map" in response.json()


def test_a_schema_with_a_reference_is_refused_when_the_type_is_created(operator, a):
    schema = {"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}}
    response = operator.post(reverse("assettype-list"), {"key": "ref", "name": "Ref", "organisation": a.organisation.pk,
                                                         "attribute_schema": schema, "can_be_root": True}, format="json")
    assert response.status_code == 400
    assert "not supported" in response.json()["attribute_schema"][0]


def test_deleting_an_organisation_takes_its_types_in_use_with_it(a):
    """Asset.asset_type and Device.device_model are RESTRICT: the organisation's cascade goes through."""
    client = APIClient()
    client.force_login(make_user("root", is_superuser=True))
    response = client.delete(reverse("organisation-detail", args=[a.organisation.pk]))
    assert response.status_code == 204
    assert not Site.objects.filter(pk=a.site.pk).exists()
    assert not AssetType.objects.filter(organisation=a.organisation.pk).exists()


def test_password_guessing_on_the_token_endpoint_is_throttled():
    make_user("guessme", password="right one")
    client = APIClient()
    answers = [client.post(reverse("api-token"), {"username": "guessme", "password": f"guess {i}"}).status_code for i in range(12)]
    assert answers[:10] == [400] * 10
    assert answers[10:] == [429, 429]
