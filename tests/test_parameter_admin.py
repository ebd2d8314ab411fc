"""The admin of device parameters: the device list's summary, filters and "Change parameters…" action
with its preview, the device page's parameters, and the read-only pages of bulk changes, change sets,
parameters and the audit, each scoped to the user's organisation."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assets.models import Device
from control.bulk import prepare, start
from control.changes import request_changes
from control.models import BulkChange, ChangeSet, DeviceParameter, ParameterEvent

from .api_world import build_world
from .parameter_fleet import build_fleet, device_says

pytestmark = pytest.mark.django_db

DEVICE_LIST = "admin:assets_device_changelist"


@pytest.fixture
def fleet():
    return build_fleet(build_world("alpha"))


@pytest.fixture
def other():
    """Another organisation with a change set, an answer and a bulk change of its own."""
    world = build_world("bravo")
    request_changes(world.device, {"ct_ratio": 200})
    device_says(world.device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}})
    start(world.organisation, Device.objects.filter(pk=world.device.pk), {"ct_ratio": 400}, {"devices": [world.device.pk]})
    return world


def staff(world, role: str):
    user = world.users[role]
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["assets", "control"]))
    return user


def states_of_meter_1(fleet):
    """meter-1: ct_ratio in sync, reporting_interval_s pending, relay_default drifted."""
    device = fleet.devices["meter-1"]
    request_changes(device, {"relay_default": "off"})
    device_says(device, {"version": 1, "status": "applied", "applied": ["relay_default"],
                         "parameters": {"relay_default": "off", "ct_ratio": 100}})
    device_says(device, {"version": 1, "parameters": {"relay_default": "on", "ct_ratio": 100}})  # changed on the device
    request_changes(device, {"reporting_interval_s": 30})
    return device


def action_post(devices, **extra) -> dict:
    return {"action": "change_parameters", "_selected_action": [d.pk for d in devices], **extra}


# --- the device list and page ------------------------------------------------------------------------

def test_the_device_list_summarises_parameters_without_a_query_per_row(client, fleet):
    client.force_login(staff(fleet.world, "viewer"))
    device = states_of_meter_1(fleet)
    body = client.get(reverse(DEVICE_LIST)).content.decode()
    assert "1 in sync, 1 pending, 1 drifted" in body and "⚠" in body
    assert DeviceParameter.objects.filter(device=device).count() == 3

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse(DEVICE_LIST)).status_code == 200
        return len(captured)

    few = queries()
    for n in range(5):
        more = Device.objects.create(site=fleet.world.site, device_model=fleet.world.device_model, identifier=f"extra-{n}")
        request_changes(more, {"ct_ratio": 200})
    assert queries() == few


def test_the_device_list_filters_by_tag_and_drift(client, fleet):
    client.force_login(staff(fleet.world, "viewer"))
    states_of_meter_1(fleet)
    request_changes(fleet.devices["meter-2"], {"ct_ratio": 200})

    def listed(**params):
        response = client.get(reverse(DEVICE_LIST), params)
        return {device.identifier for device in response.context["cl"].result_list}

    assert listed(tag="pilot") == {fleet.devices[n].identifier for n in ("meter-2", "meter-3")}
    assert listed(parameters="drifted") == {fleet.devices["meter-1"].identifier}
    assert listed(parameters="on_their_way") == {fleet.devices[n].identifier for n in ("meter-1", "meter-2")}
    assert listed(tag="floor-3", parameters="drifted") == {fleet.devices["meter-1"].identifier}


def test_the_device_page_shows_each_parameter_with_drift_marked(client, fleet):
    client.force_login(staff(fleet.world, "viewer"))
    device = states_of_meter_1(fleet)
    body = client.get(reverse("admin:assets_device_change", args=[device.pk])).content.decode()
    assert "Parameters" in body and "Change sets up to version 2; the device last said it has version 1." in body
    assert "⚠ drifted (device differs, nothing pending): the device reports &#x27;on&#x27;, &#x27;off&#x27; is desired" in body
    assert "string, read-only" in body  # firmware
    assert "integer, s, 1 to 3600, default 60" in body  # the rule of reporting_interval_s
    assert reverse("admin:control_changeset_change", args=[ChangeSet.objects.get(device=device, version=2).pk]) in body


# --- the "Change parameters…" action -----------------------------------------------------------------

def test_the_action_previews_then_starts_a_bulk_change_for_the_selected_devices(client, fleet):
    client.force_login(staff(fleet.world, "operator"))
    chosen = [fleet.devices["meter-1"], fleet.devices["meter-3"]]
    device_says(fleet.devices["meter-3"], {"version": 0, "parameters": {"ct_ratio": 400}})
    url = reverse(DEVICE_LIST)
    page = client.post(url, action_post(chosen))
    assert page.status_code == 200 and "admin/control/change_parameters.html" in [t.name for t in page.templates]
    keys = [value for value, _ in page.context["form"].fields["key"].choices]
    assert keys == ["ct_ratio", "max_power_w", "relay_default", "reporting_interval_s"]  # firmware is read-only

    preview = client.post(url, action_post(chosen, key="ct_ratio", value="400", _preview="1"))
    lines = {line["device"].identifier: line for line in preview.context["lines"]}
    assert lines[chosen[0].identifier]["outcome"] == "sends" and lines[chosen[1].identifier]["outcome"] == "already set"
    assert (lines[chosen[1].identifier]["reported"], lines[chosen[1].identifier]["new"]) == ("400", "400")
    assert preview.context["summary"] == {"devices": 2, "to_send": 1, "already_set": 1, "refused": 0}
    assert 'name="_confirm"' in preview.content.decode()
    assert not BulkChange.objects.exists() and not ChangeSet.objects.exists()

    confirmed = client.post(url, action_post(chosen, key="ct_ratio", value="400", _confirm="1"))
    bulk = BulkChange.objects.get()
    assert confirmed.status_code == 302 and confirmed["Location"] == reverse("admin:control_bulkchange_change", args=[bulk.pk])
    assert (set(bulk.device_ids), bulk.values, bulk.created_by) == ({d.pk for d in chosen}, {"ct_ratio": 400}, fleet.world.users["operator"])
    prepare(bulk.pk)
    assert set(ChangeSet.objects.values_list("device_id", flat=True)) == {chosen[0].pk}
    assert BulkChange.objects.get().skipped == {chosen[1].identifier: "already set: nothing to send"}


def test_the_action_takes_the_lists_filters_when_everything_is_selected(client, fleet):
    client.force_login(staff(fleet.world, "operator"))
    url = reverse(DEVICE_LIST) + "?tag=pilot"
    page_selection = [fleet.devices["meter-2"]]  # the checkbox Django's "select all" posts with select_across
    client.post(url, action_post(page_selection, select_across="1", key="relay_default", value="off", _confirm="1"))
    assert set(BulkChange.objects.get().device_ids) == fleet.named("meter-2", "meter-3")


def test_the_action_shows_a_refusal_and_offers_nothing_to_send(client, fleet):
    client.force_login(staff(fleet.world, "operator"))
    preview = client.post(reverse(DEVICE_LIST), action_post([fleet.devices["meter-1"]], key="reporting_interval_s", value="abc", _preview="1"))
    body = preview.content.decode()
    assert "refused: reporting_interval_s: &#x27;abc&#x27; is not a whole number" in body
    assert 'name="_confirm"' not in body
    client.post(reverse(DEVICE_LIST), action_post([fleet.devices["meter-1"]], key="reporting_interval_s", value="abc", _confirm="1"))
    assert not BulkChange.objects.exists()


def test_the_action_converts_typed_text_by_the_parameters_type(client, fleet):
    client.force_login(staff(fleet.world, "operator"))
    for key, typed, shown in [("max_power_w", "1500.5", "1500.5"), ("ct_ratio", " 200 ", "200"), ("relay_default", "off", '"off"'),
                              ("relay_default", '"on"', '"on"')]:
        preview = client.post(reverse(DEVICE_LIST), action_post([fleet.devices["meter-1"]], key=key, value=typed, _preview="1"))
        assert [(line["key"], line["new"], line["outcome"]) for line in preview.context["lines"]] == [(key, shown, "sends")]


def test_viewers_and_other_organisations_cannot_use_the_action(client, fleet, other):
    client.force_login(staff(fleet.world, "viewer"))
    response = client.post(reverse(DEVICE_LIST), action_post([fleet.devices["meter-1"]], key="ct_ratio", value="200", _confirm="1"))
    assert "admin/control/change_parameters.html" not in [t.name for t in response.templates]
    assert BulkChange.objects.count() == 1  # the other organisation's own
    client.force_login(staff(fleet.world, "operator"))
    client.post(reverse(DEVICE_LIST), action_post([other.device], key="ct_ratio", value="200", _confirm="1"))
    assert BulkChange.objects.count() == 1
    assert not ChangeSet.objects.filter(device__site__organisation=fleet.world.organisation).exists()


# --- bulk changes, change sets, parameters, the audit ---------------------------------------------------

def test_a_bulk_changes_page_shows_its_progress_and_refreshes_until_done(client, fleet):
    client.force_login(staff(fleet.world, "viewer"))
    one, two = fleet.devices["meter-1"], fleet.devices["meter-2"]
    bulk = start(fleet.world.organisation, Device.objects.filter(pk__in=[one.pk, two.pk]), {"ct_ratio": 200}, {"tag": "floor-3"})
    prepare(bulk.pk)
    url = reverse("admin:control_bulkchange_change", args=[bulk.pk])
    body = client.get(url).content.decode()
    assert '<meta http-equiv="refresh" content="5">' in body
    assert "<th>change sets pending</th><td>2</td>" in body and "0.0 %, not done yet" in body
    for device in (one, two):
        device_says(device, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 200}})
    body = client.get(url).content.decode()
    assert 'http-equiv="refresh"' not in body
    assert "<th>change sets applied</th><td>2</td>" in body and "100.0 %, done in" in body
    assert str(bulk) in client.get(reverse("admin:control_bulkchange_changelist")).content.decode()


@pytest.mark.parametrize("model", ["bulkchange", "changeset", "deviceparameter", "parameterevent"])
def test_the_parameter_pages_render_for_an_operator_and_hide_other_organisations(client, fleet, other, model):
    client.force_login(staff(fleet.world, "operator"))
    mine = fleet.devices["meter-1"]
    request_changes(mine, {"ct_ratio": 200}, actor=fleet.world.users["operator"])
    start(fleet.world.organisation, Device.objects.filter(pk=mine.pk), {"ct_ratio": 400}, {"devices": [mine.pk]})
    response = client.get(reverse(f"admin:control_{model}_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "bravo" not in body.lower()
    shown = list(response.context["cl"].result_list)
    assert shown and all(row.organisation_id == fleet.world.organisation.pk if model == "bulkchange" else row.device_id == mine.pk for row in shown)
    theirs = {
        "bulkchange": BulkChange.objects.get(organisation=other.organisation),
        "changeset": ChangeSet.objects.get(device=other.device),
        "deviceparameter": DeviceParameter.objects.get(device=other.device),
        "parameterevent": ParameterEvent.objects.filter(device=other.device).first(),
    }[model]
    assert client.get(reverse(f"admin:control_{model}_change", args=[theirs.pk])).status_code == 404
    own = shown[0]
    page = client.get(reverse(f"admin:control_{model}_change", args=[own.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert client.post(reverse(f"admin:control_{model}_change", args=[own.pk]), {}).status_code == 403


def test_the_audit_shows_who_when_what_and_the_devices_answer(client, fleet):
    client.force_login(staff(fleet.world, "viewer"))
    device = fleet.devices["meter-1"]
    request_changes(device, {"ct_ratio": 400}, actor=fleet.world.users["operator"])
    device_says(device, {"version": 1, "status": "rejected", "rejected": {"ct_ratio": "CT input saturates above 200 A"},
                         "parameters": {"ct_ratio": 100}})
    url = reverse("admin:control_parameterevent_changelist")
    body = client.get(url, {"kind": "requested"}).content.decode()
    assert fleet.world.users["operator"].username in body and "— → 400" in body
    rejected = client.get(url, {"kind": "rejected", "device__id__exact": device.pk})
    assert [event.kind for event in rejected.context["cl"].result_list] == ["rejected"]
    assert "CT input saturates above 200 A" in rejected.content.decode()
    assert [row.device_id for row in client.get(reverse("admin:control_deviceparameter_changelist"), {"state": "rejected"}).context["cl"].result_list] == [device.pk]
