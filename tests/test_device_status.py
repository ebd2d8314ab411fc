"""Device status from status topics (retained, last wills) and last seen: maps, decoding, ingest, admin and API.

The status payloads are the devices' own conventions, as the files in ../shared/payloads describe them:
Tasmota `tele/<topic>/LWT` "Online"/"Offline", Shelly Gen2 `<prefix>/online` "true"/"false", ESPHome
`<node>/status` "online"/"offline" (the file's first message is a real-shaped one).
"""

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assets.models import Device
from telemetry.decoders import DecodeError, ParameterMapError, decode_status, device_identifier, validate_parameter_map
from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, Reading
from telemetry.parameter_maps import (
    EMONHUB,
    ESPHOME_STATE,
    IOTWATT_NATIVE,
    SHELLY_EM1,
    SHELLY_GEN2_SWITCH,
    SHELLY_PRO_3EM,
    TASMOTA_SENSOR,
)

from .api_world import build_world, token_client
from .test_local_periods import make_channel, message

PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "payloads"
T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def payload_file(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text())


def test_the_payload_files_describe_the_status_conventions_the_maps_use():
    """The maps' status sections come from these notes; if a file changes, this says which map to revisit."""
    assert "tele/<topic>/LWT" in payload_file("tasmota_sensor_energy.json")["topics"]
    assert "'Online' / 'Offline'" in payload_file("tasmota_sensor_energy.json")["topics"]["tele/<topic>/LWT"]
    assert "'true' / 'false'" in payload_file("shelly_gen2_switch_pm.json")["topics"]["<topic_prefix>/online"]
    esphome = payload_file("esphome_mqtt_state.json")
    assert "<topic_prefix>/status  payload 'online' / 'offline'" in esphome["topic_rules"]["availability"]
    assert esphome["messages"][0] == {"topic": "garage-meter/status", "payload": "online"}


STATUS_MESSAGES = [
    (IOTWATT_NATIVE, "iotwatt/plant-7/status", "online", "plant-7", True),
    (IOTWATT_NATIVE, "iotwatt/plant-7/status", "offline", "plant-7", False),
    (TASMOTA_SENSOR, "tele/tasmota_5014E2/LWT", "Online", "tasmota_5014E2", True),
    (TASMOTA_SENSOR, "tele/tasmota_5014E2/LWT", "Offline", "tasmota_5014E2", False),
    (SHELLY_GEN2_SWITCH, "shellyplus1pm-4417939341dc/online", "true", "shellyplus1pm-4417939341dc", True),
    (SHELLY_GEN2_SWITCH, "shellyplus1pm-4417939341dc/online", "false", "shellyplus1pm-4417939341dc", False),
    (SHELLY_PRO_3EM, "shellypro3em-1234567890ab/online", b"true", "shellypro3em-1234567890ab", True),
    (SHELLY_EM1, "shellyemg3-dcb4d9c564f4/online", "false", "shellyemg3-dcb4d9c564f4", False),
    (ESPHOME_STATE, "garage-meter/status", "online", "garage-meter", True),
    (ESPHOME_STATE, "garage-meter/status", "offline\n", "garage-meter", False),
]


@pytest.mark.parametrize("parameter_map, topic, payload, device, online", STATUS_MESSAGES)
def test_each_built_in_status_topic_decodes_with_the_devices_own_payloads(parameter_map, topic, payload, device, online):
    assert decode_status(topic, payload, parameter_map) is online
    assert device_identifier(topic, parameter_map) == device  # the device's own topic: no other device may claim it


@pytest.mark.parametrize(
    "parameter_map, topic",
    [(TASMOTA_SENSOR, "tele/tasmota_5014E2/SENSOR"), (ESPHOME_STATE, "garage-meter/sensor/power/state"),
     (SHELLY_GEN2_SWITCH, "shellyplus1pm-4417939341dc/events/rpc"), (EMONHUB, "emon/emonTx4_17/status")],
)
def test_a_telemetry_topic_is_no_status(parameter_map, topic):
    assert decode_status(topic, "online", parameter_map) is None


def test_emonhub_has_no_status_section():
    assert "status" not in EMONHUB


@pytest.mark.parametrize("payload", ["Online", "ONLINE", "1", "", "connected", b"\xff"])
def test_a_status_payload_the_map_does_not_name_is_refused(payload):
    with pytest.raises(DecodeError, match="status payload"):
        decode_status("iotwatt/plant-7/status", payload, IOTWATT_NATIVE)


def with_status(status) -> dict:
    parameter_map = copy.deepcopy(TASMOTA_SENSOR)
    parameter_map["status"] = status
    return parameter_map


@pytest.mark.parametrize(
    "status, problem",
    [
        ("tele/{device}/LWT", '"status" must be an object'),
        ({"topic": "tele/{device}/LWT", "online": "Online", "offline": "Offline", "retain": True}, "unknown key"),
        ({"topic": "tele/LWT", "online": "Online", "offline": "Offline"}, "exactly one {device}"),
        ({"topic": "tele/{device}/{channel}", "online": "Online", "offline": "Offline"}, "names the device only"),
        ({"topic": "tele/{device}/+", "online": "Online", "offline": "Offline"}, "wildcard"),
        ({"topic": "tele/{device}/SENSOR", "online": "Online", "offline": "Offline"}, "could also be the telemetry topic"),
        ({"topic": "{device}/x/SENSOR", "online": "Online", "offline": "Offline"}, "could also be the telemetry topic"),
        ({"topic": "tele/{device}/LWT", "online": "Online"}, '"status.offline" must be'),
        ({"topic": "tele/{device}/LWT", "online": [], "offline": "Offline"}, '"status.online" must be'),
        ({"topic": "tele/{device}/LWT", "online": " ", "offline": "Offline"}, '"status.online" must be'),
        ({"topic": "tele/{device}/LWT", "online": ["Online", 1], "offline": "Offline"}, '"status.online" must be'),
        ({"topic": "tele/{device}/LWT", "online": ["Online", "Up"], "offline": ["Up"]}, "cannot mean both"),
    ],
)
def test_a_wrong_status_section_is_refused_with_its_place(status, problem):
    with pytest.raises(ParameterMapError, match=problem.replace("{", "\\{").replace("}", "\\}").replace("+", "\\+")):
        validate_parameter_map(with_status(status))


def test_a_status_section_with_several_values_per_state_is_accepted():
    parameter_map = with_status({"topic": "tele/{device}/LWT", "online": ["Online", "online"], "offline": "Offline"})
    validate_parameter_map(parameter_map)
    assert decode_status("tele/p/LWT", "online", parameter_map) is True


# --- ingest --------------------------------------------------------------------------------------

def status(device: str, payload: str, at: datetime, retained: bool = False) -> dict:
    record = {"topic": f"iotwatt/{device}/status", "payload": payload, "received_at": at.isoformat()}
    if retained:
        record["retained"] = True
    return record


def device_row(identifier: str = "m1") -> Device:
    return Device.objects.get(identifier=identifier)


@pytest.mark.django_db
def test_a_status_message_sets_online_and_is_no_dead_letter():
    make_channel("Europe/Berlin")
    assert device_row().online is None  # not known before the first status

    result = ingest_messages([status("m1", "online", T0)])

    device = device_row()
    assert device.online is True and device.status_changed_at == T0 and device.last_seen_at == T0
    assert result.dead_letters == 0 and DeadLetter.objects.count() == 0 and Reading.objects.count() == 0


@pytest.mark.django_db
def test_an_older_status_never_overwrites_a_newer_one():
    make_channel("Europe/Berlin")
    ingest_messages([status("m1", "offline", T0 + timedelta(seconds=10))])
    # The same device's earlier "online", committed later (another bridge, a retried batch).
    ingest_messages([status("m1", "online", T0)])

    device = device_row()
    assert device.online is False and device.status_changed_at == T0 + timedelta(seconds=10)


@pytest.mark.django_db
def test_within_a_batch_the_last_status_to_arrive_counts():
    make_channel("Europe/Berlin")
    ingest_messages([status("m1", "offline", T0 + timedelta(seconds=5)), status("m1", "online", T0)])
    assert device_row().online is False
    ingest_messages([status("m1", "online", T0 + timedelta(seconds=6)), status("m1", "offline", T0 + timedelta(seconds=6))])
    assert device_row().online is False  # same arrival time: the later message in the batch


@pytest.mark.django_db
def test_the_same_status_again_keeps_when_it_changed_but_orders_later_messages():
    make_channel("Europe/Berlin")
    ingest_messages([status("m1", "online", T0)])
    ingest_messages([status("m1", "online", T0 + timedelta(minutes=5), retained=True)])  # a restarted bridge gets the retained one
    assert device_row().status_changed_at == T0
    # An offline that arrived between the two is older than the newest report: it must not win.
    ingest_messages([status("m1", "offline", T0 + timedelta(minutes=2))])

    device = device_row()
    assert device.online is True and device.status_changed_at == T0


@pytest.mark.django_db
def test_last_seen_is_the_newest_live_message_of_any_kind_not_a_retained_replay():
    make_channel("Europe/Berlin")
    ingest_messages([message("m1", "2024-01-01T00:00:00+00:00", 1.0, received_at=T0.isoformat())])
    assert device_row().last_seen_at == T0
    ingest_messages([status("m1", "offline", T0 + timedelta(hours=1), retained=True)])
    device = device_row()
    assert device.last_seen_at == T0 and device.online is False  # the retained status counts, but the device was not heard
    ingest_messages([message("m1", "2024-01-01T01:00:00+00:00", 2.0, received_at=(T0 - timedelta(hours=1)).isoformat())])
    assert device_row().last_seen_at == T0  # an older arrival never moves it back


@pytest.mark.django_db
def test_an_unknown_status_payload_is_a_dead_letter_and_the_status_stays():
    make_channel("Europe/Berlin")
    ingest_messages([status("m1", "online", T0)])

    result = ingest_messages([status("m1", "rebooting", T0 + timedelta(seconds=1))])

    assert result.dead_letters == 1 and "neither online" in DeadLetter.objects.get().reason
    device = device_row()
    assert device.online is True and device.last_seen_at == T0 + timedelta(seconds=1)


@pytest.mark.django_db
def test_device_activity_of_a_whole_batch_is_one_update():
    make_channel("Europe/Berlin", device="m1")
    make_channel("Europe/Berlin", device="m2")
    batch = [message(d, f"2024-01-01T{h:02d}:00:00+00:00", h, received_at=(T0 + timedelta(seconds=h)).isoformat())
             for h in range(20) for d in ("m1", "m2")]
    batch += [status("m1", "online", T0), status("m2", "offline", T0)]

    with CaptureQueriesContext(connection) as queries:
        ingest_messages(batch)

    device_updates = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("WITH locked") or 'UPDATE "assets_device"' in q["sql"]]
    assert len(device_updates) == 1
    assert device_row("m1").last_seen_at == device_row("m2").last_seen_at == T0 + timedelta(seconds=19)
    assert (device_row("m1").online, device_row("m2").online) == (True, False)


# --- admin and API -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_lists_and_shows_online_and_last_seen_read_only(client):
    world = build_world("status")
    Device.objects.filter(pk=world.device.pk).update(online=False, status_changed_at=T0, last_seen_at=T0)
    client.force_login(get_user_model().objects.create_superuser("root", password=None))

    listing = client.get(reverse("admin:assets_device_changelist")).content.decode()
    detail = client.get(reverse("admin:assets_device_change", args=[world.device.pk]))

    assert "column-online" in listing and "column-last_seen_at" in listing and "column-status_changed_at" in listing
    assert set(detail.context["adminform"].readonly_fields) >= {"online", "status_changed_at", "last_seen_at"}
    assert "name=\"online\"" not in detail.content.decode()  # shown, never an input


@pytest.mark.django_db
def test_api_shows_status_and_refuses_to_take_it_from_a_client():
    world = build_world("status-api")
    Device.objects.filter(pk=world.device.pk).update(online=True, status_changed_at=T0, last_seen_at=T0)
    api = token_client(world.users["operator"])
    url = reverse("device-detail", args=[world.device.pk])

    row = api.get(url).json()
    assert (row["online"], row["status_changed_at"], row["last_seen_at"]) == (True, "2024-06-01T12:00:00Z", "2024-06-01T12:00:00Z")

    response = api.patch(url, {"online": False, "last_seen_at": "2030-01-01T00:00:00Z", "name": "renamed"}, format="json")
    assert response.status_code == 200
    device = device_row(world.device.identifier)
    assert device.name == "renamed" and device.online is True and device.last_seen_at == T0
