"""Helpers of the readings storage tests: a channel to store readings for, databases of their own, manage.py runs."""

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from assets.models import Channel, Device, DeviceModel, Organisation, Site
from telemetry.parameter_maps import IOTWATT_NATIVE

# For `manage.py shell -c`: a channel and a year of hourly readings 0, 1, 2, ... written straight to the table.
SEED_READINGS = """
from django.db import connection
from tests.storage_world import make_channel
channel = make_channel()
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO telemetry_reading (channel_id, time, value) SELECT %s, t, row_number() OVER (ORDER BY t) - 1"
        " FROM generate_series('2016-01-01 00:00+00'::timestamptz, '2016-12-30 23:00+00', '1 hour') t",
        [channel.id],
    )
    print("seeded", cursor.rowcount)
"""
SEEDED_READINGS = 365 * 24

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"


def make_channel(device: str = "storage-meter") -> Channel:
    """An energy channel of a native IotWatt meter in a UTC site (readings need a channel to belong to)."""
    organisation, _ = Organisation.objects.get_or_create(slug="storage", defaults={"name": "Storage"})
    site = Site.objects.create(organisation=organisation, name=f"Site of {device}", timezone="UTC")
    model, _ = DeviceModel.objects.get_or_create(
        key="iotwatt-native", defaults={"name": "IotWatt native", "parameter_map": IOTWATT_NATIVE}
    )
    device_row = Device.objects.create(site=site, device_model=model, identifier=device)
    return Channel.objects.create(device=device_row, key="main", metric=Channel.Metric.ENERGY)


def database_url(settings_dict: dict, name: str) -> str:
    user = settings_dict["USER"] or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    return f"postgresql://{user}{password}@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/{name}"


@contextmanager
def scratch_database(settings_dict: dict, suffix: str):
    """A new empty database beside the test database (named after it, so parallel runs do not meet); dropped after."""
    name = f"{settings_dict['NAME']}_{suffix}"
    admin_url = database_url(settings_dict, "postgres")
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(statement)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(settings_dict, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(statement)


def manage(database: str, *args: str, env: dict | None = None, timeout_s: float = 300) -> str:
    """Run manage.py against `database` in a process of its own; its output, or a failure that shows it."""
    environment = {**os.environ, "DATABASE_URL": database, "DATABASE_CONN_MAX_AGE": "0", **(env or {})}
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout_s
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr
