"""Bulk writes of readings and buckets in one statement each.

The ORM's bulk_create builds a model instance per row, which cost more than the
database work itself; `unnest` of three arrays sends a batch as one INSERT.
"""

from datetime import datetime

from django.db import connection

from .partitions import ensure_reading_partitions


def insert_readings(rows: list[tuple[int, datetime, float]]) -> int:
    """Insert (channel_id, time, value) rows; a (channel, time) already stored keeps its value. Returns rows inserted."""
    if not rows:
        return 0
    ensure_reading_partitions(min(row[1] for row in rows), max(row[1] for row in rows))
    channel_ids, times, values = zip(*rows)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO telemetry_reading (channel_id, time, value)
            SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[])
            ON CONFLICT (channel_id, time) DO NOTHING
            """,
            [list(channel_ids), list(times), list(values)],
        )
        return cursor.rowcount


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
