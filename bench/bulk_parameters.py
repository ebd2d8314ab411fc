"""One parameter change to many simulated devices, end to end through Mosquitto.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_bench_params .venv/bin/python bench/bulk_parameters.py \
        [--devices 500] [--concurrency 2]

What runs: a Mosquitto of its own (deploy/mosquitto.conf), a Celery worker on a control queue of
its own and the configuration agent as separate processes (as in production), and the devices as
simulated native IotWatt meters (control/simulator) in this process, one MQTT connection each.
A bulk change of `reporting_interval_s` by tag goes through the product's own path (control/bulk.py:
the change sets are made by a Celery task, published by the worker, answered by the devices, the
answers applied by the agent). The run prints how long it took until every device had answered,
the spread of the per-device time from request to answer, and how many MQTT messages went each way.
It deletes and recreates the devices tagged `bulk-bench` in its database: give it one of its own.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")  # away from a developer's own queue

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from assets.models import Device, DeviceModel, Organisation, Site  # noqa: E402
from control import bulk  # noqa: E402
from control.models import BulkChange, ChangeSet, DeviceConfiguration  # noqa: E402
from control.simulator.device import SimulatedDevice  # noqa: E402
from control.simulator.fleet import Fleet  # noqa: E402
from control.simulator.profiles import load_profile  # noqa: E402
from telemetry.parameter_maps import IOTWATT_NATIVE  # noqa: E402
from tests.conftest import Mosquitto  # noqa: E402
from tests.pipeline import ManagedProcess, database_url  # noqa: E402

TAG = "bulk-bench"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes of the control worker")
    parser.add_argument("--value", type=int, default=None, help="the new reporting_interval_s (default: one the devices do not have)")
    parser.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args()


def prepare_devices(count: int) -> tuple[Organisation, list[str]]:
    organisation, _ = Organisation.objects.get_or_create(slug="bulk-bench", defaults={"name": "Bulk bench"})
    site, _ = Site.objects.get_or_create(organisation=organisation, name="Bulk bench site", defaults={"timezone": "Europe/Berlin"})
    model, _ = DeviceModel.objects.update_or_create(
        organisation=organisation, key="bench-native", defaults={"name": "Bench native meter", "parameter_map": IOTWATT_NATIVE}
    )
    Device.objects.filter(tags__contains=[TAG]).delete()
    identifiers = [f"bench-{index:04d}" for index in range(1, count + 1)]
    Device.objects.bulk_create(Device(site=site, device_model=model, identifier=i, tags=[TAG]) for i in identifiers)
    return organisation, identifiers


def main() -> None:
    args = parse_args()
    call_command("migrate", verbosity=0)
    organisation, identifiers = prepare_devices(args.devices)
    workdir = Path(tempfile.mkdtemp(prefix="iotwatt-bulk-bench-"))
    broker = Mosquitto(workdir)
    queue = f"control-bench-{uuid.uuid4().hex[:8]}"
    settings.CONTROL_QUEUE = queue  # the bulk task this process queues goes to the bench's worker
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.CELERY_BROKER_URL, MQTT_URL=broker.url,
               MQTT_PROTOCOL="5", CONTROL_QUEUE=queue, DATABASE_CONN_MAX_AGE="600")
    processes = [
        ManagedProcess("worker", [sys.executable, "-m", "celery", "-A", "iotwatt", "worker", "-Q", queue, "-c", str(args.concurrency),
                                  "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "-n", f"{queue}@%h"],
                       env, workdir / "worker.log", "[queues]"),
        ManagedProcess("agent", [sys.executable, "manage.py", "config_agent", "--client-id", f"agent-{queue}"],
                       env, workdir / "agent.log", "subscribed to"),
    ]
    profile = load_profile("iotwatt-meter")
    devices = [SimulatedDevice(identifier, profile) for identifier in identifiers]
    fleet = Fleet(broker.url, devices, mqtt_protocol="5", telemetry=False)
    try:
        for process in processes:
            process.start()
        started = time.monotonic()
        fleet.start()
        if not fleet.wait_online(120):
            sys.exit(f"only {fleet.online_count()} of {len(devices)} simulated devices connected")
        print(f"{len(devices)} simulated devices connected in {time.monotonic() - started:.1f} s; logs in {workdir}", flush=True)
        # Each device announces itself (status, configuration report) on connecting; the change is measured
        # once the agent has taken those in, as for devices that have been connected a while.
        bench_devices = Device.objects.filter(tags__contains=[TAG])
        while (bench_devices.filter(online=True).count() < len(devices)
               or DeviceConfiguration.objects.filter(device__in=bench_devices, reported_at__isnull=False).count() < len(devices)):
            if time.monotonic() - started > args.timeout:
                sys.exit("the agent did not take in the devices' statuses and reports in time")
            time.sleep(0.2)
        print(f"  the agent had every status and configuration report after {time.monotonic() - started:.1f} s", flush=True)
        before = fleet.counters().as_dict()
        value = args.value or (45 if devices[0].parameters.get("reporting_interval_s") != 45 else 46)

        started = time.monotonic()
        with transaction.atomic():
            chosen = bulk.select_devices(Device.objects.all(), tag=TAG)
            change = bulk.start(organisation, chosen, {"reporting_interval_s": value}, {"tag": TAG})
        last_line = 0.0
        while True:
            change.refresh_from_db()
            progress = bulk.progress(change)
            if time.monotonic() - last_line >= 1.0 or change.state == BulkChange.State.DONE:
                print(f"  {time.monotonic() - started:6.1f} s  prepared {progress['prepared']:>4}/{progress['devices']}  "
                      f"answered {progress['answered']:>4}  {progress['percent_done']:5.1f}% done  by state {progress['by_state']}", flush=True)
                last_line = time.monotonic()
            if change.state == BulkChange.State.DONE:
                break
            if time.monotonic() - started > args.timeout:
                sys.exit(f"not done after {args.timeout:.0f} s")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        after = fleet.counters().as_dict()
        sets = list(ChangeSet.objects.filter(bulk_change=change))
        latencies = sorted((cs.answered_at - cs.created_at).total_seconds() for cs in sets if cs.answered_at)
        applied_on_devices = sum(1 for device in devices if device.parameters.get("reporting_interval_s") == value)
        server_messages = sum(cs.messages_sent for cs in sets)
        device_messages = {key: after[key] - before.get(key, 0) for key in after}
        print()
        print(f"bulk change of reporting_interval_s = {value} to {len(devices)} devices: done in {elapsed:.2f} s")
        print(f"  change sets: {len(sets)}, by state {progress['by_state']}; skipped {progress['skipped']}")
        print(f"  devices holding the new value (simulator's own memory): {applied_on_devices}")
        if latencies:
            print(f"  request to answer per device: p50 {statistics.median(latencies):.2f} s, "
                  f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s, max {latencies[-1]:.2f} s")
        print(f"  MQTT messages: {server_messages} change sets published by the worker (QoS 1); "
              f"devices during the change: {device_messages}")
        print(f"  total to and from devices: {server_messages + device_messages.get('published', 0)}")
    finally:
        fleet.stop()
        for process in processes:
            process.stop()
        broker.stop()


if __name__ == "__main__":
    main()
