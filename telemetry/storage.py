"""Bulk reads and writes of readings and buckets, one statement each whatever the batch size.

The ORM's bulk_create builds a model instance per row, which cost more than the
database work itself; `unnest` of arrays sends a batch as one statement.
"""

from datetime import datetime

from django.db import connection

from .partitions import ensure_partitions_for


def _copy_into_staging(cursor, table: str, columns: dict[str, str], rows) -> None:
    """`rows` into a session-local staging table, made on first use and emptied at commit."""
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({', '.join(f'{n} {t}' for n, t in columns.items())}) ON COMMIT DELETE ROWS"
    )
    # Emptied now too, not only at commit: a batch stored message by message uses it again in one transaction.
    cursor.execute(f"TRUNCATE {table}")
    copy_rows(cursor, table, columns, rows)


def copy_rows(cursor, table: str, columns: dict[str, str], rows) -> None:
    """Binary COPY: psycopg writes each row in C, the fastest way into PostgreSQL."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(columns.values()))
        for row in rows:
            copy.write_row(row)


def insert_readings(rows: list[tuple[int, datetime, float]]) -> int:
    """Insert (channel_id, time, value) rows; a (channel, time) already stored keeps its value. Returns rows inserted.

    COPY is the fastest way in, and only an INSERT can skip the rows stored
    before: the rows are copied into staging, then moved by one INSERT keyed by (channel, time).
    """
    if not rows:
        return 0
    ensure_partitions_for(row[1] for row in rows)
    with connection.cursor() as cursor:
        _copy_into_staging(cursor, "reading_staging", {"channel_id": "int8", "time": "timestamptz", "value": "float8"}, rows)
        cursor.execute(
            """
            INSERT INTO telemetry_reading (channel_id, time, value)
            SELECT channel_id, time, value FROM reading_staging
            ON CONFLICT (channel_id, time) DO NOTHING
            """
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


def readings_around(spans: dict[int, tuple[datetime, datetime]]) -> dict[int, list[tuple[datetime, float]]]:
    """For each channel and (first, last): its stored readings within, and the nearest one on either side.

    Three index probes per channel in one statement; in the usual in-order case
    this finds only the newest reading. The spans go in by COPY: quoting thousands
    of timestamps into the statement cost more than the probes.
    """
    if not spans:
        return {}
    with connection.cursor() as cursor:
        _copy_into_staging(
            cursor, "span_staging", {"channel_id": "int8", "first": "timestamptz", "last": "timestamptz"},
            ((channel_id, first, last) for channel_id, (first, last) in spans.items()),
        )
        cursor.execute(
            """
            SELECT c.channel_id, r.time, r.value
            FROM span_staging AS c
            CROSS JOIN LATERAL (
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time < c.first ORDER BY time DESC LIMIT 1)
                UNION ALL
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time >= c.first AND time <= c.last)
                UNION ALL
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time > c.last ORDER BY time LIMIT 1)
            ) AS r
            """
        )
        found: dict[int, list[tuple[datetime, float]]] = {channel_id: [] for channel_id in spans}
        for channel_id, time, value in cursor.fetchall():
            found[channel_id].append((time, value))
        return found


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
