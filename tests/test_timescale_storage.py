"""The TimescaleDB path: readings as a hypertable, on PostgreSQL 17 with TimescaleDB 2.23 compiled to WASM.

No TimescaleDB server can be installed on this machine, so deploy/timescale-test
serves pglite with TimescaleDB on a TCP port (Node; `npm ci` there when its
node_modules are missing). It takes one connection at a time: every step below
(manage.py in its own process, then a psycopg check) closes its connection before
the next starts. Its database lives in memory and is new for this module.
"""

import os
import shutil
import subprocess
import time

import psycopg
import pytest

from .conftest import free_port
from .storage_world import ROOT, SEED_READINGS, SEEDED_READINGS, manage

pytestmark = pytest.mark.timescale

SERVER_DIR = ROOT / "deploy" / "timescale-test"
COMPRESS_AFTER_DAYS = "3"
RETENTION_DAYS = "4000"  # longer than the seeded 2016 readings are old, so none expire here
POLICY_ENV = {"TIMESCALE_COMPRESS_AFTER_DAYS": COMPRESS_AFTER_DAYS, "READINGS_RETENTION_DAYS": RETENTION_DAYS}


def install_server_packages() -> None:
    if (SERVER_DIR / "node_modules" / "@electric-sql" / "pglite-socket").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the TimescaleDB storage test needs Node.js 20 and npm (apt-get install nodejs npm)")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci in {SERVER_DIR} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module")
def timescale_url(tmp_path_factory):
    install_server_packages()
    node = shutil.which("node")
    if node is None:
        pytest.fail("the TimescaleDB storage test needs Node.js 20 (apt-get install nodejs)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("pglite") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [node, "server.mjs", "--port", str(port)], cwd=SERVER_DIR, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while "listening" not in log_path.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the pglite TimescaleDB server did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        # pglite ignores the database name and accepts any password; it speaks no TLS.
        yield f"postgresql://postgres:pglite@127.0.0.1:{port}/iotwatt?sslmode=disable"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def migrated(timescale_url):
    """Migrate, go back to the plain table and fill it, then migrate again: the hypertable receives existing rows."""
    started = time.monotonic()
    manage(timescale_url, "migrate", env=POLICY_ENV)
    first_migrate_s = time.monotonic() - started
    manage(timescale_url, "migrate", "telemetry", "0002", env=POLICY_ENV)
    with psycopg.connect(timescale_url) as db:
        assert not is_hypertable(db), "the way back left a hypertable"
    assert f"seeded {SEEDED_READINGS}" in manage(timescale_url, "shell", "-c", SEED_READINGS)
    manage(timescale_url, "migrate", "telemetry", env=POLICY_ENV)
    print(f"first migrate on pglite: {first_migrate_s:.1f} s")
    return timescale_url


def is_hypertable(db) -> bool:
    return db.execute(
        "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry_reading')"
    ).fetchone()[0]


def policy(db, proc_name: str, setting: str):
    row = db.execute(
        "SELECT config ->> %s FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = 'telemetry_reading'",
        [setting, proc_name],
    ).fetchone()
    return row and row[0]


def test_readings_are_a_hypertable_with_the_same_key_and_every_reading(migrated):
    with psycopg.connect(migrated) as db:
        assert is_hypertable(db)
        dimension = db.execute(
            "SELECT column_name, time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'telemetry_reading'"
        ).fetchall()
        assert [(column, str(interval)) for column, interval in dimension] == [("time", "7 days, 0:00:00")]
        constraints = db.execute(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'telemetry_reading'::regclass ORDER BY contype"
        ).fetchall()
        assert constraints == [
            ("f", "FOREIGN KEY (channel_id) REFERENCES assets_channel(id) DEFERRABLE INITIALLY DEFERRED"),
            ("p", 'PRIMARY KEY (channel_id, "time")'),
        ]
        assert db.execute("SELECT count(*), sum(value) FROM telemetry_reading").fetchone() == (
            SEEDED_READINGS,
            sum(range(SEEDED_READINGS)),
        )
        # A hypertable needs no monthly partitions: none were made.
        assert db.execute("SELECT count(*) FROM pg_class WHERE relname ~ '^telemetry_reading_p\\d{4}_\\d{2}$'").fetchone() == (0,)


def test_compression_and_retention_policies_follow_the_settings(migrated):
    with psycopg.connect(migrated) as db:
        assert policy(db, "policy_compression", "compress_after") == f"{COMPRESS_AFTER_DAYS} days"
        assert policy(db, "policy_retention", "drop_after") == f"{RETENTION_DAYS} days"
        settings = db.execute(
            "SELECT attname, segmentby_column_index, orderby_column_index FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'telemetry_reading' ORDER BY attname"
        ).fetchall()
        assert settings == [("channel_id", 1, None), ("time", None, 1)]


# Compresses every chunk, then stores a repeat of a stored reading (in a compressed chunk), a new
# reading beside it, and the new one again.
# pglite's socket server has no COPY sub-protocol (a COPY FROM STDIN crashes it), so here the staging
# table is filled by INSERT; what is proven on the hypertable is the keyed INSERT ... SELECT from staging.
INSERT_ON_A_HYPERTABLE = """
from datetime import datetime, timezone
from django.db import connection, transaction
from telemetry import storage
from telemetry.models import Reading
from telemetry.partitions import storage_kind

def insert_rows(cursor, table, columns, rows):
    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", rows)

storage.copy_rows = insert_rows
from telemetry.storage import insert_readings

with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM (SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('telemetry_reading') c) s")
    print("compressed chunks", cursor.fetchone()[0])
channel_id = Reading.objects.values_list("channel_id", flat=True).first()
stored = datetime(2016, 3, 1, tzinfo=timezone.utc)  # seeded value: hours since 2016-01-01
new = datetime(2016, 3, 1, 0, 30, tzinfo=timezone.utc)
with transaction.atomic():
    print("first insert", insert_readings([(channel_id, stored, -1.0), (channel_id, new, 0.5)]))
print("second insert", insert_readings([(channel_id, new, -2.0)]))
print("values", Reading.objects.get(channel_id=channel_id, time=stored).value, Reading.objects.get(channel_id=channel_id, time=new).value)
print("storage", storage_kind())
"""


def test_insert_readings_stores_once_on_the_hypertable_even_in_compressed_chunks(migrated):
    output = manage(migrated, "shell", "-c", INSERT_ON_A_HYPERTABLE, env=POLICY_ENV)
    compressed = int(output.split("compressed chunks ")[1].split()[0])
    assert compressed >= 50, output  # a year in chunks of a week
    assert "first insert 1\n" in output, output
    assert "second insert 0\n" in output, output
    hours_to_march = (31 + 29) * 24
    assert f"values {float(hours_to_march)} 0.5\n" in output, output
    assert "storage timescale\n" in output, output


def test_the_upkeep_command_changes_policies_when_the_settings_change(migrated):
    output = manage(migrated, "reading_partitions", env={"TIMESCALE_COMPRESS_AFTER_DAYS": "", "READINGS_RETENTION_DAYS": "5000"})
    assert "readings storage: timescale" in output
    assert "compress_after: off" in output and "drop_after: 5000 days" in output
    with psycopg.connect(migrated) as db:
        assert policy(db, "policy_compression", "compress_after") is None
        assert policy(db, "policy_retention", "drop_after") == "5000 days"


def test_the_way_back_is_a_plain_table_with_every_reading(migrated):
    with psycopg.connect(migrated) as db:
        before = db.execute("SELECT count(*), sum(value) FROM telemetry_reading").fetchone()
    manage(migrated, "migrate", "telemetry", "0002")
    with psycopg.connect(migrated) as db:
        assert not is_hypertable(db)
        assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'telemetry_reading'").fetchone() == ("r",)
        assert db.execute("SELECT count(*), sum(value) FROM telemetry_reading").fetchone() == before
        assert before[0] == SEEDED_READINGS + 1
