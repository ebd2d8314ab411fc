"""Unknown devices wait as pending devices until adopted; dead letters are replayed after a fix; oversize payloads.

Everything runs through ingest_messages (what the worker runs) and the admin through the test client.
"""

import base64
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from assets.models import Channel, Device, DeviceModel, Membership, Organisation, Site
from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, EnergyBucket, PendingDevice, Reading, UnclaimedMessage
from telemetry.parameter_maps import IOTWATT_NATIVE, TASMOTA_SENSOR
from telemetry.replay import replay_dead_letters

from .pipeline import ROOT, wait_until

pytestmark = pytest.mark.django_db

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def native(device: str, minute: int, channels: dict, topic: str | None = None) -> dict:
    """A native IotWatt message stamped `minute` minutes after START, arriving a second later."""
    ts = START + timedelta(minutes=minute)
    return {
        "topic": topic or f"iotwatt/{device}/telemetry",
        "payload": json.dumps({"ts": ts.isoformat(), "channels": channels}),
        "received_at": (ts + timedelta(seconds=1)).isoformat(),
    }


def counters(device: str, count: int, topic: str | None = None) -> list[dict]:
    """`count` messages of a grid energy counter (kWh) and a PV power (W), one a minute."""
    return [native(device, i, {"grid": {"energy_kwh": 100 + i / 10}, "pv": {"power_w": 500 + i}}, topic) for i in range(count)]


@pytest.fixture
def site():
    organisation = Organisation.objects.create(name="Acme", slug="acme")
    return Site.objects.create(organisation=organisation, name="Acme works", timezone="Europe/Berlin")


@pytest.fixture
def native_model():
    # A key of its own: the pipeline tests leave the demo's shared "iotwatt-native" model behind.
    return DeviceModel.objects.create(key="pending-native", name="IotWatt native", parameter_map=IOTWATT_NATIVE)


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123"))
    return client


def adopt_url(pending: PendingDevice) -> str:
    return reverse("admin:telemetry_pendingdevice_adopt", args=[pending.pk])


# --- unknown devices are kept ------------------------------------------------------------------

def test_an_unknown_devices_messages_are_kept_and_shown_pending(native_model):
    first, second = counters("new-1", 5)[:3], counters("new-1", 5)[3:]

    results = [ingest_messages(first), ingest_messages(second)]

    assert [(r.readings, r.dead_letters, r.pending) for r in results] == [(0, 0, 3), (0, 0, 2)]
    assert not DeadLetter.objects.exists()
    pending = PendingDevice.objects.get()
    assert (pending.identifier, pending.message_count, pending.dropped_count) == ("new-1", 5, 0)
    assert pending.messages.count() == 5
    assert pending.first_seen == START + timedelta(seconds=1)
    assert pending.last_seen == START + timedelta(minutes=4, seconds=1)
    assert pending.last_payload == second[-1]["payload"] and pending.last_topic == "iotwatt/new-1/telemetry"
    labels = [m["model"] for m in pending.matching_models]
    assert "IotWatt native (pending-native)" in labels and labels[-1] == "built-in map iotwatt_native"


def test_the_identifier_is_guessed_from_built_in_maps_and_an_unknown_topic_stands_alone():
    ingest_messages([
        {"topic": "tele/plug-7/SENSOR", "payload": '{"ENERGY": {"Total": 1.5}}', "received_at": START.isoformat()},
        {"topic": "home/garage/meter", "payload": "42", "received_at": START.isoformat()},
    ])

    tasmota = PendingDevice.objects.get(identifier="plug-7")
    assert tasmota.matching_models[0]["model"] == "built-in map tasmota_sensor"
    # No pattern says which level of an unknown topic names the device: the whole topic groups its messages.
    alone = PendingDevice.objects.get(key="topic:home/garage/meter")
    assert alone.identifier == "" and alone.matching_models == [] and alone.messages.count() == 1


def test_a_topic_two_registered_devices_claim_stays_a_dead_letter_never_a_pending_device(site, native_model):
    hijack = DeviceModel.objects.create(key="hijack", name="Hijack", parameter_map={**IOTWATT_NATIVE, "topic": "{device}/victim-1/telemetry"})
    Device.objects.create(site=site, device_model=native_model, identifier="victim-1")
    Device.objects.create(site=site, device_model=hijack, identifier="iotwatt")  # forced past the overlap check

    result = ingest_messages(counters("victim-1", 1))

    assert (result.dead_letters, result.pending) == (1, 0)
    assert "2 devices do (iotwatt, victim-1)" in DeadLetter.objects.get().reason
    assert not PendingDevice.objects.exists()


def test_a_pending_device_keeps_its_first_messages_and_counts_the_rest(settings):
    settings.PENDING_MAX_MESSAGES_PER_DEVICE = 3
    messages = counters("chatty", 5)

    ingest_messages(messages[:2])
    ingest_messages(messages[2:])

    pending = PendingDevice.objects.get()
    assert (pending.message_count, pending.dropped_count, pending.messages.count()) == (5, 2, 3)
    assert sorted(json.loads(m.payload)["ts"] for m in pending.messages.all()) == [json.loads(m["payload"])["ts"] for m in messages[:3]]
    assert pending.last_payload == messages[-1]["payload"]  # what it sends now stays visible


def test_unknown_devices_beyond_the_limit_are_counted_in_one_overflow_entry(settings):
    settings.PENDING_MAX_DEVICES = 2
    flood = [native(f"random-{i}", i, {"x": {"power_w": 1}}) for i in range(5)]

    ingest_messages(flood[:1])
    ingest_messages(flood[1:])

    assert PendingDevice.objects.exclude(key=PendingDevice.OVERFLOW_KEY).count() == 2
    overflow = PendingDevice.objects.get(key=PendingDevice.OVERFLOW_KEY)
    assert (overflow.message_count, overflow.dropped_count, overflow.messages.count()) == (3, 3, 0)
    assert UnclaimedMessage.objects.count() == 2
    # A known pending device still gets its messages while the store is full.
    ingest_messages([native("random-0", 10, {"x": {"power_w": 2}})])
    assert PendingDevice.objects.get(identifier="random-0").messages.count() == 2


# --- adoption ----------------------------------------------------------------------------------

def test_adoption_creates_the_device_and_its_channels_and_stores_every_kept_message_once(superuser_client, site, native_model):
    messages = counters("new-1", 30)
    for start in range(0, 30, 7):  # as several batches
        ingest_messages(messages[start:start + 7])
    pending = PendingDevice.objects.get()

    page = superuser_client.get(adopt_url(pending))
    # The first device model whose patterns match is offered first.
    assert page.status_code == 200 and page.context["form"]["device_model"].value() == pending.matching_models[0]["device_model_id"]
    preview = superuser_client.post(adopt_url(pending), {"device_model": native_model.pk, "site": site.pk, "_preview": "1"})
    assert preview.context["preview"].channels == [("grid", "energy"), ("pv", "power")]
    assert not Device.objects.exists()

    response = superuser_client.post(adopt_url(pending), {"device_model": native_model.pk, "site": site.pk, "name": "Works meter",
                                                          "create_channels": "on"})

    device = Device.objects.get(identifier="new-1")
    assert response.status_code == 302 and response["Location"] == reverse("admin:assets_device_change", args=[device.pk])
    assert (device.site, device.device_model, device.name) == (site, native_model, "Works meter")
    grid = device.channels.get(key="grid", metric="energy")
    pv = device.channels.get(key="pv", metric="power")
    expected_grid = {START + timedelta(minutes=i): (100 + i / 10) * 1000 for i in range(30)}
    assert {r.time: r.value for r in Reading.objects.filter(channel=grid)} == pytest.approx(expected_grid)
    assert {r.time: r.value for r in Reading.objects.filter(channel=pv)} == {START + timedelta(minutes=i): 500.0 + i for i in range(30)}
    assert Reading.objects.count() == 60
    assert sum(b.energy_wh for b in EnergyBucket.objects.filter(channel=grid)) == pytest.approx(2900)  # 29 minutes of 0.1 kWh
    assert not PendingDevice.objects.exists() and not UnclaimedMessage.objects.exists() and not DeadLetter.objects.exists()

    # The same messages again (the broker redelivers) change nothing.
    ingest_messages(messages)
    assert Reading.objects.count() == 60


def test_adoption_with_a_model_whose_topics_do_not_match_changes_nothing(superuser_client, site):
    tasmota = DeviceModel.objects.create(key="tasmota", name="Tasmota plug", parameter_map=TASMOTA_SENSOR)
    ingest_messages(counters("new-1", 2))
    pending = PendingDevice.objects.get()

    response = superuser_client.post(adopt_url(pending), {"device_model": tasmota.pk, "site": site.pk, "create_channels": "on"})

    assert response.status_code == 200
    assert "matches none of the topic patterns" in str(response.context["form"].errors["device_model"])
    assert not Device.objects.exists() and pending.messages.count() == 2


def test_a_topic_no_pattern_knew_is_adopted_with_a_model_written_for_it(superuser_client, site):
    ingest_messages(counters("m7", 3, topic="plant/m7/data"))
    pending = PendingDevice.objects.get(key="topic:plant/m7/data")
    plant = DeviceModel.objects.create(key="plant", name="Plant meter", organisation=site.organisation,
                                       parameter_map={**IOTWATT_NATIVE, "topic": "plant/{device}/data"})

    superuser_client.post(adopt_url(pending), {"device_model": plant.pk, "site": site.pk, "create_channels": "on"})

    device = Device.objects.get(identifier="m7")
    assert Reading.objects.filter(channel__device=device).count() == 6
    assert not PendingDevice.objects.exists()


def test_a_device_registered_by_hand_takes_its_pending_messages_with_the_replay_action(superuser_client, site, native_model):
    ingest_messages(counters("new-1", 4))
    pending = PendingDevice.objects.get()
    device = Device.objects.create(site=site, device_model=native_model, identifier="new-1")
    Channel.objects.create(device=device, key="grid", metric="energy")

    superuser_client.post(reverse("admin:telemetry_pendingdevice_changelist"),
                          {"action": "replay_into_registered", "_selected_action": [pending.pk]})

    assert Reading.objects.filter(channel__device=device).count() == 4
    # pv has no channel: each message is a dead letter for it, kept to be replayed once the channel exists.
    assert DeadLetter.objects.count() == 4 and "no power channel 'pv'" in DeadLetter.objects.first().reason
    assert not PendingDevice.objects.exists()


# --- dead-letter replay ------------------------------------------------------------------------

def replay_action(client, letters) -> list[str]:
    response = client.post(reverse("admin:telemetry_deadletter_changelist"),
                           {"action": "replay_selected", "_selected_action": [letter.pk for letter in letters]}, follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def grid_only(site, native_model):
    device = Device.objects.create(site=site, device_model=native_model, identifier="meter-1")
    Channel.objects.create(device=device, key="grid", metric="energy")
    return device


def test_a_dead_letter_replayed_after_adding_the_missing_channel_stores_its_readings_and_goes(superuser_client, grid_only):
    ingest_messages(counters("meter-1", 3))
    assert DeadLetter.objects.count() == 3 and Reading.objects.count() == 3
    Channel.objects.create(device=grid_only, key="pv", metric="power")

    notes = replay_action(superuser_client, DeadLetter.objects.all())

    assert Reading.objects.filter(channel__key="pv").count() == 3
    assert Reading.objects.filter(channel__key="grid").count() == 3  # stored once, not again
    assert not DeadLetter.objects.exists()
    assert notes == ["Replayed: 3 stored and removed (6 readings in them), 0 failed again (reason updated), "
                     "0 moved to pending devices, 0 not replayable (payload truncated)."]


def test_a_replay_that_fails_again_keeps_one_letter_with_the_new_reason(superuser_client, grid_only):
    ingest_messages(counters("meter-1", 1))
    letter = DeadLetter.objects.get()
    DeadLetter.objects.filter(pk=letter.pk).update(reason="an earlier reason")

    notes = replay_action(superuser_client, [letter])

    again = DeadLetter.objects.get()
    assert again.pk == letter.pk and again.replay_count == 1 and again.replayed_at is not None
    assert again.reason == "device meter-1 has no power channel 'pv'"
    assert "1 failed again" in notes[0]
    replay_action(superuser_client, [again])
    assert DeadLetter.objects.get().replay_count == 2


def test_binary_and_nul_payloads_are_kept_whole_and_replayed_as_they_came(grid_only):
    raw = b"\xff\xfe binary"
    ingest_messages([
        {"topic": "iotwatt/meter-1/telemetry", "payload_b64": base64.b64encode(raw).decode(), "received_at": START.isoformat()},
        {"topic": "iotwatt/meter-1/telemetry", "payload": "nul\x00inside", "received_at": START.isoformat()},
    ])
    letters = list(DeadLetter.objects.order_by("pk"))
    assert [base64.b64decode(letter.payload) for letter in letters] == [raw, b"nul\x00inside"]
    assert all(letter.payload_is_base64 for letter in letters)

    outcome = replay_dead_letters(DeadLetter.objects.all())

    assert outcome.failed_again == 2 and DeadLetter.objects.count() == 2
    assert [base64.b64decode(letter.payload) for letter in DeadLetter.objects.order_by("pk")] == [raw, b"nul\x00inside"]


def test_a_dead_letter_of_a_device_nobody_claims_any_more_moves_to_pending(grid_only):
    letter = DeadLetter.objects.create(topic="iotwatt/gone-1/telemetry", payload=counters("gone-1", 1)[0]["payload"],
                                       reason="no single registered device claims this topic", received_at=START)

    outcome = replay_dead_letters(DeadLetter.objects.filter(pk=letter.pk))

    assert outcome.moved_to_pending == 1 and not DeadLetter.objects.exists()
    assert PendingDevice.objects.get().identifier == "gone-1"


# --- payload size limit ------------------------------------------------------------------------

def test_an_oversize_payload_is_a_dead_letter_kept_truncated_and_the_rest_is_stored(settings, grid_only):
    settings.INGEST_MAX_PAYLOAD_BYTES = 1024
    padded = native("meter-1", 1, {"grid": {"energy_kwh": 101}})
    padded["payload"] = padded["payload"][:-1] + ', "pad": "' + "é" * 1000 + '"}'  # 2 bytes a character
    size = len(padded["payload"].encode())
    batch = [native("meter-1", 0, {"grid": {"energy_kwh": 100}}), padded, native("meter-1", 2, {"grid": {"energy_kwh": 102}})]

    result = ingest_messages(batch)

    assert (result.readings, result.dead_letters) == (2, 1)
    letter = DeadLetter.objects.get()
    assert letter.reason == (f"payload of {size} bytes is over the limit of 1024 bytes (INGEST_MAX_PAYLOAD_BYTES); "
                             "only its first 1024 bytes are kept")
    assert letter.payload_truncated and not letter.payload_is_base64
    assert len(letter.payload.encode()) <= 1024 and padded["payload"].startswith(letter.payload)
    # A truncated payload is not the message: replay refuses it and keeps the letter.
    assert replay_dead_letters(DeadLetter.objects.all()).not_replayable == 1 and DeadLetter.objects.count() == 1


def test_a_payload_at_the_limit_is_ingested(settings, grid_only):
    message = native("meter-1", 0, {"grid": {"energy_kwh": 100}})
    settings.INGEST_MAX_PAYLOAD_BYTES = len(message["payload"])

    assert ingest_messages([message]).readings == 1


@pytest.mark.parametrize("value", ["0", "-5", "256KiB"])
def test_a_payload_limit_that_is_not_a_positive_number_stops_the_start(value):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "iotwatt.settings", "INGEST_MAX_PAYLOAD_BYTES": value}
    run = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode != 0 and f"INGEST_MAX_PAYLOAD_BYTES must be a whole number of at least 1, not {value!r}" in run.stderr


# --- the admin pages ---------------------------------------------------------------------------

def test_the_admin_pages_render_for_a_superuser(superuser_client, native_model, grid_only):
    ingest_messages(counters("new-1", 2) + counters("meter-1", 1))
    pending = PendingDevice.objects.get()
    letter = DeadLetter.objects.get()
    for url in [reverse("admin:telemetry_pendingdevice_changelist"), reverse("admin:telemetry_pendingdevice_change", args=[pending.pk]),
                adopt_url(pending), reverse("admin:telemetry_deadletter_changelist"),
                reverse("admin:telemetry_deadletter_change", args=[letter.pk]), reverse("admin:app_list", args=["telemetry"])]:
        response = superuser_client.get(url)
        assert response.status_code == 200, url
    body = superuser_client.get(reverse("admin:telemetry_pendingdevice_changelist")).content.decode()
    assert "new-1" in body and adopt_url(pending) in body and "IotWatt native (pending-native) → new-1" in body


def test_pending_devices_and_dead_letters_are_hidden_from_staff_who_are_not_superusers(client, site, native_model):
    staff = User.objects.create_user("olga", password="pw-olga-123", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["assets", "telemetry"]))
    Membership.objects.create(user=staff, organisation=site.organisation, role=Membership.Role.ADMIN)
    ingest_messages(counters("new-1", 1))
    pending = PendingDevice.objects.get()
    client.force_login(staff)

    for url in [reverse("admin:telemetry_pendingdevice_changelist"), reverse("admin:telemetry_pendingdevice_change", args=[pending.pk]),
                adopt_url(pending), reverse("admin:telemetry_deadletter_changelist")]:
        assert client.get(url).status_code == 403, url
    response = client.post(adopt_url(pending), {"device_model": native_model.pk, "site": site.pk, "create_channels": "on"})
    assert response.status_code == 403
    assert not Device.objects.exists() and pending.messages.count() == 1
    assert "new-1" not in client.get(reverse("admin:index")).content.decode()


# --- adoption while the device keeps publishing -----------------------------------------------

def waiting_on_a_lock(connection) -> bool:
    """Is another session of this test database waiting for a lock (here: the one the adoption holds)?"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot of the activity
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


# serialized_rollback: the standard asset types the migrations made are back for the tests after this one.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_message_that_arrives_during_adoption_is_kept_and_replayed_later(site, native_model, superuser_client):
    """The worker decided "unclaimed" before the adoption committed: it waits on the pending
    device's row lock, then keeps the message under a new pending entry, never loses it."""
    import threading

    from django.db import connection, transaction

    from telemetry.adoption import adopt

    messages = counters("new-1", 3)
    ingest_messages(messages[:2])
    pending = PendingDevice.objects.get()
    outcome = {}

    def late_batch():
        try:
            outcome["result"] = ingest_messages(messages[2:])
        finally:
            connection.close()

    worker = threading.Thread(target=late_batch)
    with transaction.atomic():
        adopt(pending, native_model, site)
        worker.start()
        wait_until(lambda: waiting_on_a_lock(connection), 30, "the worker to wait on the locked pending row")
    worker.join(30)

    assert outcome["result"].pending == 1
    late = PendingDevice.objects.get(identifier="new-1")
    assert late.messages.count() == 1
    assert Reading.objects.count() == 4
    superuser_client.post(reverse("admin:telemetry_pendingdevice_changelist"),
                          {"action": "replay_into_registered", "_selected_action": [late.pk]})
    assert Reading.objects.count() == 6 and not PendingDevice.objects.exists()


# --- the API -----------------------------------------------------------------------------------

def test_a_superuser_lists_and_adopts_pending_devices_over_the_api(site, native_model):
    from rest_framework.test import APIClient

    ingest_messages(counters("new-1", 3))
    pending = PendingDevice.objects.get()
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("root", "root@example.com", "pw-root-123"))

    listed = api.get("/api/pending-devices/").json()["results"]
    assert [(p["identifier"], p["kept_count"]) for p in listed] == [("new-1", 3)]
    refused = api.post(f"/api/pending-devices/{pending.pk}/adopt/", {"device_model": native_model.pk}, format="json")
    assert refused.status_code == 400 and "site" in refused.json()
    adopted = api.post(f"/api/pending-devices/{pending.pk}/adopt/", {"device_model": native_model.pk, "site": site.pk}, format="json")

    assert adopted.status_code == 201, adopted.content
    body = adopted.json()
    assert (body["identifier"], body["messages"], body["readings"]) == ("new-1", 3, 6)
    assert sorted((c["key"], c["metric"]) for c in body["channels_created"]) == [("grid", "energy"), ("pv", "power")]
    assert Reading.objects.count() == 6 and not PendingDevice.objects.exists()


def test_the_pending_device_api_is_closed_to_everyone_but_superusers(site, native_model):
    from rest_framework.test import APIClient

    ingest_messages(counters("new-1", 1))
    pending = PendingDevice.objects.get()
    operator = User.objects.create_user("olga", password="pw-olga-123", is_staff=True)
    Membership.objects.create(user=operator, organisation=site.organisation, role=Membership.Role.ADMIN)
    api = APIClient()
    api.force_authenticate(operator)

    assert api.get("/api/pending-devices/").status_code == 403
    assert api.get(f"/api/pending-devices/{pending.pk}/").status_code == 403
    assert api.post(f"/api/pending-devices/{pending.pk}/adopt/", {"device_model": native_model.pk, "site": site.pk},
                    format="json").status_code == 403
    assert not Device.objects.exists() and pending.messages.count() == 1


def test_adopting_a_pending_device_someone_adopted_meanwhile_says_so_and_changes_nothing(site, native_model):
    from django.core.exceptions import ValidationError

    from telemetry.adoption import adopt

    ingest_messages(counters("late-1", 2))
    stale = PendingDevice.objects.get()  # the second operator's page, loaded before the first adopted
    adopt(PendingDevice.objects.get(pk=stale.pk), native_model, site)

    with pytest.raises(ValidationError, match="adopted or removed meanwhile"):
        adopt(stale, native_model, site)
    assert Device.objects.filter(identifier="late-1").count() == 1


def test_replaying_one_of_two_twin_letters_that_fails_again_keeps_it():
    """Twin letters (one message kept twice) must not let a replay mistake "no new letter" for success."""
    letter = dict(topic="iotwatt/nobody-registered/telemetry", payload="{broken", received_at=START)
    DeadLetter.objects.create(reason="not JSON", **letter)
    DeadLetter.objects.create(reason="not JSON", **letter)
    make_meter = DeviceModel.objects.create(key="twin-native", name="Twin native", parameter_map=IOTWATT_NATIVE)
    site = Site.objects.create(organisation=Organisation.objects.create(slug="twins", name="Twins"), name="S", timezone="UTC")
    Device.objects.create(site=site, device_model=make_meter, identifier="nobody-registered")

    outcome = replay_dead_letters(DeadLetter.objects.filter(pk=DeadLetter.objects.order_by("pk").first().pk))

    assert (outcome.stored, outcome.failed_again) == (0, 1)
    assert DeadLetter.objects.count() == 2


def test_a_replay_into_a_full_pending_store_keeps_the_letter(settings):
    settings.PENDING_MAX_DEVICES = 1
    ingest_messages(counters("first-unknown", 1))  # fills the store
    DeadLetter.objects.create(topic="iotwatt/second-unknown/telemetry", payload=counters("second-unknown", 1)[0]["payload"],
                              reason="was refused", received_at=START)

    outcome = replay_dead_letters(DeadLetter.objects.all())

    assert outcome.moved_to_pending == 0
    assert "pending-device store is full" in DeadLetter.objects.get().reason
