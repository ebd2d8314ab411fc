"""IoTaWatt's InfluxDB uploads over HTTP, with the example lines of ../shared/payloads/iotawatt_outputs.json."""

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from assets.models import Channel, Device, DeviceModel
from telemetry.influx_upload import LineError, parse_line
from telemetry.models import DeadLetter, PendingDevice, Reading
from telemetry.parameter_maps import IOTAWATT_INFLUX

from .api_world import build_world, make_user, token_client

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "payloads"
EXAMPLE = json.loads((PAYLOADS / "iotawatt_outputs.json").read_text())["outputs"]["influxdb_line_protocol"]["example"]
V2 = "/api/ingest/iotawatt/influx/api/v2/write?precision=s&orgID=o&bucket=b"
V1 = "/api/ingest/iotawatt/influx/write?precision=s&db=iotawatt"


@pytest.fixture
def iotawatt():
    """An IoTaWatt registered as `iotawatt1` (the example's device tag) in a world of its own."""
    world = build_world("iotawatt")
    model = DeviceModel.objects.create(organisation=world.organisation, key="iotawatt-influx", name="IoTaWatt", parameter_map=IOTAWATT_INFLUX)
    device = Device.objects.create(site=world.site, device_model=model, identifier="iotawatt1")
    for key, metric in (("mains", "power"), ("solar", "power"), ("voltage", "voltage")):
        Channel.objects.create(device=device, key=key, metric=metric)
    return world, device


def stored(device) -> dict:
    return {(r.channel.key, r.time): r.value for r in Reading.objects.filter(channel__device=device).select_related("channel")}


def test_the_example_upload_is_stored_in_base_units_at_its_times(iotawatt):
    world, device = iotawatt

    response = token_client(world.users["operator"]).post(V2, EXAMPLE, content_type="text/plain")

    assert response.status_code == 204, response.content
    at = datetime.fromtimestamp(1701608400, tz=timezone.utc)
    assert stored(device) == {("mains", at): 1532.4, ("solar", at): 310.0, ("voltage", at): 239.8}
    assert not DeadLetter.objects.exists()


def test_a_backlog_sent_again_is_stored_once(iotawatt):
    world, device = iotawatt
    client = token_client(world.users["operator"])

    for _ in range(2):
        assert client.post(V2, EXAMPLE, content_type="text/plain").status_code == 204

    assert Reading.objects.filter(channel__device=device).count() == 3


def test_v1_with_basic_auth_and_millisecond_precision():
    world = build_world("iotawatt-v1")
    model = DeviceModel.objects.create(organisation=world.organisation, key="iotawatt-influx", name="IoTaWatt", parameter_map=IOTAWATT_INFLUX)
    device = Device.objects.create(site=world.site, device_model=model, identifier="shed")
    Channel.objects.create(device=device, key="heater", metric="power")
    user = make_user("uploader", password="s3cret-uploader")
    world.memberships["operator"].user = user
    world.memberships["operator"].save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"uploader:s3cret-uploader").decode())

    response = client.post(V1.replace("precision=s", "precision=ms"), "heater,device=shed,units=kW value=1.5 1701608400250", content_type="text/plain")

    assert response.status_code == 204, response.content
    assert stored(device) == {("heater", datetime(2023, 12, 3, 13, 0, 0, 250000, tzinfo=timezone.utc)): 1500.0}


def test_another_organisations_device_is_refused_and_nothing_is_stored(iotawatt):
    _, device = iotawatt
    stranger = build_world("stranger").users["admin"]

    response = token_client(stranger).post(V2, EXAMPLE, content_type="text/plain")

    assert response.status_code == 403
    assert not Reading.objects.exists() and not PendingDevice.objects.exists()


def test_without_credentials_nothing_is_taken():
    assert APIClient().post(V2, EXAMPLE, content_type="text/plain").status_code == 401
    assert not PendingDevice.objects.exists()


def test_lines_that_cannot_be_read_are_dead_letters_and_the_rest_is_stored(iotawatt):
    world, device = iotawatt
    body = "\n".join([
        "mains,device=iotawatt1,units=Watts value=1000 1701608400",
        "mains,device=iotawatt1,units=Watts value=1000",  # no time
        "solar,units=Watts value=5 1701608400",  # no device tag
        "mains,device=iotawatt1,units=Wh value=3 1701608410",  # interval energy: not a counter
        "voltage,device=iotawatt1,units=Volts value=NaN 1701608400",
    ])

    response = token_client(world.users["operator"]).post(V2, body, content_type="text/plain")

    assert response.status_code == 204
    assert stored(device) == {("mains", datetime.fromtimestamp(1701608400, tz=timezone.utc)): 1000.0}
    reasons = sorted(DeadLetter.objects.values_list("reason", flat=True))
    assert len(reasons) == 4
    assert any("unknown quantity 'Wh'" in r for r in reasons) and any("device tag is missing" in r for r in reasons)


def test_an_unregistered_device_is_refused_until_registered_and_nothing_is_kept(iotawatt):
    """Kept for later, its lines would go to whoever registers that name first, in any organisation."""
    world, _ = iotawatt
    body = "mains,device=iotawatt1,units=Watts value=1 1701608400\nmains,device=garage,units=Watts value=12 1701608400"

    response = token_client(world.users["operator"]).post(V2, body, content_type="text/plain")

    assert response.status_code == 403 and "garage" in response.json()["error"]
    assert not Reading.objects.exists() and not PendingDevice.objects.exists() and not DeadLetter.objects.exists()


def test_a_viewer_may_not_upload(iotawatt):
    world, _ = iotawatt

    assert token_client(world.users["viewer"]).post(V2, EXAMPLE, content_type="text/plain").status_code == 403
    assert not Reading.objects.exists()


def test_the_device_that_would_receive_the_lines_is_the_one_checked():
    """Another organisation's device of another model may claim the generated topic: it is refused."""
    victim = build_world("victim")
    odd_model = DeviceModel.objects.create(
        organisation=victim.organisation, key="odd", name="Odd", parameter_map={**IOTAWATT_INFLUX, "topic": "{device}/readings"}
    )
    odd = Device.objects.create(site=victim.site, device_model=odd_model, identifier="iotawatt-influx")
    Channel.objects.create(device=odd, key="mains", metric="power")
    attacker = build_world("attacker").users["operator"]

    response = token_client(attacker).post(V2, "mains,device=readings,units=Watts value=9 1701608400", content_type="text/plain")

    assert response.status_code == 403
    assert not Reading.objects.exists()


def test_a_nul_in_the_device_tag_is_a_dead_letter_not_an_error(iotawatt):
    world, _ = iotawatt

    response = token_client(world.users["operator"]).post(V2, "mains,device=x\x00y,units=Watts value=1 1701608400", content_type="text/plain")

    assert response.status_code == 204
    assert "NUL" in DeadLetter.objects.get().reason


@pytest.mark.parametrize(
    "line, expected",
    [
        (r"my\ mains,device=a\,b,units=Watts value=1.5 1", ("my mains", {"device": "a,b", "units": "Watts"}, "1.5")),
        ("m,device=d,units=PF power=0.97 1", ("m", {"device": "d", "units": "PF"}, "0.97")),
    ],
)
def test_line_protocol_escapes_and_a_single_renamed_field(line, expected):
    point = parse_line(line, "s")
    assert (point.measurement, point.tags, point.value) == expected


@pytest.mark.parametrize("line", ["m value=1", "m,device=d a=1,b=2 5", "m,device value=1 5", "m value=1 12x", "m value=1 99999999999999999999999"])
def test_malformed_lines_say_why(line):
    with pytest.raises(LineError):
        parse_line(line, "s")
