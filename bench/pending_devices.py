"""What unknown devices cost ingest, and how long adopting one takes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_pending_bench .venv/bin/python bench/pending_devices.py

In batches of 500 native messages with 16 channels each, through ingest_messages (the
worker's code): a registered device's batches (the baseline), one unknown device's
10,000 messages (kept for adoption), a flood of 10,000 random unknown topics (1,000 kept
as pending devices, the rest counted in the overflow entry), then the adoption of the
unknown device (its device, 24 channels, 240,000 readings). Prints seconds and messages/s.
It empties the database's pending devices and dead letters first: give it a database of its own.
"""

import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from assets.models import Channel, Device, DeviceModel, Organisation, Site  # noqa: E402
from telemetry.adoption import adopt  # noqa: E402
from telemetry.ingest import ingest_messages  # noqa: E402
from telemetry.models import DeadLetter, PendingDevice  # noqa: E402
from telemetry.parameter_maps import IOTWATT_NATIVE  # noqa: E402

BATCH = 500
CHANNELS = [f"ct{i}" for i in range(16)]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def messages(identifier: str, count: int, topic_of=None) -> list[dict]:
    rows = []
    for i in range(count):
        ts = START + timedelta(seconds=10 * i)
        payload = {"ts": ts.isoformat(), "channels": {key: {"energy_wh": 1000 + i, "power_w": 50.0} for key in CHANNELS[:8]}
                   | {key: {"power_w": 10.0 + i % 7} for key in CHANNELS[8:]}}
        rows.append({"topic": topic_of(i) if topic_of else f"iotwatt/{identifier}/telemetry", "payload": json.dumps(payload),
                     "received_at": (ts + timedelta(seconds=1)).isoformat()})
    return rows


def timed(label: str, batches: list[list[dict]]) -> None:
    began = time.perf_counter()
    for batch in batches:
        ingest_messages(batch)
    elapsed = time.perf_counter() - began
    count = sum(len(b) for b in batches)
    print(f"{label:<48} {count:>6} messages {elapsed:7.2f} s {count / elapsed:8.0f} messages/s")


def in_batches(rows: list[dict]) -> list[list[dict]]:
    return [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]


def main() -> None:
    call_command("migrate", verbosity=0)
    run = uuid.uuid4().hex[:8]
    PendingDevice.objects.all().delete()
    DeadLetter.objects.all().delete()
    organisation = Organisation.objects.create(name=f"Bench {run}", slug=f"bench-{run}")
    site = Site.objects.create(organisation=organisation, name="Bench", timezone="Europe/Berlin")
    model = DeviceModel.objects.create(key=f"native-{run}", name="Native", organisation=organisation, parameter_map=IOTWATT_NATIVE)
    known = Device.objects.create(site=site, device_model=model, identifier=f"known-{run}")
    for key in CHANNELS:
        Channel.objects.create(device=known, key=key, metric="power")
        if key in CHANNELS[:8]:
            Channel.objects.create(device=known, key=key, metric="energy")

    timed("registered device (baseline)", in_batches(messages(known.identifier, 10_000)))
    unknown = f"unknown-{run}"
    timed("one unknown device, kept for adoption", in_batches(messages(unknown, 10_000)))
    timed("10,000 random unknown topics (flood)",
          in_batches(messages("x", 10_000, topic_of=lambda i: f"iotwatt/flood-{run}-{i}/telemetry")))
    overflow = PendingDevice.objects.get(key=PendingDevice.OVERFLOW_KEY)
    print(f"pending devices {PendingDevice.objects.count()}, overflow entry counted {overflow.message_count} (kept 0)")

    pending = PendingDevice.objects.get(identifier=unknown)
    began = time.perf_counter()
    adoption = adopt(pending, model, site)
    elapsed = time.perf_counter() - began
    print(f"adoption: {len(adoption.channels_created)} channels, {adoption.replay.messages} messages, "
          f"{adoption.replay.readings} readings in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
