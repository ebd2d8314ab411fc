"""The asset admin as an operator uses it: attribute fields from the type's schema, moves, CSV import and export."""

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from assets.models import Asset, AssetType, Membership, Organisation, Site

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:assets_asset_add")
IMPORT_URL = reverse("admin:assets_asset_import")
PROCESS_IMPORT_URL = reverse("admin:assets_asset_process_import")
EXPORT_URL = reverse("admin:assets_asset_export")


def change_url(asset):
    return reverse("admin:assets_asset_change", args=[asset.pk])


def asset_type(key):
    return AssetType.objects.get(key=key)


def make_asset(site, parent, name, type_key, **attributes):
    asset = Asset(site=site, parent=parent, name=name, asset_type=asset_type(type_key), attributes=attributes)
    asset.full_clean()
    asset.save()
    return asset


@pytest.fixture
def org():
    return Organisation.objects.create(name="Alpha Energy", slug="alpha")


@pytest.fixture
def site(org):
    return Site.objects.create(organisation=org, name="Alpha HQ", timezone="Europe/Berlin")


@pytest.fixture
def tree(site):
    root = make_asset(site, None, "Alpha HQ", "site")
    building = make_asset(site, root, "Main building", "building", use="office")
    panel = make_asset(site, building, "Panel A", "electrical_panel", voltage_v=230, phases=1)
    circuit = make_asset(site, panel, "Circuit 1", "circuit", breaker_a=16)
    load = make_asset(site, panel, "Load 1", "generic_load", rated_power_kw=2)
    return {"root": root, "building": building, "panel": panel, "circuit": circuit, "load": load}


@pytest.fixture
def operator(org, client):
    user = User.objects.create_user("olga", password="pw-olga-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="assets"))
    Membership.objects.create(user=user, organisation=org, role=Membership.Role.OPERATOR)
    client.force_login(user)
    return user


def form_data(response):
    """The POST data a browser would send back for the admin form in `response`."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            data[name] = "on"
        elif isinstance(value, list):
            data[name] = ",".join(str(v) for v in value) if name == "tags" else value
        else:
            data[name] = str(value)
    return data


# --- attribute fields from the schema ----------------------------------------------------------

def test_add_without_type_asks_for_the_type_first(client, operator, tree):
    response = client.get(ADD_URL)
    assert response.status_code == 200
    assert "admin/assets/asset/choose_type.html" in [t.name for t in response.templates]
    assert {c["type"].key for c in response.context["choices"]} >= {"site", "building", "circuit"}


def test_choose_type_page_lists_types_allowed_under_the_parent(client, operator, tree):
    response = client.get(ADD_URL, {"site": tree["panel"].site_id, "parent": tree["panel"].pk})
    assert response.status_code == 200
    names = {choice["type"].key for choice in response.context["choices"]}
    assert "circuit" in names and "generic_load" in names
    assert "building" not in names and "site" not in names  # may not sit under a panel
    link = next(c["url"] for c in response.context["choices"] if c["type"].key == "circuit")
    assert f"asset_type={asset_type('circuit').pk}" in link and f"parent={tree['panel'].pk}" in link


def test_attribute_form_has_one_field_per_schema_property(client, operator, tree):
    load_type = asset_type("generic_load")
    response = client.get(ADD_URL, {"asset_type": load_type.pk, "parent": tree["panel"].pk})
    assert response.status_code == 200
    form = response.context["adminform"].form
    attribute_fields = {name for name in form.fields if name.startswith("attr_")}
    assert attribute_fields == {f"attr_{p}" for p in load_type.attribute_schema["properties"]}
    assert "attributes" not in form.fields  # no raw JSON for operators

    power = form.fields["attr_rated_power_kw"]
    assert power.label == "Rated power (kW)"
    assert power.help_text == "Rated electrical power"
    assert power.min_value == 0 and not power.required
    priority = form.fields["attr_priority"]
    assert type(priority).__name__ == "IntegerField"
    assert (priority.min_value, priority.max_value, priority.initial) == (1, 10, 5)
    assert priority.help_text == "1 is shed first"
    controllable = form.fields["attr_controllable"]
    assert type(controllable).__name__ == "BooleanField" and not controllable.required and controllable.initial is False

    html = response.content.decode()
    assert "Rated power (kW)" in html and 'name="attr_priority"' in html and 'value="5"' in html


def test_enum_and_string_attributes(client, operator, tree):
    response = client.get(ADD_URL, {"asset_type": asset_type("electrical_panel").pk})
    form = response.context["adminform"].form
    voltage = form.fields["attr_voltage_v"]
    assert voltage.label == "Voltage (V)"
    assert [value for value, _ in voltage.choices][1:] == ["120", "208", "230", "240", "400", "480", "690"]
    assert voltage.initial == "400"

    response = client.get(ADD_URL, {"asset_type": asset_type("building").pk})
    form = response.context["adminform"].form
    assert form.fields["attr_floor_area_m2"].label == "Floor area (m²)"
    assert "office" in [value for value, _ in form.fields["attr_use"].choices]
    response = client.get(ADD_URL, {"asset_type": asset_type("site").pk})
    assert response.context["adminform"].form.fields["attr_address"].max_length == 300


def test_change_form_shows_stored_attributes(client, operator, tree):
    response = client.get(change_url(tree["panel"]))
    form = response.context["adminform"].form
    assert form["attr_voltage_v"].value() == "230"
    assert form["attr_phases"].value() == "1"


def test_valid_attributes_are_saved_with_defaults(client, operator, tree):
    data = {
        "site": "", "parent": tree["panel"].pk, "asset_type": asset_type("generic_load").pk,
        "attributes_type": asset_type("generic_load").pk, "name": "Compressor", "tags": "critical, shed-last",
        "attr_rated_power_kw": "7.5", "attr_controllable": "on",
    }
    response = client.post(f"{ADD_URL}?asset_type={asset_type('generic_load').pk}", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    asset = Asset.objects.get(name="Compressor")
    assert asset.site == tree["panel"].site  # taken from the parent
    assert asset.parent == tree["panel"]
    assert asset.tags == ["critical", "shed-last"]
    assert asset.attributes == {"rated_power_kw": 7.5, "controllable": True, "priority": 5}


def test_invalid_attribute_shows_on_its_own_field_and_saves_nothing(client, operator, tree):
    before = Asset.objects.count()
    load_type = asset_type("generic_load")
    base = {"parent": tree["panel"].pk, "asset_type": load_type.pk, "attributes_type": load_type.pk, "name": "Bad load"}
    response = client.post(f"{ADD_URL}?asset_type={load_type.pk}", {**base, "attr_priority": "11", "attr_rated_power_kw": "-1"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"attr_priority", "attr_rated_power_kw"}
    assert "less than or equal to 10" in errors["attr_priority"][0]
    assert Asset.objects.count() == before

    # A rule only the schema knows (exclusiveMinimum) is reported on its field too.
    meter_type = asset_type("meter")
    response = client.post(
        f"{ADD_URL}?asset_type={meter_type.pk}",
        {"parent": tree["panel"].pk, "asset_type": meter_type.pk, "attributes_type": meter_type.pk, "name": "M", "attr_ct_ratio": "0"},
    )
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["attr_ct_ratio"]
    assert "less than or equal to the minimum of 0" in errors["attr_ct_ratio"][0]
    assert Asset.objects.count() == before
    assert 'class="errorlist' in response.content.decode()


def test_invalid_attribute_on_change_leaves_the_asset_as_it_was(client, operator, tree):
    panel = tree["panel"]
    data = form_data(client.get(change_url(panel)))
    data.update({"attr_rated_current_a": "-5", "name": "Renamed panel"})
    response = client.post(change_url(panel), data)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["attr_rated_current_a"]
    panel.refresh_from_db()
    assert panel.name == "Panel A" and "rated_current_a" not in panel.attributes


# --- moving in the tree ------------------------------------------------------------------------

def test_move_through_the_change_form(client, operator, tree, site):
    second_panel = make_asset(site, tree["building"], "Panel B", "electrical_panel")
    data = form_data(client.get(change_url(tree["circuit"])))
    data["parent"] = second_panel.pk
    response = client.post(change_url(tree["circuit"]), data)
    assert response.status_code == 302
    tree["circuit"].refresh_from_db()
    assert tree["circuit"].parent == second_panel


def test_cycle_move_is_an_error_on_parent(client, operator, tree):
    building = tree["building"]
    data = form_data(client.get(change_url(building)))
    data["parent"] = tree["panel"].pk  # its own child
    response = client.post(change_url(building), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["parent"]
    assert "descendant" in errors["parent"][0]
    building.refresh_from_db()
    assert building.parent == tree["root"]


def test_forbidden_parent_is_an_error_on_parent(client, operator, tree):
    circuit = tree["circuit"]
    data = form_data(client.get(change_url(circuit)))
    data["parent"] = tree["building"].pk  # a circuit sits under a panel only
    response = client.post(change_url(circuit), data)
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["parent"]
    assert errors["parent"] == ["A Circuit cannot sit under a Building."]
    circuit.refresh_from_db()
    assert circuit.parent == tree["panel"]


def test_changing_the_type_shows_the_new_fields_before_saving(client, operator, tree):
    load = tree["load"]
    lighting = asset_type("lighting")
    data = form_data(client.get(change_url(load)))
    data["asset_type"] = lighting.pk
    response = client.post(change_url(load), data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["asset_type"]
    assert "attr_technology" in form.fields and "attr_priority" not in form.fields
    load.refresh_from_db()
    assert load.asset_type.key == "generic_load"

    data = form_data(response)
    data["attr_technology"] = "led"
    response = client.post(change_url(load), data)
    assert response.status_code == 302
    load.refresh_from_db()
    assert load.asset_type == lighting
    assert load.attributes == {"rated_power_kw": 2, "controllable": False, "technology": "led"}


# --- asset types without code ------------------------------------------------------------------

def test_asset_type_schema_errors_show_on_the_field(client, operator, org):
    url = reverse("admin:assets_assettype_add")
    base = {"key": "heat-pump", "name": "Heat pump", "organisation": org.pk, "can_be_root": "",
            "allowed_parents": [asset_type("building").pk, asset_type("electrical_panel").pk]}
    response = client.post(url, {**base, "attribute_schema": '{"type": "array"}'})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["attribute_schema"] and '"type": "object"' in errors["attribute_schema"][0]

    response = client.post(url, {**base, "attribute_schema": '{"type": "object", "properties": {"x": {"type": "nope"}}}'})
    assert "Invalid JSON Schema" in response.context["adminform"].form.errors["attribute_schema"][0]

    response = client.post(url, {**base, "attribute_schema": "{not json"})
    assert list(response.context["adminform"].form.errors) == ["attribute_schema"]
    assert not AssetType.objects.filter(key="heat-pump").exists()

    schema = {"type": "object", "properties": {"cop": {"type": "number", "minimum": 1, "description": "Seasonal COP"},
                                               "thermal_power_kw": {"type": "number", "minimum": 0, "unit": "kW"}},
              "additionalProperties": False}
    response = client.post(url, {**base, "attribute_schema": json.dumps(schema)})
    assert response.status_code == 302
    heat_pump = AssetType.objects.get(key="heat-pump")
    assert heat_pump.organisation == org
    assert set(heat_pump.allowed_parents.values_list("key", flat=True)) == {"building", "electrical_panel"}

    # The new type's form at once, without code.
    response = client.get(ADD_URL, {"asset_type": heat_pump.pk})
    assert response.context["adminform"].form.fields["attr_thermal_power_kw"].label == "Thermal power (kW)"


def test_operator_cannot_create_a_shared_type(client, operator):
    response = client.post(reverse("admin:assets_assettype_add"), {
        "key": "shared-one", "name": "Shared", "organisation": "", "attribute_schema": '{"type": "object"}',
    })
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not AssetType.objects.filter(key="shared-one").exists()


# --- CSV import and export ---------------------------------------------------------------------

def csv_file(rows, name="assets.csv"):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "site", "parent", "name", "asset_type", "tags", "attributes"])
    writer.writeheader()
    for row in rows:
        writer.writerow({"id": "", "tags": "", "attributes": "", **row})
    upload = io.BytesIO(out.getvalue().encode())
    upload.name = name
    return upload


def dry_run(client, rows):
    return client.post(IMPORT_URL, {"format": "0", "resource": "0", "import_file": csv_file(rows)})


def confirm(client, response):
    form = response.context["confirm_form"]
    return client.post(PROCESS_IMPORT_URL, {name: form[name].value() for name in form.fields})


@pytest.fixture
def other_org_site():
    other = Organisation.objects.create(name="Bravo Ltd", slug="bravo")
    return Site.objects.create(organisation=other, name="Bravo Plant", timezone="Europe/London")


def test_import_dry_run_reports_every_bad_row_and_creates_nothing(client, operator, tree, other_org_site):
    before = Asset.objects.count()
    panel_path = "Alpha HQ / Main building / Panel A"
    rows = [
        {"site": "Alpha HQ", "parent": panel_path, "name": "Circuit 2", "asset_type": "circuit", "attributes": '{"breaker_a": 20}'},
        {"site": "Alpha HQ", "parent": panel_path, "name": "Bad breaker", "asset_type": "circuit", "attributes": '{"breaker_a": -5}'},
        {"site": "Alpha HQ", "parent": "Alpha HQ / Nowhere", "name": "Orphan", "asset_type": "generic_load"},
        {"site": "Alpha HQ", "parent": "Alpha HQ / Main building", "name": "Misplaced", "asset_type": "circuit"},
        {"site": "Bravo Plant", "parent": "", "name": "Intruder", "asset_type": "site"},
        {"site": "Alpha HQ", "parent": panel_path, "name": "Odd", "asset_type": "no-such-type"},
        {"site": "Alpha HQ", "parent": panel_path, "name": "Junk", "asset_type": "generic_load", "attributes": '{"colour": "red"}'},
    ]
    response = dry_run(client, rows)
    assert response.status_code == 200
    result = response.context["result"]
    assert "confirm_form" not in response.context  # nothing to confirm while any row is wrong
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert sorted(invalid) == [2, 3, 4, 5, 6, 7]
    assert "breaker_a" in " ".join(invalid[2]["attributes"])
    assert "unknown parent" in " ".join(invalid[3]["parent"])
    assert invalid[4]["parent"] == ["A Circuit cannot sit under a Building."]
    assert invalid[5]["site"] == ["No site named “Bravo Plant” in your organisations."]
    assert "no-such-type" in " ".join(invalid[6]["asset_type"])
    assert "Unknown attribute" in " ".join(invalid[7]["attributes"])
    html = response.content.decode()
    assert "cannot sit under a Building" in html and "No site named" in html
    assert Asset.objects.count() == before


def test_import_of_a_valid_file_creates_the_rows_parents_first(client, operator, tree, site):
    rows = [
        {"site": "Alpha HQ", "parent": "Alpha HQ", "name": "Annex", "asset_type": "building", "attributes": '{"use": "warehouse"}'},
        {"site": "Alpha HQ", "parent": "Alpha HQ / Annex", "name": "Annex panel", "asset_type": "electrical_panel"},
        {"site": "Alpha HQ", "parent": "Alpha HQ / Annex / Annex panel", "name": "Forklift charger", "asset_type": "ev_charger",
         "tags": "shed-first,yard", "attributes": '{"max_power_kw": 11}'},
        {"id": str(tree["load"].pk), "site": "Alpha HQ", "parent": "Alpha HQ / Annex / Annex panel", "name": "Load 1",
         "asset_type": "generic_load", "attributes": '{"rated_power_kw": 3}'},
    ]
    response = dry_run(client, rows)
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert not Asset.objects.filter(name="Annex").exists()  # a dry run
    response = confirm(client, response)
    assert response.status_code == 302

    annex = Asset.objects.get(site=site, name="Annex")
    panel = Asset.objects.get(name="Annex panel")
    charger = Asset.objects.get(name="Forklift charger")
    assert annex.parent == tree["root"] and annex.attributes == {"use": "warehouse"}
    assert panel.parent == annex and panel.attributes == {"voltage_v": 400, "phases": 3}  # defaults
    assert charger.parent == panel and charger.tags == ["shed-first", "yard"]
    assert charger.attributes == {"max_power_kw": 11, "connectors": 1, "controllable": True}
    tree["load"].refresh_from_db()
    assert tree["load"].parent == panel and tree["load"].attributes["rated_power_kw"] == 3  # moved and updated


def export_csv(client):
    form = client.get(EXPORT_URL).context["form"]
    data = {"format": "0", "resource": "0"}
    data.update({name: "on" for name in form.fields if name.startswith("assetresource_")})
    response = client.post(EXPORT_URL, data)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return response.content.decode()


def test_export_gives_a_csv_that_imports_again(client, operator, tree, org):
    exported = export_csv(client)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["name"] for r in rows] == ["Alpha HQ", "Main building", "Panel A", "Circuit 1", "Load 1"]  # parents first
    panel_row = rows[2]
    assert panel_row["parent"] == "Alpha HQ / Main building"
    assert panel_row["asset_type"] == "electrical_panel" and panel_row["site"] == "Alpha HQ"
    assert json.loads(panel_row["attributes"]) == {"voltage_v": 230, "phases": 1}

    # The same file again: nothing to change.
    response = dry_run(client, rows)
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["skip"] == 5

    # As the tree of another site: new ids, same shape.
    Site.objects.create(organisation=org, name="Alpha Depot", timezone="Europe/Berlin")
    copy = []
    for row in rows:
        parent = row["parent"].replace("Alpha HQ", "Alpha Depot", 1) if row["parent"] else ""
        name = "Alpha Depot" if row["name"] == "Alpha HQ" else row["name"]
        copy.append({**row, "id": "", "site": "Alpha Depot", "parent": parent, "name": name})
    response = dry_run(client, copy)
    assert not response.context["result"].has_validation_errors(), [r.error_dict for r in response.context["result"].invalid_rows]
    assert confirm(client, response).status_code == 302
    depot = Asset.objects.filter(site__name="Alpha Depot")
    assert depot.count() == 5
    shape = lambda assets: sorted((a.name if a.parent_id else "root", a.parent.name if a.parent_id else None, a.asset_type.key, json.dumps(a.attributes, sort_keys=True)) for a in assets)  # noqa: E731
    original = shape(Asset.objects.filter(site__name="Alpha HQ"))
    copied = [(n, "Alpha HQ" if p == "Alpha Depot" else p, k, a) for n, p, k, a in shape(depot)]
    assert copied == original
