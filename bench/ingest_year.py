"""Ingest throughput of the worker's code path alone (decode, insert, roll up), on the Konstanz year.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_bench .venv/bin/python bench/ingest_year.py

Creates the database's tables if needed, clears the demo household's readings,
feeds the 8,784 messages in batches as the bridge would, and prints readings per
second and per-batch latency. No MQTT or Celery: see the pipeline tests for those.
"""

import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from iotwatt.demo.household import create_demo_household  # noqa: E402
from iotwatt.demo.opsd import channel_keys, read_rows, telemetry_messages  # noqa: E402
from telemetry.ingest import ingest_messages  # noqa: E402
from telemetry.models import EnergyBucket, Reading  # noqa: E402

BATCH = int(os.environ.get("INGEST_BATCH_MAX_MESSAGES", "500"))


def main() -> None:
    call_command("migrate", verbosity=0)
    site = create_demo_household(channel_keys())
    Reading.objects.filter(channel__device__site=site).delete()
    EnergyBucket.objects.filter(channel__device__site=site).delete()
    now = datetime.now(timezone.utc).isoformat()
    records = [{"topic": t, "payload": p, "received_at": now} for t, p in telemetry_messages(read_rows())]

    latencies, readings = [], 0
    started = time.perf_counter()
    for i in range(0, len(records), BATCH):
        t0 = time.perf_counter()
        readings += ingest_messages(records[i : i + BATCH]).readings
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    print(f"messages {len(records):,}  readings {readings:,}  batches {len(latencies)} of {BATCH}")
    print(f"elapsed {elapsed:.2f} s  ->  {readings / elapsed:,.0f} readings/s, {len(records) / elapsed:,.0f} messages/s")
    print(f"batch latency  p50 {statistics.median(latencies) * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
