"""Readings partitioned by time: a TimescaleDB hypertable when the database offers it, else monthly partitions.

Written by hand rather than with django-timescaledb, whose migrate runs CREATE
EXTENSION unconditionally and fails on a PostgreSQL without TimescaleDB. The
columns, the (channel_id, time) primary key and the foreign key to the channel
stay as they were, and the model stays managed: Django sees the same table.

The single-column index on channel_id that Django made for the foreign key is
not kept: the primary key (channel_id, time) starts with channel_id and answers
the same lookups, and every index costs on each of the many readings written.

READINGS_STORAGE ("auto", "timescale", "native") decides; "auto" takes TimescaleDB
when `pg_available_extensions` lists it. Existing rows are kept on both paths
and on the way back.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations

from telemetry import partitions

TABLE = partitions.READING_TABLE
# TimescaleDB's own default; a week of a large fleet's readings per chunk stays small enough to keep in memory.
CHUNK_INTERVAL = "7 days"


def _constraint(cursor, table: str, kind: str) -> tuple[str, str] | None:
    """(name, definition) of the table's primary key ("p") or foreign key ("f")."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = %s",
        [table, kind],
    )
    return cursor.fetchone()


def _drop_channel_only_index(cursor) -> None:
    cursor.execute(
        """
        SELECT index_class.relname
        FROM pg_index x
        JOIN pg_class index_class ON index_class.oid = x.indexrelid
        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = to_regclass(%s) AND x.indnatts = 1 AND NOT x.indisunique AND a.attname = 'channel_id'
        """,
        [TABLE],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'DROP INDEX "{name}"')


def _use_timescale(cursor) -> bool:
    cursor.execute("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb')")
    available = cursor.fetchone()[0]
    if settings.READINGS_STORAGE == "timescale" and not available:
        raise ImproperlyConfigured(
            "READINGS_STORAGE=timescale, but this PostgreSQL does not offer the timescaledb extension "
            "(pg_available_extensions); install it, or set READINGS_STORAGE=native"
        )
    return available and settings.READINGS_STORAGE != "native"


def to_hypertable(cursor) -> None:
    try:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except Exception as exc:
        # Typically: installed but not in shared_preload_libraries.
        raise ImproperlyConfigured(
            f"the timescaledb extension is available but could not be created ({exc}); fix the server "
            "(shared_preload_libraries = 'timescaledb'), or set READINGS_STORAGE=native for native partitions"
        ) from exc
    _drop_channel_only_index(cursor)
    # The primary key (channel_id, time) serves every query by channel and time: no extra time index.
    cursor.execute(
        "SELECT create_hypertable(%s, 'time', chunk_time_interval => %s::interval,"
        " migrate_data => true, create_default_indexes => false)",
        [TABLE, CHUNK_INTERVAL],
    )


def to_monthly_partitions(cursor) -> None:
    old = f"{TABLE}_unpartitioned"
    pk_name, _ = _constraint(cursor, TABLE, "p")
    fk = _constraint(cursor, TABLE, "f")
    cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{old}"')
    # Index names are unique per schema: free the primary key's name for the new table.
    cursor.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{pk_name}" TO "{old}_pkey"')
    cursor.execute(
        f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS, CONSTRAINT "{pk_name}" PRIMARY KEY (channel_id, time))'
        " PARTITION BY RANGE (time)"
    )
    cursor.execute(f"SELECT DISTINCT date_trunc('month', time, 'UTC') FROM \"{old}\"")
    partitions.create_month_partitions(cursor, [row[0] for row in cursor.fetchall()])
    cursor.execute(f'INSERT INTO "{TABLE}" (channel_id, time, value) SELECT channel_id, time, value FROM "{old}"')
    # Added after the copy: one check of all rows instead of one per row.
    if fk:
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{fk[0]}" {fk[1]}')
    cursor.execute(f'DROP TABLE "{old}"')


def forwards(apps, schema_editor):
    partitions.forget_cached_state()
    with schema_editor.connection.cursor() as cursor:
        if _use_timescale(cursor):
            to_hypertable(cursor)
        else:
            to_monthly_partitions(cursor)
    partitions.forget_cached_state()


def backwards(apps, schema_editor):
    """Back to the plain table exactly as Django creates it, with every reading copied over."""
    partitions.forget_cached_state()
    converted = f"{TABLE}_converted"
    with schema_editor.connection.cursor() as cursor:
        pk_name, _ = _constraint(cursor, TABLE, "p")
        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{converted}"')
        cursor.execute(f'ALTER TABLE "{converted}" RENAME CONSTRAINT "{pk_name}" TO "{converted}_pkey"')
        # Django's own CREATE TABLE; its foreign key and channel index follow at the end of the migration.
        schema_editor.create_model(apps.get_model("telemetry", "Reading"))
        cursor.execute(f'INSERT INTO "{TABLE}" (channel_id, time, value) SELECT channel_id, time, value FROM "{converted}"')
        # Takes the monthly partitions, or the hypertable's chunks, with it.
        cursor.execute(f'DROP TABLE "{converted}"')
    partitions.forget_cached_state()


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0002_dead_letter_topic_any_length"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
