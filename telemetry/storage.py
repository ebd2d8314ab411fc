"""Bulk reads and writes of readings, buckets and days, one statement each whatever the batch size.

The ORM's bulk_create builds a model instance per row, which cost more than the
database work itself; `unnest` of arrays sends a batch as one statement.
"""

from datetime import datetime, timedelta, timezone

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


BUCKET_COLUMNS = {
    "channel_id": "int8", "start": "timestamptz", "energy_wh": "float8", "covered_seconds": "float8",
    "estimated_wh": "float8", "min_power_w": "float8", "max_power_w": "float8",
}
_DAY_DELTA_COLUMNS = {"channel_id": "int8", "start": "timestamptz", "energy_wh": "float8", "covered_seconds": "float8", "estimated_wh": "float8"}

# The day a bucket belongs to is its local date in the site's zone of the channel's device.
_ADD_STAGED_TO_DAYS = """
    INSERT INTO telemetry_energyday AS d (channel_id, day, energy_wh, covered_seconds, estimated_wh)
    SELECT b.channel_id, (b.start AT TIME ZONE site.timezone)::date, sum(b.energy_wh), sum(b.covered_seconds), sum(b.estimated_wh)
    FROM {staging} AS b
    JOIN assets_channel AS channel ON channel.id = b.channel_id
    JOIN assets_device AS device ON device.id = channel.device_id
    JOIN assets_site AS site ON site.id = device.site_id
    GROUP BY 1, 2
    ON CONFLICT (channel_id, day) DO UPDATE
    SET energy_wh = d.energy_wh + EXCLUDED.energy_wh,
        covered_seconds = d.covered_seconds + EXCLUDED.covered_seconds,
        estimated_wh = d.estimated_wh + EXCLUDED.estimated_wh
"""


def replace_buckets(rows_by_range: dict[tuple[int, datetime, datetime], list[tuple]]) -> None:
    """For each (channel_id, first, end): make the channel's buckets in [first, end) exactly its rows of
    (start, energy_wh, covered_seconds, estimated_wh, min_power_w, max_power_w); the days follow.

    The ranges of one channel must not overlap.
    """
    if not rows_by_range:
        return
    with connection.cursor() as cursor:
        _copy_into_staging(
            cursor, "bucket_range_staging", {"channel_id": "int8", "first": "timestamptz", "end_": "timestamptz"},
            list(rows_by_range),
        )
        cursor.execute(
            """
            DELETE FROM telemetry_energybucket AS b USING bucket_range_staging AS r
            WHERE b.channel_id = r.channel_id AND b.start >= r.first AND b.start < r.end_
            RETURNING b.channel_id, b.start, b.energy_wh, b.covered_seconds, b.estimated_wh
            """
        )
        removed = cursor.fetchall()
        new_rows = [(channel_id, *row) for (channel_id, _, _), rows in rows_by_range.items() for row in rows]
        _copy_into_staging(cursor, "bucket_staging", BUCKET_COLUMNS, new_rows)
        cursor.execute(f"INSERT INTO telemetry_energybucket ({', '.join(BUCKET_COLUMNS)}) SELECT * FROM bucket_staging")
        deltas = [row[:5] for row in new_rows] + [(c, start, -e, -cov, -est) for c, start, e, cov, est in removed]
        _copy_into_staging(cursor, "day_delta_staging", _DAY_DELTA_COLUMNS, deltas)
        cursor.execute(_ADD_STAGED_TO_DAYS.format(staging="day_delta_staging"))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def readings_around(spans: list[tuple[int, datetime, datetime]], before: int, after: int | None = None) -> list[list[tuple[datetime, float]]]:
    """For each (channel_id, first, last): its stored readings within, `before` of them before and
    `after` (default `before`) after, oldest first.

    Three index probes per span in one statement; for an in-order batch only the newest
    readings. The spans go in by COPY: quoting thousands of timestamps into the statement
    cost more than the probes.
    """
    if not spans:
        return []
    with connection.cursor() as cursor:
        _copy_into_staging(
            cursor, "span_staging", {"span": "int8", "channel_id": "int8", "first": "timestamptz", "last": "timestamptz"},
            ((index, channel_id, first, last) for index, (channel_id, first, last) in enumerate(spans)),
        )
        cursor.execute(
            """
            SELECT c.span, date_part('epoch', r.time), r.value
            FROM span_staging AS c
            CROSS JOIN LATERAL (
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time < c.first ORDER BY time DESC LIMIT %(before)s)
                UNION ALL
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time >= c.first AND time <= c.last)
                UNION ALL
                (SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id AND time > c.last ORDER BY time LIMIT %(after)s)
            ) AS r
            """,
            {"before": before, "after": before if after is None else after},
        )
        found: list[list[tuple[float, float]]] = [[] for _ in spans]
        for span, seconds, value in cursor.fetchall():
            found[span].append((seconds, value))
    return [[(_from_epoch(seconds), value) for seconds, value in sorted(rows)] for rows in found]


def newest_readings(channel_ids: list[int], count: int) -> dict[int, list[tuple[datetime, float]]]:
    """Each channel's `count` newest stored readings, oldest first: one index probe a channel."""
    if not channel_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.channel_id, date_part('epoch', r.time), r.value
            FROM unnest(%(channels)s::bigint[]) AS c(channel_id)
            CROSS JOIN LATERAL (
                SELECT time, value FROM telemetry_reading WHERE channel_id = c.channel_id ORDER BY time DESC LIMIT %(count)s
            ) AS r
            """,
            {"channels": channel_ids, "count": count},
        )
        found: dict[int, list[tuple[float, float]]] = {channel_id: [] for channel_id in channel_ids}
        for channel_id, seconds, value in cursor.fetchall():
            found[channel_id].append((seconds, value))
    return {channel_id: [(_from_epoch(seconds), value) for seconds, value in sorted(rows)] for channel_id, rows in found.items()}


def all_readings(channel_id: int) -> list[tuple[datetime, float]]:
    """Every stored reading of the channel, oldest first (a year of minutes is half a million rows)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_part('epoch', time), value FROM telemetry_reading WHERE channel_id = %s ORDER BY time", [channel_id])
        return [(_from_epoch(seconds), value) for seconds, value in cursor.fetchall()]


def _from_epoch(seconds: float) -> datetime:
    """Epoch seconds as PostgreSQL's date_part gives them (a double: exact to well under a microsecond
    for any date readings have) back to the stored microsecond: a timestamp parsed row by row in
    Python cost more than the whole query."""
    return _EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


def write_flags(removed: list[tuple[int, datetime]], added: list[tuple[int, datetime, str, str]]) -> None:
    """Drop the flags of (channel_id, time), then store (channel_id, time, kind, detail); one flag a reading, the last given stands."""
    with connection.cursor() as cursor:
        if removed:
            channels, times = zip(*removed)
            cursor.execute(
                "DELETE FROM telemetry_readingflag AS f USING unnest(%s::bigint[], %s::timestamptz[]) AS gone(channel_id, time) "
                "WHERE f.channel_id = gone.channel_id AND f.time = gone.time",
                [list(channels), list(times)],
            )
        if added:
            latest = {(channel_id, time): (kind, detail) for channel_id, time, kind, detail in added}
            _copy_into_staging(
                cursor, "flag_staging", {"channel_id": "int8", "time": "timestamptz", "kind": "text", "detail": "text"},
                [(channel_id, time, kind, detail) for (channel_id, time), (kind, detail) in latest.items()],
            )
            cursor.execute(
                """
                INSERT INTO telemetry_readingflag (channel_id, time, kind, detail) SELECT * FROM flag_staging
                ON CONFLICT (channel_id, time) DO UPDATE SET kind = EXCLUDED.kind, detail = EXCLUDED.detail
                """
            )


def add_to_buckets(rows: list[tuple]) -> None:
    """Add (channel_id, start, energy_wh, covered_seconds, estimated_wh, min_power_w, max_power_w) to the buckets,
    creating those not stored yet; the days follow.

    Energy, coverage and estimated energy add up; the power extremes widen (a row only ever adds
    intervals to its bucket: a bucket that loses one is rebuilt by `replace_buckets`).
    One row per (channel, start): PostgreSQL refuses to update a row twice in one statement.
    """
    if not rows:
        return
    with connection.cursor() as cursor:
        _copy_into_staging(cursor, "bucket_staging", BUCKET_COLUMNS, rows)
        cursor.execute(
            f"""
            INSERT INTO telemetry_energybucket AS bucket ({', '.join(BUCKET_COLUMNS)})
            SELECT * FROM bucket_staging
            ON CONFLICT (channel_id, start) DO UPDATE
            SET energy_wh = bucket.energy_wh + EXCLUDED.energy_wh,
                covered_seconds = bucket.covered_seconds + EXCLUDED.covered_seconds,
                estimated_wh = bucket.estimated_wh + EXCLUDED.estimated_wh,
                min_power_w = LEAST(bucket.min_power_w, EXCLUDED.min_power_w),
                max_power_w = GREATEST(bucket.max_power_w, EXCLUDED.max_power_w)
            """
        )
        cursor.execute(_ADD_STAGED_TO_DAYS.format(staging="bucket_staging"))
