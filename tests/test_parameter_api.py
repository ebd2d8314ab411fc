"""The REST API of device parameters: one device's parameters and history, change sets, bulk changes
with preview and progress, refusals naming the rule, and tenancy. No broker: deliveries are queued
after the commit, which never comes inside the test's transaction; control.bulk.prepare is called
directly where the Celery task would run it."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from assets.models import Device, Membership
from control.bulk import prepare, start
from control.changes import request_changes
from control.models import BulkChange, ChangeSet, DeviceParameter, ParameterEvent

from .api_world import build_world, make_user, token_client
from .parameter_fleet import build_fleet, device_says

pytestmark = pytest.mark.django_db


@pytest.fixture
def a():
    return build_world("a")


@pytest.fixture
def b():
    return build_world("b")


@pytest.fixture
def fleet(a):
    return build_fleet(a)


def parameters_url(device):
    return reverse("deviceparameters-parameters", args=[device.pk])


def history_url(device):
    return reverse("deviceparameters-parameter-history", args=[device.pk])


def nothing_changed():
    return not (ChangeSet.objects.exists() or BulkChange.objects.exists() or DeviceParameter.objects.exists() or ParameterEvent.objects.exists())


# --- one device --------------------------------------------------------------------------------------

def test_a_devices_parameters_show_definition_desired_reported_state_and_version(a):
    request_changes(a.device, {"ct_ratio": 400})
    device_says(a.device, {"version": 1, "status": "rejected", "applied": [], "rejected": {"ct_ratio": "CT input saturates above 200 A"},
                           "parameters": {"ct_ratio": 100, "reporting_interval_s": 60}})
    body = a.client("viewer").get(parameters_url(a.device)).json()
    assert (body["protocol"], body["last_version"], body["reported_version"]) == ("iotwatt", 1, 1)
    by_key = {row["key"]: row for row in body["parameters"]}
    assert set(by_key) == {"reporting_interval_s", "ct_ratio", "relay_default", "max_power_w", "firmware"}
    ct = by_key["ct_ratio"]
    assert ct["definition"] == {"type": "integer", "unit": "A", "minimum": None, "maximum": None, "choices": [50, 100, 200, 400, 600],
                                "default": 100, "writable": True, "reboot": True, "description": "Primary current of the current transformers"}
    assert (ct["desired"], ct["reported"], ct["state"], ct["reason"], ct["change_set_version"]) == (
        400, 100, "rejected", "CT input saturates above 200 A", 1)
    interval = by_key["reporting_interval_s"]
    assert (interval["definition"]["minimum"], interval["definition"]["maximum"], interval["reported"], interval["state"]) == (1, 3600, 60, "in_sync")
    assert by_key["firmware"]["definition"]["writable"] is False
    assert (by_key["max_power_w"]["state"], by_key["max_power_w"]["desired"]) == (None, None)  # never set nor reported


@pytest.mark.parametrize("method", ["patch", "post"])
def test_setting_parameters_answers_202_with_the_change_set_then_200_when_nothing_is_left_to_send(a, method):
    client = a.client("operator")
    response = getattr(client, method)(parameters_url(a.device), {"values": {"ct_ratio": 200, "reporting_interval_s": 30}}, format="json")
    assert response.status_code == 202, response.content
    change_set = response.json()["change_set"]
    assert (change_set["version"], change_set["values"], change_set["state"]) == (1, {"ct_ratio": 200, "reporting_interval_s": 30}, "pending")
    assert change_set["created_by"] == a.users["operator"].username
    assert ParameterEvent.objects.get(key="ct_ratio", kind="requested").actor == a.users["operator"]

    again = getattr(client, method)(parameters_url(a.device), {"values": {"ct_ratio": 200}}, format="json")
    assert again.status_code == 200 and again.json()["change_set"] is None
    assert "nothing to send" in again.json()["detail"].lower()
    assert ChangeSet.objects.count() == 1


def test_a_refused_value_answers_400_naming_each_parameter_and_rule_and_changes_nothing(a):
    response = a.client("operator").patch(
        parameters_url(a.device), {"values": {"reporting_interval_s": 0, "ct_ratio": 150, "relay_default": "off"}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"values": {
        "reporting_interval_s": ["reporting_interval_s: 0 is below the minimum 1 s"],
        "ct_ratio": ["ct_ratio: 150 is not one of 50, 100, 200, 400, 600"],
    }}
    assert nothing_changed()
    for body in ({"values": {}}, {"values": [1]}, {}):
        assert a.client("operator").patch(parameters_url(a.device), body, format="json").status_code == 400
    assert nothing_changed()


def test_the_history_is_the_audit_newest_first_and_paginated(a):
    client = a.client("viewer")
    request_changes(a.device, {"ct_ratio": 200}, actor=a.users["operator"])
    request_changes(a.device, {"ct_ratio": 400}, actor=a.users["admin"])
    first_page = client.get(history_url(a.device), {"page_size": 2}).json()
    assert first_page["count"] == 3 and first_page["next"]
    superseded, newest_request = first_page["results"]  # the supersession is written after the request that made it
    assert (superseded["kind"], superseded["actor"], superseded["change_set_version"]) == ("superseded", a.users["admin"].username, 1)
    assert (newest_request["kind"], newest_request["actor"], newest_request["old_value"], newest_request["new_value"]) == (
        "requested", a.users["admin"].username, 200, 400)
    oldest = client.get(first_page["next"]).json()["results"]
    assert [(e["kind"], e["actor"], e["new_value"]) for e in oldest] == [("requested", a.users["operator"].username, 200)]


def test_change_sets_are_listed_and_filtered(fleet):
    client = fleet.world.client("viewer")
    one, two = fleet.devices["meter-1"], fleet.devices["meter-2"]
    request_changes(one, {"ct_ratio": 200})
    request_changes(one, {"ct_ratio": 400})
    request_changes(two, {"ct_ratio": 200})
    url = reverse("changeset-list")

    def listed(**params):
        return sorted((row["device"], row["version"], row["state"]) for row in client.get(url, params).json()["results"])

    assert listed() == [(one.pk, 1, "superseded"), (one.pk, 2, "pending"), (two.pk, 1, "pending")]
    assert listed(device=one.pk) == [(one.pk, 1, "superseded"), (one.pk, 2, "pending")]
    assert listed(state="pending") == [(one.pk, 2, "pending"), (two.pk, 1, "pending")]
    assert client.post(url, {"device": one.pk, "version": 9, "values": {}}, format="json").status_code in (403, 405)


# --- many devices ------------------------------------------------------------------------------------

def test_the_preview_shows_each_devices_outcome_and_changes_nothing(fleet):
    already = fleet.devices["meter-2"]
    device_says(already, {"version": 0, "parameters": {"ct_ratio": 200}})
    before = (DeviceParameter.objects.count(), ParameterEvent.objects.count())
    response = fleet.world.client("operator").post(
        reverse("parameterchange-preview"), {"values": {"ct_ratio": 200}, "tag": "floor-3"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["summary"] == {"devices": 2, "to_send": 1, "already_set": 1, "refused": 0}
    rows = {row["identifier"]: row for row in body["rows"]}
    assert set(rows) == {fleet.devices["meter-1"].identifier, already.identifier}
    assert rows[already.identifier]["outcome"] == "already_set"
    assert rows[already.identifier]["changes"] == [{"key": "ct_ratio", "current_desired": None, "reported": 200, "new_value": 200, "sends": False}]
    assert rows[fleet.devices["meter-1"].identifier]["outcome"] == "sends"
    assert (DeviceParameter.objects.count(), ParameterEvent.objects.count()) == before
    assert not ChangeSet.objects.exists() and not BulkChange.objects.exists()


def test_the_preview_shows_a_refusal_per_device(fleet):
    response = fleet.world.client("operator").post(
        reverse("parameterchange-preview"), {"values": {"reporting_interval_s": 7200}, "site": fleet.second_site.pk}, format="json")
    body = response.json()
    assert body["summary"] == {"devices": 2, "to_send": 0, "already_set": 0, "refused": 2}
    assert {row["outcome"] for row in body["rows"]} == {"refused"}
    assert body["rows"][0]["refused"] == {"reporting_interval_s": "reporting_interval_s: 7200 is above the maximum 3600 s"}
    assert nothing_changed()


@pytest.mark.parametrize("criteria, chosen", [
    (lambda fleet: {"tag": "pilot"}, ("meter-2", "meter-3")),
    (lambda fleet: {"site": fleet.second_site.pk}, ("meter-2", "meter-3")),
    (lambda fleet: {"device_model": fleet.world.device_model.pk}, ("meter-0", "meter-1", "meter-2")),
    (lambda fleet: {"device_model": fleet.world.device_model.pk, "tag": "floor-3"}, ("meter-1", "meter-2")),
    (lambda fleet: {"devices": [fleet.devices["meter-0"].pk, fleet.devices["meter-3"].pk]}, ("meter-0", "meter-3")),
])
def test_a_bulk_change_makes_change_sets_for_exactly_the_chosen_devices(fleet, criteria, chosen):
    client = fleet.world.client("operator")
    response = client.post(reverse("parameterchange-list"), {"values": {"reporting_interval_s": 30}, **criteria(fleet)}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    bulk = BulkChange.objects.get(pk=body["id"])
    assert set(body["device_ids"]) == fleet.named(*chosen) and bulk.organisation == fleet.world.organisation
    assert body["progress_url"].endswith(reverse("parameterchange-detail", args=[bulk.pk]))
    assert not ChangeSet.objects.exists()  # the task makes them

    assert prepare(bulk.pk) == len(chosen)
    assert set(ChangeSet.objects.values_list("device_id", flat=True)) == fleet.named(*chosen)
    assert set(ChangeSet.objects.values_list("bulk_change_id", flat=True)) == {bulk.pk}
    assert {cs.values["reporting_interval_s"] for cs in ChangeSet.objects.all()} == {30}


def test_progress_counts_change_sets_answers_skips_and_the_end(fleet):
    client = fleet.world.client("viewer")
    one, two, three = (fleet.devices[name] for name in ("meter-1", "meter-2", "meter-3"))
    device_says(three, {"version": 0, "parameters": {"ct_ratio": 400}})  # already has it: skipped
    operator = fleet.world.client("operator")
    bulk_id = operator.post(reverse("parameterchange-list"), {"values": {"ct_ratio": 400}, "devices": [one.pk, two.pk, three.pk]},
                            format="json").json()["id"]
    url = reverse("parameterchange-detail", args=[bulk_id])
    assert client.get(url).json()["progress"]["state"] == "preparing"
    prepare(bulk_id)
    progress = client.get(url).json()["progress"]
    assert (progress["state"], progress["devices"], progress["prepared"], progress["change_sets"], progress["skipped"]) == (
        "delivering", 3, 3, 2, 1)
    assert (progress["by_state"]["pending"], progress["answered"], progress["percent_done"], progress["seconds"]) == (2, 0, 33.3, None)
    assert client.get(url).json()["skipped"] == {three.identifier: "already set: nothing to send"}

    ChangeSet.objects.filter(device=one).update(messages_sent=2, state="sent")
    ChangeSet.objects.filter(device=two).update(messages_sent=1, state="sent")
    device_says(one, {"version": 1, "status": "applied", "applied": ["ct_ratio"], "parameters": {"ct_ratio": 400}})
    progress = client.get(url).json()["progress"]
    assert (progress["by_state"]["applied"], progress["by_state"]["sent"], progress["answered"]) == (1, 1, 1)
    assert (progress["messages_sent"], progress["percent_done"], progress["state"]) == (3, 66.7, "delivering")

    device_says(two, {"version": 1, "status": "rejected", "rejected": {"ct_ratio": "no"}, "parameters": {"ct_ratio": 100}})
    progress = client.get(url).json()["progress"]
    assert (progress["answered"], progress["percent_done"], progress["state"]) == (2, 100.0, "done")
    assert progress["seconds"] is not None and progress["seconds"] >= 0
    assert [row["id"] for row in client.get(reverse("changeset-list"), {"bulk_change": bulk_id}).json()["results"]] == list(
        ChangeSet.objects.filter(bulk_change=bulk_id).order_by("-id").values_list("pk", flat=True))


def test_a_bulk_change_refused_everywhere_answers_400_naming_the_rule(fleet):
    response = fleet.world.client("operator").post(
        reverse("parameterchange-list"), {"values": {"relay_default": "maybe"}, "tag": "pilot"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"values": {"relay_default": ["relay_default: 'maybe' is not one of 'on', 'off', 'last'"]}}
    assert nothing_changed()


def test_a_bulk_change_with_nothing_to_send_starts_nothing(fleet):
    device_says(fleet.devices["meter-3"], {"version": 0, "parameters": {"ct_ratio": 50}})
    response = fleet.world.client("operator").post(
        reverse("parameterchange-list"), {"values": {"ct_ratio": 50}, "devices": [fleet.devices["meter-3"].pk]}, format="json")
    assert response.status_code == 200 and response.json()["summary"]["already_set"] == 1
    assert not BulkChange.objects.exists()


@pytest.mark.parametrize("body, problem", [
    ({"values": {"ct_ratio": 200}}, "Choose the devices"),
    ({"values": {"ct_ratio": 200}, "tag": "nowhere"}, "No device matches"),
    ({"values": {"ct_ratio": 200}, "devices": []}, "No device matches"),
    ({"values": {}, "tag": "pilot"}, "at least one parameter"),
])
def test_a_selection_without_criteria_or_devices_is_refused(fleet, body, problem):
    for name in ("parameterchange-preview", "parameterchange-list"):
        response = fleet.world.client("operator").post(reverse(name), body, format="json")
        assert response.status_code == 400 and problem in str(response.json()), response.json()
    assert nothing_changed()


# --- tenancy -----------------------------------------------------------------------------------------

def test_viewers_read_but_cannot_change(fleet):
    viewer = fleet.world.client("viewer")
    device = fleet.world.device
    assert viewer.get(parameters_url(device)).status_code == 200
    assert viewer.get(history_url(device)).status_code == 200
    assert viewer.patch(parameters_url(device), {"values": {"ct_ratio": 200}}, format="json").status_code == 403
    assert viewer.post(parameters_url(device), {"values": {"ct_ratio": 200}}, format="json").status_code == 403
    for name in ("parameterchange-preview", "parameterchange-list"):
        assert viewer.post(reverse(name), {"values": {"ct_ratio": 200}, "tag": "pilot"}, format="json").status_code == 403
    assert nothing_changed()


def test_another_organisations_device_and_changes_answer_404_or_are_not_listed(a, b):
    request_changes(b.device, {"ct_ratio": 200})
    b_bulk = start(b.organisation, Device.objects.filter(pk=b.device.pk), {"ct_ratio": 400}, {"devices": [b.device.pk]})
    for role in ("viewer", "operator", "admin"):
        client = a.client(role)
        assert client.get(parameters_url(b.device)).status_code == 404
        assert client.get(history_url(b.device)).status_code == 404
        assert client.get(reverse("parameterchange-detail", args=[b_bulk.pk])).status_code == 404
        assert client.get(reverse("changeset-detail", args=[ChangeSet.objects.get(device=b.device).pk])).status_code == 404
        assert client.get(reverse("changeset-list")).json()["count"] == 0
        assert client.get(reverse("parameterchange-list")).json()["count"] == 0
        # Filters naming B's objects: refused like unknown ids.
        assert client.get(reverse("changeset-list"), {"device": b.device.pk}).status_code == 400
        assert client.get(reverse("changeset-list"), {"bulk_change": b_bulk.pk}).status_code == 400
    operator = a.client("operator")
    assert operator.patch(parameters_url(b.device), {"values": {"ct_ratio": 50}}, format="json").status_code == 404
    assert DeviceParameter.objects.get(device=b.device, key="ct_ratio").desired == 200
    # Naming B's device in a bulk selection: "does not exist", nothing started.
    response = operator.post(reverse("parameterchange-list"), {"values": {"ct_ratio": 50}, "devices": [a.device.pk, b.device.pk]}, format="json")
    assert response.status_code == 400 and "does not exist" in str(response.json()["devices"])
    response = operator.post(reverse("parameterchange-list"), {"values": {"ct_ratio": 50}, "site": b.site.pk}, format="json")
    assert response.status_code == 400 and "does not exist" in str(response.json()["site"])
    assert BulkChange.objects.count() == 1


def test_a_bulk_change_spanning_two_organisations_is_refused(a, b):
    both = make_user("both")
    Membership.objects.create(user=both, organisation=a.organisation, role="operator")
    Membership.objects.create(user=both, organisation=b.organisation, role="operator")
    for device in (a.device, b.device):
        device.tags = ["shared-tag"]
        device.save(update_fields=["tags"])
    client = token_client(both)
    for name in ("parameterchange-preview", "parameterchange-list"):
        response = client.post(reverse(name), {"values": {"ct_ratio": 200}, "tag": "shared-tag"}, format="json")
        assert response.status_code == 400
        assert "2 organisations" in response.json()["selection"][0] and "one organisation at a time" in response.json()["selection"][0]
    assert nothing_changed()
    # Narrowed to one organisation, the same user may.
    response = client.post(reverse("parameterchange-list"), {"values": {"ct_ratio": 200}, "tag": "shared-tag", "site": a.site.pk}, format="json")
    assert response.status_code == 202 and response.json()["device_ids"] == [a.device.pk]


def test_a_bulk_change_where_the_user_only_views_is_refused(a, b):
    mixed = make_user("mixed")
    Membership.objects.create(user=mixed, organisation=a.organisation, role="operator")
    Membership.objects.create(user=mixed, organisation=b.organisation, role="viewer")
    client = token_client(mixed)
    response = client.post(reverse("parameterchange-list"), {"values": {"ct_ratio": 200}, "site": b.site.pk}, format="json")
    assert response.status_code == 403
    assert client.patch(parameters_url(b.device), {"values": {"ct_ratio": 200}}, format="json").status_code == 403
    assert client.get(parameters_url(b.device)).status_code == 200
    assert nothing_changed()


# --- devices' tags, the schema -----------------------------------------------------------------------

def test_devices_show_and_filter_by_tags(fleet):
    client = fleet.world.client("viewer")
    rows = client.get(reverse("device-list"), {"tag": "pilot"}).json()["results"]
    assert {row["id"] for row in rows} == fleet.named("meter-2", "meter-3")
    assert {row["identifier"]: row["tags"] for row in rows}[fleet.devices["meter-2"].identifier] == ["floor-3", "pilot"]
    response = fleet.world.client("operator").patch(
        reverse("device-detail", args=[fleet.world.device.pk]), {"tags": ["floor-4"]}, format="json")
    assert response.status_code == 200 and response.json()["tags"] == ["floor-4"]
    assert fleet.world.client("operator").patch(
        reverse("device-detail", args=[fleet.world.device.pk]), {"tags": ["not a slug"]}, format="json").status_code == 400


def test_the_schema_generates_without_warnings():
    call_command("spectacular", "--fail-on-warn", "--validate", stdout=StringIO(), stderr=StringIO())


def test_a_selection_by_tag_reaches_only_the_devices_the_user_may_change(a, b):
    """Operator in A, viewer in B, one tag on devices of both: the bulk change is A's devices, not a refusal."""
    mixed = make_user("mixed-tag")
    Membership.objects.create(user=mixed, organisation=a.organisation, role="operator")
    Membership.objects.create(user=mixed, organisation=b.organisation, role="viewer")
    for device in (a.device, b.device):
        device.tags = ["shared-tag"]
        device.save(update_fields=["tags"])
    response = token_client(mixed).post(reverse("parameterchange-list"), {"values": {"ct_ratio": 200}, "tag": "shared-tag"}, format="json")
    assert response.status_code == 202 and response.json()["device_ids"] == [a.device.pk]
    # Named one by one, B's device is refused rather than quietly left out.
    response = token_client(mixed).post(reverse("parameterchange-list"), {"values": {"ct_ratio": 200}, "devices": [a.device.pk, b.device.pk]}, format="json")
    assert response.status_code in (400, 403)
    assert BulkChange.objects.count() == 1
