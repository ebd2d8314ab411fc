"""Where readings live: one partition per UTC month (native PostgreSQL) or a TimescaleDB hypertable.

The readings migration makes `telemetry_reading` a hypertable when the database
offers TimescaleDB, and otherwise a table range-partitioned by `time`, one
partition per UTC month (`telemetry_reading_p2026_03` holds March 2026). Both
keep the (channel_id, time) primary key, so a repeated reading is still ignored.

PostgreSQL refuses a row that no partition accepts, so every insert first asks
`ensure_reading_partitions` for the months it touches; after the first call a
process answers from memory. `maintain_reading_storage` (the `reading_partitions`
command and a Celery beat task) creates the coming months ahead, so the ingest
path seldom needs to create one, and applies the retention setting. On a
hypertable TimescaleDB makes its chunks itself, and compression and retention
are its own background jobs: upkeep then only keeps their policies equal to the
settings.
"""

import logging
import re
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

log = logging.getLogger(__name__)

UTC = timezone.utc
READING_TABLE = "telemetry_reading"
PARTITION_NAME = re.compile(r"^telemetry_reading_p(\d{4})_(\d{2})$")
# Advisory lock (namespace, key) taken while partitions are created: two workers
# creating the same month at once would otherwise race inside CREATE TABLE IF NOT EXISTS.
PARTITION_LOCK = (7_102, 1)
# Dropping a partition waits for every query on the readings table; a drop that cannot
# get its lock soon gives up (and is tried again next run) rather than stall ingest behind it.
DROP_LOCK_TIMEOUT = "5s"

NATIVE = "native"
TIMESCALE = "timescale"
PLAIN = "plain"  # not converted (the migration has not run, or was reversed)
ABSENT = "absent"

# Per process and per database: the storage kind, and the months known to have a committed partition.
_storage_kinds: dict[str, str] = {}
_known_months: dict[str, set[datetime]] = {}


def month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month holding `moment`."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def months_covering(first: datetime, last: datetime) -> list[datetime]:
    """Starts of every UTC month that holds an instant of [first, last]."""
    month, end = month_start(min(first, last)), month_start(max(first, last))
    months = []
    while month <= end:
        months.append(month)
        month = add_months(month, 1)
    return months


def partition_name(month: datetime) -> str:
    return f"{READING_TABLE}_p{month.year:04d}_{month.month:02d}"


def _database_key(connection) -> str:
    settings_dict = connection.settings_dict
    return f"{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


def storage_kind(using: str = DEFAULT_DB_ALIAS) -> str:
    """NATIVE, TIMESCALE, PLAIN or ABSENT: what the readings table is in this database."""
    connection = connections[using]
    key = _database_key(connection)
    if key in _storage_kinds:
        return _storage_kinds[key]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [READING_TABLE])
        row = cursor.fetchone()
        if row is None:
            return ABSENT
        if row[0] == "p":
            kind = NATIVE
        else:
            cursor.execute("SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL")
            has_timescale = cursor.fetchone()[0]
            if has_timescale:
                cursor.execute(
                    "SELECT EXISTS (SELECT FROM _timescaledb_catalog.hypertable"
                    " WHERE table_name = %s AND schema_name = current_schema())",
                    [READING_TABLE],
                )
                has_timescale = cursor.fetchone()[0]
            kind = TIMESCALE if has_timescale else PLAIN
    # A plain table is about to be converted by migrate: ask again next time.
    if kind != PLAIN:
        _storage_kinds[key] = kind
    return kind


def forget_cached_state() -> None:
    """Drop what this process remembers about the readings table (after a migration changed it)."""
    _storage_kinds.clear()
    _known_months.clear()


def _retention_cutoff(now: datetime) -> datetime | None:
    days = settings.READINGS_RETENTION_DAYS
    return None if days is None else now - timedelta(days=days)


def _may_be_dropped_soon(month: datetime, now: datetime) -> bool:
    """A month whose partition retention could drop within a day: never answered from memory.

    Another process may drop it; asking the database for such old months costs a
    query only for readings that are about to expire anyway.
    """
    cutoff = _retention_cutoff(now)
    return cutoff is not None and add_months(month, 1) <= cutoff + timedelta(days=1)


def existing_partition_months(cursor) -> set[datetime]:
    """Months that have a partition, read from the names this module gives them."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [READING_TABLE],
    )
    months = set()
    for (name,) in cursor.fetchall():
        match = PARTITION_NAME.match(name)
        if match:
            months.add(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC))
    return months


def create_month_partitions(cursor, months) -> list[str]:
    """Create the partitions of `months` that do not exist yet, under the partition lock; names created.

    Bounds are written with an explicit UTC offset, so the session's time zone never moves a month.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", PARTITION_LOCK)
    # Read again under the lock: another process may have just created some of them.
    existing = existing_partition_months(cursor)
    created = []
    for month in sorted(set(months) - existing):
        name = partition_name(month)
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{READING_TABLE}"'
            f" FOR VALUES FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"
        )
        created.append(name)
    if created:
        log.info("created readings partitions %s", ", ".join(created))
    return created


def ensure_reading_partitions(first: datetime, last: datetime, using: str = DEFAULT_DB_ALIAS) -> None:
    """Make sure every UTC month of [first, last] has a readings partition; a no-op on a hypertable.

    Cheap when the months are known to this process (no query at all). Otherwise it
    creates what is missing under an advisory lock, inside the caller's transaction:
    the new partitions commit (or roll back) with the rows the caller inserts into them.
    Months are remembered only once that transaction has committed.

    Creating a partition locks the whole readings table until the caller's transaction
    ends, which is why the upkeep creates the coming months ahead: this path then
    creates only months nobody foresaw (late, back-filled or replayed readings).
    """
    connection = connections[using]
    key = _database_key(connection)
    known = _known_months.setdefault(key, set())
    now = datetime.now(UTC)
    wanted = [month for month in months_covering(first, last) if month not in known or _may_be_dropped_soon(month, now)]
    if not wanted or storage_kind(using) != NATIVE:
        return
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Most misses are months that exist already (a new process): look before taking the lock.
        if not set(wanted) <= existing_partition_months(cursor):
            create_month_partitions(cursor, wanted)
    transaction.on_commit(lambda: known.update(wanted), using=using)


def ensure_partitions_for(times, using: str = DEFAULT_DB_ALIAS) -> None:
    """Partitions for the months these times fall in, and only those: one reading stamped by a clock
    that was never set must not create every month between it and now."""
    for month in sorted({month_start(time) for time in times}):
        ensure_reading_partitions(month, month, using)


def create_partitions_ahead(now: datetime | None = None, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Partitions from this month to READINGS_PARTITIONS_AHEAD_MONTHS ahead; the names created."""
    if storage_kind(using) != NATIVE:
        return []
    this_month = month_start(now or datetime.now(UTC))
    months = [add_months(this_month, ahead) for ahead in range(settings.READINGS_PARTITIONS_AHEAD_MONTHS + 1)]
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        return create_month_partitions(cursor, months)


def drop_expired_partitions(now: datetime | None = None, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Drop the partitions whose whole month is older than READINGS_RETENTION_DAYS; the names dropped.

    A partition still holding one reading younger than the cutoff stays, so retention never
    removes a reading it should keep. Each drop is its own short transaction.
    """
    cutoff = _retention_cutoff(now or datetime.now(UTC))
    if cutoff is None or storage_kind(using) != NATIVE:
        return []
    connection = connections[using]
    with connection.cursor() as cursor:
        expired = sorted(month for month in existing_partition_months(cursor) if add_months(month, 1) <= cutoff)
    dropped = []
    for month in expired:
        name = partition_name(month)
        try:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
        except OperationalError as exc:
            log.warning("readings partition %s not dropped this time: %s", name, exc)
            continue
        dropped.append(name)
        _known_months.get(_database_key(connection), set()).discard(month)
    if dropped:
        log.info("dropped readings partitions older than %s: %s", cutoff.isoformat(), ", ".join(dropped))
    return dropped


def _policy_setting(cursor, proc_name: str, setting: str) -> str | None:
    cursor.execute(
        "SELECT config ->> %s FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = %s",
        [setting, proc_name, READING_TABLE],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def apply_timescale_policies(using: str = DEFAULT_DB_ALIAS) -> dict[str, str | None]:
    """Make the hypertable's compression and retention policies what the settings say.

    A policy already equal to its setting is left alone, so a scheduled run does not
    replace TimescaleDB's jobs every time. Returns the interval of each policy (None: off).
    """
    if storage_kind(using) != TIMESCALE:
        return {}
    compress_days = settings.TIMESCALE_COMPRESS_AFTER_DAYS
    retention_days = settings.READINGS_RETENTION_DAYS
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        if compress_days is not None:
            cursor.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
                [READING_TABLE],
            )
            if not cursor.fetchone()[0]:
                # Segments by channel, ordered by time: the shape of every readings query.
                cursor.execute(
                    f'ALTER TABLE "{READING_TABLE}" SET (timescaledb.compress,'
                    " timescaledb.compress_segmentby = 'channel_id', timescaledb.compress_orderby = 'time')"
                )
        _apply_policy(cursor, "policy_compression", "compress_after", compress_days, "compression")
        _apply_policy(cursor, "policy_retention", "drop_after", retention_days, "retention")
    return {
        "compress_after": None if compress_days is None else f"{compress_days} days",
        "drop_after": None if retention_days is None else f"{retention_days} days",
    }


def _apply_policy(cursor, proc_name: str, setting: str, days: int | None, kind: str) -> None:
    wanted = None if days is None else f"{days} days"
    if _policy_setting(cursor, proc_name, setting) == wanted:
        return
    cursor.execute(f"SELECT remove_{kind}_policy(%s, if_exists => true)", [READING_TABLE])
    if wanted is not None:
        cursor.execute(f"SELECT add_{kind}_policy(%s, %s::interval)", [READING_TABLE, wanted])
    log.info("readings %s policy set to %s", kind, wanted or "none")


def maintain_reading_storage(now: datetime | None = None, drop_expired: bool = True, using: str = DEFAULT_DB_ALIAS) -> dict:
    """The periodic upkeep: partitions ahead and retention (native), or policies (TimescaleDB)."""
    kind = storage_kind(using)
    report = {"storage": kind}
    if kind == NATIVE:
        report["created"] = create_partitions_ahead(now, using)
        report["dropped"] = drop_expired_partitions(now, using) if drop_expired else []
    elif kind == TIMESCALE:
        report["policies"] = apply_timescale_policies(using)
    return report
