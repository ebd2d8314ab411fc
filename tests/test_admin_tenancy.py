"""Tenant isolation in the admin: a staff user of organisation A never sees or changes B's objects.

Every registered ModelAdmin is walked (from admin.site._registry), so an admin
added later without scoping fails here.
"""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.urls import NoReverseMatch, reverse

from assets.models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site
from telemetry.models import DeadLetter

pytestmark = pytest.mark.django_db

# Every object of B carries this word, so a leak anywhere in a page is found by one search.
SECRET = "Bravo"


def asset(site, parent, name, key, **attributes):
    node = Asset(site=site, parent=parent, name=name, asset_type=AssetType.objects.get(key=key), attributes=attributes)
    node.full_clean()
    node.save()
    return node


def organisation_with_objects(prefix: str, slug: str) -> dict:
    org = Organisation.objects.create(name=f"{prefix} Org", slug=slug)
    site = Site.objects.create(organisation=org, name=f"{prefix} Plant", timezone="Europe/Berlin")
    root = asset(site, None, f"{prefix} Plant root", "site")
    building = asset(site, root, f"{prefix} Building", "building")
    panel = asset(site, building, f"{prefix} Panel", "electrical_panel")
    load = asset(site, panel, f"{prefix} Load", "generic_load", rated_power_kw=3)
    custom_type = AssetType.objects.create(
        key=f"{slug}-chiller", name=f"{prefix} Chiller", organisation=org, can_be_root=False,
        attribute_schema={"type": "object", "properties": {}, "additionalProperties": False},
    )
    custom_type.allowed_parents.set([AssetType.objects.get(key="building")])
    model = DeviceModel.objects.create(key=f"{slug}-meter-model", name=f"{prefix} Meter Model", organisation=org, parameter_map={})
    device = Device.objects.create(site=site, device_model=model, identifier=f"{slug}-meter-1", name=f"{prefix} Meter")
    channel = Channel.objects.create(device=device, key=f"{slug}_kwh", metric=Channel.Metric.ENERGY, asset=load, name=f"{prefix} Channel")
    member = User.objects.create_user(f"{slug}-member", password="pw-member-123")
    membership = Membership.objects.create(user=member, organisation=org, role=Membership.Role.ADMIN)
    return {
        "organisation": org, "site": site, "root": root, "building": building, "panel": panel, "load": load,
        "asset_type": custom_type, "device_model": model, "device": device, "channel": channel, "membership": membership,
    }


def staff(username, organisation, role, *, apps=("assets", "telemetry")):
    user = User.objects.create_user(username, password=f"pw-{username}-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=apps))
    Membership.objects.create(user=user, organisation=organisation, role=role)
    return user


@pytest.fixture
def world():
    a = organisation_with_objects("Alpha", "alpha")
    b = organisation_with_objects(SECRET, "bravo")
    dead = DeadLetter.objects.create(
        topic="iotwatt/bravo-meter-1/telemetry", payload='{"Bravo": 1}', reason="Bravo: unknown channel",
        received_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return {"a": a, "b": b, "dead_letter": dead}


@pytest.fixture
def operator(world):
    return staff("alice", world["a"]["organisation"], Membership.Role.OPERATOR)


@pytest.fixture
def viewer(world):
    return staff("victor", world["a"]["organisation"], Membership.Role.VIEWER)


def b_objects(world):
    return [obj for key, obj in world["b"].items()] + [world["dead_letter"]]


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def assert_nothing_of_b(response, world, where):
    body = response.content.decode()
    assert SECRET not in body and "bravo" not in body.lower(), f"{where} shows B's data"
    for obj in b_objects(world):
        try:
            url = change_url(obj)
        except NoReverseMatch:
            continue
        assert url not in body, f"{where} links to B's {obj._meta.model_name} {obj.pk}"


# --- changelists ---------------------------------------------------------------------------

def test_every_changelist_shows_only_the_users_organisation(client, world, operator):
    client.force_login(operator)
    walked = []
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        # Searches match B's names ("ravo" is in each) without echoing the marker word.
        for query in ("", "?_facets=1", "?q=ravo", "?q=a&_facets=1"):
            response = client.get(url + query)
            assert response.status_code in (200, 403), f"{url}{query}: {response.status_code}"
            assert_nothing_of_b(response, world, url + query)
        walked.append((model._meta.label, response.status_code))
    statuses = dict(walked)
    # The assets app is open to this operator and shows A's objects; the rest is closed to them.
    for label in ["assets.Organisation", "assets.Site", "assets.Asset", "assets.AssetType", "assets.DeviceModel",
                  "assets.Device", "assets.Channel", "assets.Membership"]:
        assert statuses[label] == 200, label
    assert statuses["telemetry.DeadLetter"] == 403  # superusers only, whatever the permissions
    assert statuses["auth.User"] == 403
    body = client.get(reverse("admin:assets_asset_changelist")).content.decode()
    assert "Alpha Panel" in body and "Alpha Load" in body


def test_filters_and_search_for_b_find_nothing(client, world, operator):
    client.force_login(operator)
    b = world["b"]
    for url in [
        reverse("admin:assets_asset_changelist") + f"?site__id__exact={b['site'].pk}",
        reverse("admin:assets_asset_changelist") + f"?asset_type__id__exact={b['asset_type'].pk}",
        reverse("admin:assets_device_changelist") + f"?site__id__exact={b['site'].pk}",
        reverse("admin:assets_channel_changelist") + "?q=avo_kwh",
        reverse("admin:assets_asset_changelist") + "?tag=x",
    ]:
        response = client.get(url)
        assert_nothing_of_b(response, world, url)
    # The index and the app page list models, never objects, but check them too.
    for url in [reverse("admin:index"), reverse("admin:app_list", args=["assets"])]:
        assert_nothing_of_b(client.get(url), world, url)


def test_autocomplete_offers_nothing_of_b(client, world, operator):
    """Django's autocomplete endpoint answers from the target admin's (scoped) queryset."""
    client.force_login(operator)
    url = reverse("admin:autocomplete")
    asked = 0
    for model in admin.site._registry:
        for field in model._meta.get_fields():
            if not (field.many_to_one or field.many_to_many) or not field.concrete:
                continue
            if field.related_model not in admin.site._registry:
                continue
            params = {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": field.name}
            for term in ("ravo", ""):
                response = client.get(url, {**params, "term": term})
                assert response.status_code in (200, 403, 404)
                assert_nothing_of_b(response, world, f"autocomplete {model._meta.label}.{field.name}")
                asked += response.status_code == 200
    assert asked  # the endpoint did answer for some fields


def test_export_holds_only_the_users_assets(client, world, operator):
    client.force_login(operator)
    url = reverse("admin:assets_asset_export")
    form = client.get(url).context["form"]
    data = {"format": "0", "resource": "0", **{name: "on" for name in form.fields if name.startswith("assetresource_")}}
    exported = client.post(url, data).content.decode()
    names = {row["name"] for row in csv.DictReader(io.StringIO(exported))}
    assert names == {"Alpha Plant root", "Alpha Building", "Alpha Panel", "Alpha Load"}


# --- another organisation's objects --------------------------------------------------------

def test_b_change_history_and_delete_pages_answer_404(client, world, operator):
    client.force_login(operator)
    for obj in b_objects(world):
        base = change_url(obj)
        for url in (base, base.replace("/change/", "/history/"), base.replace("/change/", "/delete/")):
            response = client.get(url)
            # 404; 403 where the user may not do this to any object of the kind (dead letters,
            # deleting organisations and memberships as an operator).
            expected = (403, 404) if isinstance(obj, (DeadLetter, Organisation, Membership)) and "/change/" not in url else (404,)
            if isinstance(obj, DeadLetter):
                expected = (403,)
            assert response.status_code in expected, f"{url}: {response.status_code}"
            assert_nothing_of_b(response, world, url)


def test_posting_a_change_to_b_changes_nothing(client, world, operator):
    client.force_login(operator)
    b = world["b"]
    posts = {
        b["organisation"]: {"name": "Hacked", "slug": "hacked"},
        b["site"]: {"name": "Hacked", "organisation": world["a"]["organisation"].pk, "timezone": "UTC"},
        b["load"]: {"name": "Hacked", "parent": world["a"]["panel"].pk, "asset_type": b["load"].asset_type_id,
                    "attributes_type": b["load"].asset_type_id},
        b["asset_type"]: {"key": "hacked", "name": "Hacked", "organisation": world["a"]["organisation"].pk,
                          "attribute_schema": '{"type": "object"}'},
        b["device_model"]: {"key": "hacked", "name": "Hacked", "organisation": world["a"]["organisation"].pk,
                            "parameter_map": "{}"},
        b["device"]: {"identifier": "hacked", "name": "Hacked", "site": world["a"]["site"].pk,
                      "device_model": world["a"]["device_model"].pk, "channels-TOTAL_FORMS": "0",
                      "channels-INITIAL_FORMS": "0"},
        b["channel"]: {"device": world["a"]["device"].pk, "key": "hacked", "metric": "energy", "role": "main", "name": "Hacked"},
        b["membership"]: {"user": operator.pk, "organisation": world["a"]["organisation"].pk, "role": "viewer"},
    }
    for obj, data in posts.items():
        response = client.post(change_url(obj), data)
        assert response.status_code in (403, 404), f"{obj._meta.model_name}: {response.status_code}"
        fresh = type(obj).objects.get(pk=obj.pk)
        for field in ("name", "key", "identifier", "organisation_id", "site_id", "role", "user_id"):
            if hasattr(obj, field):
                assert getattr(fresh, field) == getattr(obj, field), f"{obj._meta.model_name}.{field} changed"
    # Deleting through the admin: neither the page nor the bulk action reaches B.
    response = client.post(change_url(b["load"]).replace("/change/", "/delete/"), {"post": "yes"})
    assert response.status_code == 404
    client.post(reverse("admin:assets_asset_changelist"),
                {"action": "delete_selected", "_selected_action": [b["load"].pk, b["panel"].pk], "post": "yes"})
    assert Asset.objects.filter(pk__in=[b["load"].pk, b["panel"].pk]).count() == 2


def test_add_forms_offer_only_the_users_objects(client, world, operator):
    client.force_login(operator)
    a, b = world["a"], world["b"]
    building_type = AssetType.objects.get(key="building")

    def choices(url, field, **params):
        response = client.get(url, params)
        assert response.status_code == 200, url
        assert_nothing_of_b(response, world, url)
        form_field = response.context["adminform"].form.fields[field]
        values = set()
        for value, label in form_field.choices:
            if isinstance(label, (list, tuple)):  # a group (assets are grouped by site)
                values.update(str(v) for v, _ in label)
            else:
                values.add(str(value))
        return values - {""}

    asset_add = reverse("admin:assets_asset_add")
    assert choices(asset_add, "site", asset_type=building_type.pk) == {str(a["site"].pk)}
    parents = choices(asset_add, "parent", asset_type=building_type.pk)
    assert parents == {str(x.pk) for x in Asset.objects.filter(site=a["site"])}
    types = choices(asset_add, "asset_type", asset_type=building_type.pk)
    assert str(b["asset_type"].pk) not in types and str(a["asset_type"].pk) in types and str(building_type.pk) in types

    device_add = reverse("admin:assets_device_add")
    assert choices(device_add, "site") == {str(a["site"].pk)}
    models = choices(device_add, "device_model")
    assert str(b["device_model"].pk) not in models and str(a["device_model"].pk) in models

    channel_add = reverse("admin:assets_channel_add")
    assert choices(channel_add, "device") == {str(a["device"].pk)}
    assert choices(channel_add, "asset") == {str(x.pk) for x in Asset.objects.filter(site=a["site"])}

    assert choices(reverse("admin:assets_site_add"), "organisation") == {str(a["organisation"].pk)}
    type_add = reverse("admin:assets_assettype_add")
    assert choices(type_add, "organisation") == {str(a["organisation"].pk)}
    assert str(b["asset_type"].pk) not in choices(type_add, "allowed_parents")

    # The device's channel rows offer the device's own site's assets only.
    response = client.get(change_url(a["device"]))
    formset = response.context["inline_admin_formsets"][0].formset
    offered = {str(v) for v, label in formset.forms[0].fields["asset"].choices for v, _ in (label if isinstance(label, list) else [])}
    assert offered == {str(x.pk) for x in Asset.objects.filter(site=a["site"])}
    assert_nothing_of_b(response, world, "device change")


def test_a_forged_post_cannot_attach_to_b(client, world, operator):
    """Choices are enforced on POST too: B's site or parent is not a valid choice."""
    client.force_login(operator)
    a, b = world["a"], world["b"]
    load_type = AssetType.objects.get(key="generic_load")
    url = reverse("admin:assets_asset_add") + f"?asset_type={load_type.pk}"
    response = client.post(url, {"site": b["site"].pk, "parent": b["panel"].pk, "asset_type": load_type.pk,
                                 "attributes_type": load_type.pk, "name": "Planted"})
    assert response.status_code == 200
    assert {"site", "parent"} <= set(response.context["adminform"].form.errors)
    assert_nothing_of_b(response, world, "forged asset add")
    response = client.post(reverse("admin:assets_device_add"), {
        "identifier": "planted", "site": a["site"].pk, "device_model": b["device_model"].pk,
        "channels-TOTAL_FORMS": "0", "channels-INITIAL_FORMS": "0"})
    assert "device_model" in response.context["adminform"].form.errors
    assert not Asset.objects.filter(name="Planted").exists() and not Device.objects.filter(identifier="planted").exists()


def test_import_only_into_the_users_sites(client, world, operator):
    client.force_login(operator)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "site", "parent", "name", "asset_type", "tags", "attributes"])
    writer.writerow(["", f"{SECRET} Plant", f"{SECRET} Plant root", "Planted", "building", "", ""])
    writer.writerow([str(world["b"]["panel"].pk), "Alpha Plant", "", "Renamed", "electrical_panel", "", ""])
    writer.writerow(["", "Alpha Plant", str(world["b"]["panel"].pk), "Planted 2", "generic_load", "", ""])
    upload = io.BytesIO(out.getvalue().encode())
    upload.name = "x.csv"
    response = client.post(reverse("admin:assets_asset_import"), {"format": "0", "resource": "0", "import_file": upload})
    invalid = {row.number: row.error_dict for row in response.context["result"].invalid_rows}
    assert sorted(invalid) == [1, 2, 3]
    assert "site" in invalid[1] and "id" in invalid[2] and "parent" in invalid[3]
    assert "confirm_form" not in response.context
    assert not Asset.objects.filter(name__startswith="Planted").exists()
    assert Asset.objects.get(pk=world["b"]["panel"].pk).name == f"{SECRET} Panel"


# --- roles ---------------------------------------------------------------------------------

def test_viewer_reads_but_cannot_change(client, world, viewer):
    client.force_login(viewer)
    a = world["a"]
    response = client.get(reverse("admin:assets_asset_changelist"))
    assert response.status_code == 200 and "Alpha Load" in response.content.decode()
    assert_nothing_of_b(response, world, "viewer changelist")

    response = client.get(change_url(a["load"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="name"' not in body and "Rated power (kW)" in body  # read only, attributes shown with units
    assert response.context["has_change_permission"] is False

    for obj, data in [(a["load"], {"name": "Changed"}), (a["site"], {"name": "Changed", "timezone": "UTC"}),
                      (a["device"], {"identifier": "changed"}), (a["organisation"], {"name": "Changed", "slug": "x"})]:
        assert client.post(change_url(obj), data).status_code == 403
        assert client.post(change_url(obj).replace("/change/", "/delete/"), {"post": "yes"}).status_code == 403
    a["load"].refresh_from_db()
    assert a["load"].name == "Alpha Load"
    assert client.get(reverse("admin:assets_asset_add")).status_code == 403
    assert client.get(reverse("admin:assets_asset_import")).status_code == 403
    client.post(reverse("admin:assets_asset_changelist"),
                {"action": "delete_selected", "_selected_action": [a["load"].pk], "post": "yes"})
    assert Asset.objects.filter(pk=a["load"].pk).exists()


def test_operator_changes_own_objects_but_not_the_shared_catalogue(client, world, operator):
    client.force_login(operator)
    a = world["a"]
    load = a["load"]
    response = client.get(change_url(load))
    form = response.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data["name"] = "Alpha Load renamed"
    assert client.post(change_url(load), data).status_code == 302
    load.refresh_from_db()
    assert load.name == "Alpha Load renamed"

    shared = AssetType.objects.get(key="building")
    response = client.get(change_url(shared))
    assert response.status_code == 200 and response.context["has_change_permission"] is False
    assert client.post(change_url(shared), {"key": "building", "name": "Changed", "attribute_schema": "{}"}).status_code == 403
    assert AssetType.objects.get(key="building").name == "Building"

    # The tree sorts by a column too, and the bulk delete works on the operator's own assets.
    for order in ("?o=2", "?o=-3", "?o=2&_facets=1"):
        assert client.get(reverse("admin:assets_asset_changelist") + order).status_code == 200
    response = client.post(reverse("admin:assets_asset_changelist"),
                           {"action": "delete_selected", "_selected_action": [load.pk], "post": "yes"})
    assert response.status_code == 302 and not Asset.objects.filter(pk=load.pk).exists()
    assert Channel.objects.get(pk=a["channel"].pk).asset is None  # SET_NULL, the channel stays

    # Organisation and memberships are the organisation admin's: an operator reads them only.
    assert client.get(change_url(a["organisation"])).context["has_change_permission"] is False
    assert client.get(reverse("admin:assets_membership_add")).status_code == 403


def test_organisation_admin_manages_members_of_their_organisation_only(client, world):
    admin_user = staff("ada", world["a"]["organisation"], Membership.Role.ADMIN)
    client.force_login(admin_user)
    response = client.get(reverse("admin:assets_membership_add"))
    assert response.status_code == 200
    assert_nothing_of_b(response, world, "membership add")
    users = {str(v) for v, _ in response.context["adminform"].form.fields["user"].choices} - {""}
    assert str(world["b"]["membership"].user_id) not in users
    assert str(world["a"]["membership"].user_id) in users


def test_superuser_sees_every_organisation(client, world):
    root = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)
    body = client.get(reverse("admin:assets_asset_changelist")).content.decode()
    assert "Alpha Load" in body and f"{SECRET} Load" in body
    assert client.get(change_url(world["dead_letter"])).status_code == 200
