"""Faults while a fleet streams over 100,000 readings: every reading is stored exactly once afterwards.

One stream, four faults in turn, each while messages are still being published:
kill -9 of the bridge, kill -9 of the Celery worker, a restart of Mosquitto, a restart
of PostgreSQL. All services are real: Mosquitto and PostgreSQL are this test's own (it
restarts them; the machine's PostgreSQL serves other test runs), Redis is the machine's.
Redis is not restarted: the bridge waits on batch results kept there and exits without it.

The figures (readings, time, what each fault cost) are printed; run with -s to see them.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg
import pytest
from django.conf import settings

from assets.models import Channel, Device
from telemetry.models import DeadLetter, EnergyBucket, Reading

from .conftest import Mosquitto
from .dedicated_postgres import DedicatedPostgres
from .fleet import ENERGY_KEYS, INTERVAL, READINGS_PER_MESSAGE, Fleet
from .paced_publisher import PacedPublisher
from .pipeline import ROOT, Pipeline, wait_until

pytestmark = pytest.mark.pipeline

# 16 meters x 400 messages x 16 channels = 102,400 readings in 6,400 messages. Few meters with many
# messages each keep a batch's channels (each locked and rolled up per batch) few on this small machine.
FLEET = Fleet("faultmeter", devices=16, messages_per_device=400)
# 3,200 readings/s: about what the pipeline ingests on this shared 2-core machine, so the stream
# lasts through all four faults and the test stays near a minute and a half.
MESSAGES_PER_SECOND = 200
# Each fault fires when this share of the messages is published; the gate lets the publisher
# run a little further, so every fault meets messages in flight, not an idle stream.
FAULT_AT = {"bridge kill -9": 0.15, "worker kill -9": 0.35, "broker restart": 0.5, "postgres restart": 0.8}
GATE_AHEAD = 0.08
# The broker restarts while it holds messages queued for the bridge beyond the bridge's receive
# window (twice its batch size, 1,000 messages by default): those exist nowhere but in the broker,
# so only its persistence can keep them. The bridge is paused (SIGSTOP) while they pile up.
QUEUED_FOR_THE_BRIDGE = 2 * settings.INGEST_BATCH_MAX_MESSAGES + 500


class StoredReadings:
    """What the test's own PostgreSQL holds, read with a fresh connection each time (it may be restarting)."""

    def __init__(self, url: str):
        self.url = url

    def _query(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=3) as connection:
            return connection.execute(sql, params).fetchall()

    def count(self) -> int | None:
        """None while the server is away."""
        try:
            return self._query(f"SELECT count(*) FROM {Reading._meta.db_table}")[0][0]
        except psycopg.OperationalError:
            return None

    def any_at_or_after(self, time) -> bool:
        try:
            return bool(self._query(f"SELECT EXISTS (SELECT 1 FROM {Reading._meta.db_table} WHERE time >= %s)", [time])[0][0])
        except psycopg.OperationalError:
            return False

    def latest(self):
        return self._query(f"SELECT max(time) FROM {Reading._meta.db_table}")[0][0]

    def all(self) -> list[tuple]:
        return self._query(
            f"""
            SELECT d.identifier, c.key, r.time, r.value
            FROM {Reading._meta.db_table} r
            JOIN {Channel._meta.db_table} c ON c.id = r.channel_id
            JOIN {Device._meta.db_table} d ON d.id = c.device_id
            """
        )

    def dead_letters(self) -> int:
        return self._query(f"SELECT count(*) FROM {DeadLetter._meta.db_table}")[0][0]

    def energy_per_counter(self) -> dict[tuple[str, str], float]:
        rows = self._query(
            f"""
            SELECT d.identifier, c.key, sum(b.energy_wh)
            FROM {EnergyBucket._meta.db_table} b
            JOIN {Channel._meta.db_table} c ON c.id = b.channel_id
            JOIN {Device._meta.db_table} d ON d.id = c.device_id
            GROUP BY d.identifier, c.key
            """
        )
        return {(identifier, key): total for identifier, key, total in rows}


@dataclass
class FaultRecord:
    name: str
    published: int  # messages handed to the publisher's client when the fault fired
    stored: int  # readings committed then
    outage_s: float  # from the fault until the process or server was back (for the broker, with the backlog built first)
    resumed_s: float  # from the fault until a reading published after it was committed


def test_every_reading_is_stored_exactly_once_through_process_kills_and_broker_and_postgres_restarts(redis_url, tmp_path):
    messages = FLEET.messages()
    expected = FLEET.expected_readings()
    assert len(expected) == FLEET.readings >= 100_000

    broker = Mosquitto(tmp_path)
    postgres = DedicatedPostgres()
    pipeline = publisher = None
    faults: list[FaultRecord] = []
    try:
        setup_started = time.monotonic()
        postgres.start()
        postgres.manage("migrate", "--noinput")
        register_fleet_in(postgres)
        store = StoredReadings(postgres.url)
        pipeline = Pipeline(
            tmp_path, broker.url, redis_url, client_id="iotwatt-faults-bridge", database=postgres.url
        ).start()
        setup_s = time.monotonic() - setup_started

        def kill_and_restart(process):
            process.kill()
            process.start()

        def restart_broker_holding_a_backlog():
            pipeline.bridge.pause()
            queued_from = publisher.published
            publisher.allow(queued_from + QUEUED_FOR_THE_BRIDGE + int(len(messages) * GATE_AHEAD))
            wait_until(lambda: publisher.published >= queued_from + QUEUED_FOR_THE_BRIDGE, 120, "messages queued for the paused bridge")
            broker.restart()
            pipeline.bridge.resume()

        inject = {
            "bridge kill -9": lambda: kill_and_restart(pipeline.bridge),
            "worker kill -9": lambda: kill_and_restart(pipeline.worker),
            "broker restart": restart_broker_holding_a_backlog,
            "postgres restart": postgres.restart,
        }
        stream_started = time.monotonic()
        publisher = PacedPublisher(broker.url, messages, "faults-fleet-publisher", MESSAGES_PER_SECOND).start()
        publisher.allow(int(len(messages) * FAULT_AT["bridge kill -9"]))
        # The first fault meets a pipeline already committing, not one still warming up.
        wait_until(lambda: (store.count() or 0) > 0, 120, "the first readings to be committed")
        for name, share in FAULT_AT.items():
            fire_at = int(len(messages) * share)
            publisher.allow(fire_at + int(len(messages) * GATE_AHEAD))
            wait_until(lambda: publisher.published >= fire_at, 120, f"{fire_at} messages published before the {name}")
            published, stored = publisher.published, store.count()
            # A message published from now on has a later time than every one published so far (round-robin by minute).
            first_after = FLEET.time((published - 1) // FLEET.devices + 1)
            fired = time.monotonic()
            inject[name]()
            outage_s = time.monotonic() - fired
            wait_until(
                lambda: store.any_at_or_after(first_after), 180,
                lambda: f"a reading stamped {first_after} or later, published after the {name} "
                f"(publisher at {publisher.published}, acknowledged {publisher.acknowledged}; stored {store.count()}, latest {store.latest()})",
                poll_s=0.1,
            )
            faults.append(FaultRecord(name, published, stored, outage_s, time.monotonic() - fired))

        publisher.allow(len(messages))
        publisher.wait_until_acknowledged(180)
        published_s = time.monotonic() - stream_started
        wait_for_every_reading(store, len(expected))
        stream_s = time.monotonic() - stream_started
        stored = store.all()
        energy = store.energy_per_counter()
        dead_letters = store.dead_letters()
    finally:
        if publisher:
            publisher.stop()
        if pipeline:
            pipeline.stop()
        broker.stop()
        postgres.stop()

    print_figures(faults, setup_s, published_s, stream_s, publisher, len(expected))
    # Each fault met a stream in flight: messages published, their readings not yet all committed.
    assert [f.name for f in faults] == list(FAULT_AT)
    assert all(0 < f.stored < f.published * READINGS_PER_MESSAGE for f in faults), faults
    # The broker restart cut the publisher off; what it published meanwhile, paho sent on reconnection.
    assert publisher.disconnects == 1 and publisher.connects == 2
    assert publisher.published_while_disconnected > 0
    # Exactly once: the same readings, each once, with the values sent.
    assert len(stored) == len(expected)
    assert {(identifier, key, at, value) for identifier, key, at, value in stored} == expected
    assert dead_letters == 0  # a failed or repeated batch never turned a valid message into a dead letter
    # Redelivered and re-sent batches counted no energy twice: each counter's buckets add up
    # to its last value minus its first (values in the fleet grow (c+1)*7 Wh a minute).
    span_minutes = (FLEET.messages_per_device - 1) * INTERVAL.total_seconds() / 60
    for identifier in FLEET.identifiers:
        for c, key in enumerate(ENERGY_KEYS):
            assert energy[(identifier, key)] == pytest.approx(span_minutes * (c + 1) * 7), (identifier, key)


def wait_for_every_reading(store: StoredReadings, expected: int, idle_s: float = 60) -> None:
    """Until all are stored; fails once nothing more arrives for idle_s (longer than any retry of the bridge)."""
    last, changed = store.count(), time.monotonic()
    while last != expected:
        if time.monotonic() - changed > idle_s:
            raise AssertionError(f"{expected - (last or 0)} of {expected} readings missing; nothing more stored for {idle_s:.0f} s")
        time.sleep(0.5)
        count = store.count()
        if count != last:
            last, changed = count, time.monotonic()


def register_fleet_in(postgres: DedicatedPostgres) -> None:
    env = dict(os.environ, DATABASE_URL=postgres.url, DJANGO_SETTINGS_MODULE="iotwatt.settings")
    subprocess.run(
        [sys.executable, "-m", "tests.fleet", json.dumps(FLEET.identifiers), "Fault test site"], cwd=ROOT, env=env, check=True, timeout=120
    )


def print_figures(faults, setup_s, published_s, stream_s, publisher, readings) -> None:
    print(f"\nfault test: {readings:,} readings in {FLEET.devices * FLEET.messages_per_device:,} messages "
          f"({FLEET.devices} meters x {READINGS_PER_MESSAGE} channels), published at {MESSAGES_PER_SECOND} messages/s")
    print(f"  setup (PostgreSQL, migrate, fleet, worker, bridge): {setup_s:.1f} s")
    print(f"  publishing until every PUBACK: {published_s:.1f} s; until every reading committed: {stream_s:.1f} s "
          f"({readings / stream_s:,.0f} readings/s overall, faults included)")
    print(f"  publisher: {publisher.disconnects} disconnect(s) with {publisher.unacknowledged_at_disconnect} messages awaiting "
          f"their PUBACK; {publisher.published_while_disconnected} published while disconnected, sent on reconnection")
    for f in faults:
        print(f"  {f.name:17s} at {f.published:5d} messages published, {f.stored} readings stored: "
              f"back in {f.outage_s:5.1f} s, a reading published after it committed {f.resumed_s:5.1f} s after the fault")
    print(f"  (the broker's figures include pausing the bridge until {QUEUED_FOR_THE_BRIDGE:,} more messages were queued for it)")
