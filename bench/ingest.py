"""End-to-end ingest: simulated devices publish through Mosquitto; readings per second from publish to commit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_bench_ingest .venv/bin/python bench/ingest.py \
        [--devices 400] [--channels 16] [--seconds 30] [--rate 100000] [--workers 1] [--concurrency 2] [--bridges 1]

What runs: a Mosquitto of its own (deploy/mosquitto.conf), the given number of
Celery ingest workers and MQTT bridges as separate processes (as in production),
and publisher processes that play the devices: each device sends one native
IotWatt message per tick with a cumulative energy counter per channel, stamped
with the time it is published. The run prints:

- published and stored readings, and whether the buckets hold the published energy once;
- end-to-end readings per second: stored readings over the time from the first
  publish to the last commit, and the steady rate over the middle of the run;
- latency from a reading's measurement (= publish) time to its commit, p50 and
  p99 (upper bounds of the histogram buckets that hold them), and the batch commit latency;
- CPU seconds per 100,000 readings of the workers, bridges, broker and publishers;
- in the same run, the raw COPY ceiling of the readings table on this machine
  (binary COPY of as many rows into telemetry_reading) and the ratio.
"""

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")  # away from a developer's own queue

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from assets.models import Channel, Device, DeviceModel, Organisation, Site  # noqa: E402
from telemetry import metrics  # noqa: E402
from telemetry.bridge import BrokerAddress, connect, make_client  # noqa: E402
from telemetry.parameter_maps import IOTWATT_NATIVE  # noqa: E402
from telemetry.partitions import ensure_reading_partitions  # noqa: E402
from tests.conftest import Mosquitto  # noqa: E402
from tests.pipeline import ManagedProcess, database_url  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30, help="how long the devices publish")
    parser.add_argument("--rate", type=float, default=100_000, help="offered readings per second, all devices together")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    parser.add_argument("--bridges", type=int, default=1)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version of the bridges")
    parser.add_argument("--in-flight", type=int, default=settings.INGEST_BATCHES_IN_FLIGHT, help="batches in flight per bridge")
    parser.add_argument("--batch", type=int, default=settings.INGEST_BATCH_MAX_MESSAGES, help="messages per batch")
    parser.add_argument("--batch-wait", type=float, default=0.2, help="seconds a bridge waits to fill a batch")
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for the backlog after publishing")
    return parser.parse_args()


def prepare_devices(count: int, channels: int) -> list[str]:
    """Bench devices with `channels` energy channels each, in a database that holds nothing else:
    the readings, buckets and dead letters of earlier runs are emptied at once."""
    others = Device.objects.exclude(device_model__key="bench-native").count()
    if others:
        raise SystemExit(f"the database holds {others} devices besides the bench's: give the bench a database of its own "
                         "(createdb -h 127.0.0.1 -U postgres iotwatt_bench_ingest; DATABASE_URL=.../iotwatt_bench_ingest)")
    organisation, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    site, _ = Site.objects.get_or_create(organisation=organisation, name="Bench site", defaults={"timezone": "Europe/Berlin"})
    model, _ = DeviceModel.objects.get_or_create(
        organisation=organisation, key="bench-native", defaults={"name": "Bench native", "parameter_map": IOTWATT_NATIVE}
    )
    identifiers = [f"bench-{i:05d}" for i in range(count)]
    existing = set(Device.objects.filter(identifier__in=identifiers).values_list("identifier", flat=True))
    Device.objects.bulk_create(
        [Device(site=site, device_model=model, identifier=i, name=i) for i in identifiers if i not in existing]
    )
    devices = Device.objects.filter(identifier__in=identifiers)
    have = set(Channel.objects.filter(device__in=devices).values_list("device_id", "key"))
    Channel.objects.bulk_create(
        [
            Channel(device=device, key=f"c{c:02d}", metric=Channel.Metric.ENERGY, name=f"c{c:02d}")
            for device in devices
            for c in range(channels)
            if (device.id, f"c{c:02d}") not in have
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE telemetry_reading, telemetry_energybucket, telemetry_deadletter")
    return identifiers


def publish(broker_url: str, identifiers: list[str], channels: int, seconds: float, messages_per_s: float, out) -> None:
    """One publisher process: its devices in turn, at the offered rate, QoS 1; reports what it published."""
    broker = BrokerAddress.from_url(broker_url)
    client = make_client(broker, f"bench-pub-{uuid.uuid4().hex[:8]}", "5", persistent=False)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    cpu_started = time.process_time()
    acked = threading.Semaphore(0)
    client.on_publish = lambda *args: acked.release()
    connect(client, broker, "5", persistent=False)
    client.loop_start()
    keys = [f"c{c:02d}" for c in range(channels)]
    counters = {identifier: 0.0 for identifier in identifiers}
    sent = 0
    started = time.monotonic()
    first_publish = datetime.now(timezone.utc)
    while time.monotonic() - started < seconds:
        for identifier in identifiers:
            counters[identifier] += 1.0
            value = counters[identifier]
            payload = json.dumps(
                {"ts": datetime.now(timezone.utc).isoformat(), "channels": {k: {"energy_wh": value + i} for i, k in enumerate(keys)}}
            )
            client.publish(f"iotwatt/{identifier}/telemetry", payload, qos=1)
            sent += 1
            lag = sent / messages_per_s - (time.monotonic() - started)
            if lag > 0:
                time.sleep(lag)
    for _ in range(sent):
        acked.acquire()
    client.disconnect()
    client.loop_stop()
    # Each channel's counter rose by 1 Wh a message: its energy is its device's messages less one.
    out.put({"messages": sent, "readings": sent * channels, "first_publish": first_publish.isoformat(),
             "energy_wh": channels * sum(count - 1 for count in counters.values() if count),
             "cpu_s": time.process_time() - cpu_started})


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_role(processes, broker) -> dict[str, float]:
    """CPU seconds used so far by each part: a managed process with its children (its process group),
    and the broker. PostgreSQL's share is not separated: its server is shared with whatever else runs."""
    groups = {process.process.pid: process.name.split("-")[0] for process in processes if process.process}
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        role = groups.get(int(fields[2]))  # by process group
        if int(entry.name) == broker.process.pid:
            role = "broker"
        if role:
            used[role] = used.get(role, 0.0) + ticks / CLOCK_TICKS
    return used


def copy_ceiling(rows: int, channel_ids: list[int]) -> float:
    """Readings per second that a binary COPY writes into telemetry_reading here, its keys and indexes included."""
    base = datetime(2030, 1, 1, tzinfo=timezone.utc)  # after everything the run stored: no conflicts
    per_channel = rows // len(channel_ids) + 1
    ensure_reading_partitions(base, base + timedelta(seconds=per_channel))
    with connection.cursor() as cursor:
        started = time.perf_counter()
        with cursor.copy("COPY telemetry_reading (channel_id, time, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bigint", "timestamptz", "float8"])
            written = 0
            for step in range(per_channel):
                at = base + timedelta(seconds=step)
                for channel_id in channel_ids:
                    copy.write_row((channel_id, at, float(step)))
                    written += 1
                    if written == rows:
                        break
                if written == rows:
                    break
        elapsed = time.perf_counter() - started
        cursor.execute("DELETE FROM telemetry_reading WHERE time >= %s", [base])
    return rows / elapsed


def main() -> None:
    args = parse_args()
    call_command("migrate", verbosity=0)
    identifiers = prepare_devices(args.devices, args.channels)
    metrics.reset()
    workdir = Path(tempfile.mkdtemp(prefix="iotwatt-bench-"))
    broker = Mosquitto(workdir)
    queue = f"ingest-bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        MQTT_URL=broker.url,
        MQTT_PROTOCOL=args.protocol,
        INGEST_BATCHES_IN_FLIGHT=str(args.in_flight),
        INGEST_QUEUE=queue,
        INGEST_BATCH_MAX_MESSAGES=str(args.batch),
        INGEST_BATCH_MAX_WAIT_S=str(args.batch_wait),
        DATABASE_CONN_MAX_AGE="600",
    )
    processes = []
    try:
        for w in range(args.workers):
            processes.append(
                ManagedProcess(
                    f"worker-{w}",
                    [sys.executable, "-m", "celery", "-A", "iotwatt", "worker", "-Q", queue, "-c", str(args.concurrency),
                     "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "-n", f"bench-{w}@%h"],
                    # At WARNING a worker does not log "ready."; its banner comes first, and batches wait in the queue.
                    env, workdir / f"worker-{w}.log", "[queues]",
                )
            )
        for b in range(args.bridges):
            processes.append(
                ManagedProcess(
                    f"bridge-{b}", [sys.executable, "manage.py", "mqtt_bridge", "--client-id", f"bench-bridge-{b}"],
                    env, workdir / f"bridge-{b}.log", "subscribed to",
                )
            )
        for process in processes:
            process.start()

        print(f"{args.devices} devices x {args.channels} channels, offered {args.rate:,.0f} readings/s for {args.seconds:.0f} s; "
              f"{args.workers} worker(s) x {args.concurrency}, {args.bridges} bridge(s) on MQTT {args.protocol}, "
          f"batches of {args.batch}, {args.in_flight} in flight", flush=True)
        results = multiprocessing.Queue()
        shares = [share for share in (identifiers[p :: args.publishers] for p in range(args.publishers)) if share]
        per_publisher_rate = args.rate / args.channels / len(shares)
        publishers = [
            multiprocessing.Process(target=publish, args=(broker.url, share, args.channels, args.seconds, per_publisher_rate, results))
            for share in shares
        ]
        for publisher in publishers:
            publisher.start()

        cpu_before = cpu_seconds_by_role(processes, broker)
        samples = []  # (monotonic, readings stored), once a second
        started = time.monotonic()
        published = None
        max_queue = 0
        while True:
            snap = metrics.snapshot()
            samples.append((time.monotonic(), snap.counters["readings_stored"]))
            max_queue = max(max_queue, snap.queue_depth or 0)
            if published is None and all(not p.is_alive() for p in publishers):
                reports = [results.get() for _ in publishers]
                published = sum(r["readings"] for r in reports)
                published_messages = sum(r["messages"] for r in reports)
                publisher_cpu_s = sum(r["cpu_s"] for r in reports)
                expected_energy_wh = sum(r["energy_wh"] for r in reports)
                publish_seconds = time.monotonic() - started
                print(f"published {published_messages:,} messages, {published:,} readings in {publish_seconds:.1f} s "
                      f"({published / publish_seconds:,.0f} readings/s offered and taken by the broker)", flush=True)
            if published is not None and snap.counters["readings_stored"] >= published:
                break
            if published is not None and time.monotonic() - started > args.seconds + args.drain_timeout:
                print("gave up waiting for the backlog", flush=True)
                break
            print(f"  t={time.monotonic() - started:5.1f} s  stored {snap.counters['readings_stored']:>10,}  "
                  f"queue {snap.queue_depth}", flush=True)
            time.sleep(1.0)
        finished = time.monotonic()
        cpu_after = cpu_seconds_by_role(processes, broker)
    finally:
        for process in reversed(processes):
            process.stop()
        broker.stop()

    snap = metrics.snapshot()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM telemetry_reading")
        stored_rows = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(sum(energy_wh), 0) FROM telemetry_energybucket")
        bucket_energy_wh = cursor.fetchone()[0]
    elapsed = finished - started
    end_to_end = stored_rows / elapsed
    # Steady rate: the middle of the publishing period, where neither start-up nor the drain counts.
    window = [(t, n) for t, n in samples if started + args.seconds * 0.2 <= t <= started + args.seconds * 0.9]
    steady = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) >= 2 else float("nan")
    age = snap.histograms["reading_age_seconds"]
    batch = snap.histograms["batch_commit_seconds"]
    energy_right = abs(bucket_energy_wh - expected_energy_wh) <= 1e-6 * max(expected_energy_wh, 1)
    print(f"stored {stored_rows:,} readings of {published:,} published ({'all' if stored_rows == published else 'MISMATCH'}); "
          f"energy in the buckets {bucket_energy_wh:,.1f} Wh of {expected_energy_wh:,.1f} Wh published "
          f"({'counted once' if energy_right else 'MISMATCH'})")
    print(f"end to end: {end_to_end:,.0f} readings/s (first publish to last commit, {elapsed:.1f} s); steady {steady:,.0f} readings/s")
    print(f"latency publish -> commit: p50 <= {age.quantile(0.5)} s, p99 <= {age.quantile(0.99)} s "
          f"(mean {age.sum / max(age.count, 1):.3f} s over {age.count:,} messages)")
    print(f"batch commit (first arrival at a bridge -> commit): p50 <= {batch.quantile(0.5)} s, p99 <= {batch.quantile(0.99)} s; "
          f"batches resent {snap.counters['batches_resent']}; queue depth max {max_queue}")
    cpu = {role: cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0) for role in cpu_after}
    cpu["publishers"] = publisher_cpu_s
    total_cpu = sum(cpu.values())
    print(f"CPU seconds per 100,000 readings, PostgreSQL apart ({total_cpu:.0f} s of CPU in {elapsed:.0f} s on {os.cpu_count()} cores): "
          + ", ".join(f"{role} {seconds * 100_000 / max(stored_rows, 1):.2f}" for role, seconds in sorted(cpu.items(), key=lambda x: -x[1])))
    channel_ids = list(Channel.objects.filter(device__identifier__in=identifiers).values_list("id", flat=True))
    ceiling = copy_ceiling(stored_rows, channel_ids)
    print(f"COPY ceiling of telemetry_reading: {ceiling:,.0f} readings/s; end to end / ceiling = {end_to_end / ceiling:.2f} "
          f"(steady {steady / ceiling:.2f})")
    print(f"logs in {workdir}")


if __name__ == "__main__":
    main()
