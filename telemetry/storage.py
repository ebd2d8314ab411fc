"""Bulk reads and writes of readings and buckets, one statement each whatever the batch size.

The ORM's bulk_create builds a model instance per row, which cost more than the
database work itself; `unnest` of arrays sends a batch as one statement.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection


def _copy_into_staging(cursor, table: str, columns: dict[str, str], rows) -> None:
    """Binary COPY of `rows` into a session-local staging table, made on first use and emptied at commit."""
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({', '.join(f'{n} {t}' for n, t in columns.items())}) ON COMMIT DELETE ROWS"
    )
    # Emptied now too, not only at commit: a batch stored message by message uses it again in one transaction.
    cursor.execute(f"TRUNCATE {table}")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(columns.values()))
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True)
class NewReadings:
    """What an insert added to one channel: readings already stored are not counted."""

    first: datetime
    last: datetime
    count: int


def insert_readings(rows: list[tuple[int, datetime, float]]) -> dict[int, NewReadings]:
    """Insert (channel_id, time, value) rows; a (channel, time) already stored keeps its value.

    COPY is the fastest way in, and only an INSERT can skip the rows stored
    before: the rows are copied into staging, then moved by one INSERT keyed by
    (channel, time). Returns, per channel that got new rows, their range.
    """
    if not rows:
        return {}
    with connection.cursor() as cursor:
        _copy_into_staging(cursor, "reading_staging", {"channel_id": "int8", "time": "timestamptz", "value": "float8"}, rows)
        cursor.execute(
            """
            WITH inserted AS (
                INSERT INTO telemetry_reading (channel_id, time, value)
                SELECT channel_id, time, value FROM reading_staging
                ON CONFLICT (channel_id, time) DO NOTHING
                RETURNING channel_id, time
            )
            SELECT channel_id, min(time), max(time), count(*) FROM inserted GROUP BY channel_id
            """
        )
        return {channel_id: NewReadings(first, last, count) for channel_id, first, last, count in cursor.fetchall()}


def replace_buckets(channel_id: int, first: datetime, end: datetime, rows: list[tuple[datetime, float, float]]) -> None:
    """Make the channel's buckets in [first, end) exactly `rows` of (start, energy_wh, covered_seconds)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM telemetry_energybucket WHERE channel_id = %s AND start >= %s AND start < %s",
            [channel_id, first, end],
        )
        if rows:
            starts, energies, covered = zip(*rows)
            cursor.execute(
                """
                INSERT INTO telemetry_energybucket (channel_id, start, energy_wh, covered_seconds)
                SELECT %s, * FROM unnest(%s::timestamptz[], %s::float8[], %s::float8[])
                """,
                [channel_id, list(starts), list(energies), list(covered)],
            )


def latest_readings(channel_ids) -> dict[int, tuple[datetime, float]]:
    """Each channel's newest stored reading as (time, value); channels without readings are absent."""
    if not channel_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, r.time, r.value
            FROM unnest(%s::bigint[]) AS c(id)
            CROSS JOIN LATERAL (
                SELECT time, value FROM telemetry_reading WHERE channel_id = c.id ORDER BY time DESC LIMIT 1
            ) AS r
            """,
            [list(channel_ids)],
        )
        return {channel_id: (time, value) for channel_id, time, value in cursor.fetchall()}


def add_to_buckets(rows: list[tuple[int, datetime, float, float]]) -> None:
    """Add (channel_id, start, energy_wh, covered_seconds) to the buckets, creating those not stored yet.

    One row per (channel, start): PostgreSQL refuses to update a row twice in one statement.
    """
    if not rows:
        return
    with connection.cursor() as cursor:
        _copy_into_staging(
            cursor, "bucket_staging", {"channel_id": "int8", "start": "timestamptz", "energy_wh": "float8", "covered_seconds": "float8"}, rows
        )
        cursor.execute(
            """
            INSERT INTO telemetry_energybucket AS bucket (channel_id, start, energy_wh, covered_seconds)
            SELECT channel_id, start, energy_wh, covered_seconds FROM bucket_staging
            ON CONFLICT (channel_id, start) DO UPDATE
            SET energy_wh = bucket.energy_wh + EXCLUDED.energy_wh,
                covered_seconds = bucket.covered_seconds + EXCLUDED.covered_seconds
            """
        )
