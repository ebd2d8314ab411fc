"""Readings on this machine's PostgreSQL (no TimescaleDB): one partition per UTC month.

The TimescaleDB path is proved in test_timescale_storage.py.
"""

import io
import os
import subprocess
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from telemetry import partitions
from telemetry.models import Reading
from telemetry.partitions import ensure_reading_partitions, partition_name
from telemetry.storage import insert_readings

from .storage_world import PYTHON, ROOT, SEED_READINGS, SEEDED_READINGS, make_channel, manage, scratch_database

pytestmark = pytest.mark.django_db

UTC = timezone.utc


@pytest.fixture(autouse=True)
def forget_partitions_between_tests():
    """Partitions made inside a test's transaction vanish with its rollback: no test may remember them."""
    partitions.forget_cached_state()
    yield
    partitions.forget_cached_state()


def stored_in(channel_id: int) -> dict[datetime, str]:
    """time -> the partition holding the channel's reading at that time."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT time, tableoid::regclass::text FROM telemetry_reading WHERE channel_id = %s", [channel_id])
        return dict(cursor.fetchall())


def partition_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'telemetry_reading'::regclass AND c.relkind = 'r'"
        )
        return {name for (name,) in cursor.fetchall()}


def run_deferred_checks() -> None:
    """The test's transaction never commits: run the foreign key checks now, as a commit would, so a partition can be dropped."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_readings_table_is_range_partitioned_by_time_with_the_same_key():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p"
            " JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
            " WHERE p.partrelid = 'telemetry_reading'::regclass"
        )
        assert cursor.fetchone() == ("r", "time")
        cursor.execute(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'telemetry_reading'::regclass ORDER BY contype"
        )
        constraints = cursor.fetchall()
    assert constraints == [
        ("f", "FOREIGN KEY (channel_id) REFERENCES assets_channel(id) DEFERRABLE INITIALLY DEFERRED"),
        ("p", "PRIMARY KEY (channel_id, \"time\")"),
    ]
    assert partitions.storage_kind() == partitions.NATIVE


def test_migrate_made_this_month_and_the_months_ahead():
    this_month = partitions.month_start(datetime.now(UTC))
    ahead = [partitions.add_months(this_month, n) for n in range(4)]
    assert {partition_name(month) for month in ahead} <= partition_names()


def test_rows_go_to_the_partition_of_their_utc_month():
    channel = make_channel()
    times = [datetime(2016, 1, 15, tzinfo=UTC), datetime(2016, 2, 29, 12, tzinfo=UTC), datetime(2016, 7, 1, tzinfo=UTC)]
    assert insert_readings([(channel.id, time, 1.0) for time in times]) == 3
    assert stored_in(channel.id) == {
        times[0]: "telemetry_reading_p2016_01",
        times[1]: "telemetry_reading_p2016_02",
        times[2]: "telemetry_reading_p2016_07",
    }
    assert Reading.objects.filter(channel=channel).count() == 3


def test_a_month_boundary_is_midnight_utc_whatever_the_session_time_zone():
    channel = make_channel()
    last_instant_of_march = datetime(2016, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    first_instant_of_april = datetime(2016, 4, 1, tzinfo=UTC)
    # 1 April 01:30 in Berlin (summer time, +02:00) is still 31 March in UTC.
    april_in_berlin_march_in_utc = datetime(2016, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Pacific/Auckland'")  # partitions made now must not follow it
    insert_readings([(channel.id, t, 1.0) for t in (last_instant_of_march, first_instant_of_april, april_in_berlin_march_in_utc)])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")  # Django reads timestamps as UTC
    assert stored_in(channel.id) == {
        last_instant_of_march: "telemetry_reading_p2016_03",
        first_instant_of_april: "telemetry_reading_p2016_04",
        april_in_berlin_march_in_utc: "telemetry_reading_p2016_03",
    }


def test_a_repeated_reading_is_ignored_in_whichever_partition_it_lives():
    channel = make_channel()
    january, june = datetime(2016, 1, 31, 23, tzinfo=UTC), datetime(2016, 6, 1, tzinfo=UTC)
    assert insert_readings([(channel.id, january, 1.0), (channel.id, june, 2.0)]) == 2
    new_in_march = datetime(2016, 3, 1, tzinfo=UTC)
    assert insert_readings([(channel.id, january, 10.0), (channel.id, new_in_march, 3.0), (channel.id, june, 20.0)]) == 1
    assert dict(Reading.objects.filter(channel=channel).values_list("time", "value")) == {january: 1.0, new_in_march: 3.0, june: 2.0}


def test_known_months_cost_no_query_once_committed(django_assert_num_queries, django_capture_on_commit_callbacks):
    march = datetime(2005, 3, 10, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        ensure_reading_partitions(march, march)
    assert "telemetry_reading_p2005_03" in partition_names()
    with django_assert_num_queries(0):
        ensure_reading_partitions(march, march + timedelta(days=5))


def test_a_month_is_not_remembered_when_its_transaction_rolls_back():
    march = datetime(2005, 3, 10, tzinfo=UTC)
    try:
        with transaction.atomic():
            ensure_reading_partitions(march, march)
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    assert "telemetry_reading_p2005_03" not in partition_names()
    ensure_reading_partitions(march, march)  # asks the database again and creates it
    assert "telemetry_reading_p2005_03" in partition_names()


@pytest.mark.django_db(transaction=True)
def test_two_workers_creating_the_same_months_at_once_both_succeed():
    """Each thread has its own database connection, as two worker processes would."""
    channel = make_channel()
    months = [datetime(2003, month, 15, tzinfo=UTC) for month in range(1, 13)]
    errors: list[BaseException] = []
    rounds = 6
    barrier = threading.Barrier(2)

    def worker(offset: float):
        try:
            for round_ in range(rounds):
                first = months[2 * round_]
                barrier.wait(timeout=30)
                partitions.forget_cached_state()  # both threads must ask the database, not memory
                with transaction.atomic():
                    ensure_reading_partitions(first, months[2 * round_ + 1])
                    insert_readings([(channel.id, first + timedelta(seconds=offset), 1.0)])
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert Reading.objects.filter(channel=channel).count() == 2 * rounds
        assert {partition_name(partitions.month_start(m)) for m in months} <= partition_names()
    finally:
        with connection.cursor() as cursor:
            for month in months:
                cursor.execute(f'DROP TABLE IF EXISTS "{partition_name(partitions.month_start(month))}"')


def test_retention_drops_only_partitions_whose_whole_month_is_older(settings):
    channel = make_channel()
    now = datetime(2016, 6, 15, tzinfo=UTC)  # with 30 days kept, the cutoff is 2016-05-16
    settings.READINGS_RETENTION_DAYS = 30
    times = [datetime(2016, 3, 5, tzinfo=UTC), datetime(2016, 4, 30, 23, tzinfo=UTC), datetime(2016, 5, 2, tzinfo=UTC)]
    times += [datetime(2016, 5, 20, tzinfo=UTC), datetime(2016, 6, 14, tzinfo=UTC)]
    insert_readings([(channel.id, time, 1.0) for time in times])
    run_deferred_checks()

    dropped = partitions.drop_expired_partitions(now)

    assert {"telemetry_reading_p2016_03", "telemetry_reading_p2016_04"} <= set(dropped)
    assert not {"telemetry_reading_p2016_05", "telemetry_reading_p2016_06"} & set(dropped)
    # May holds a reading older than the cutoff (2 May), kept with the rest of its month.
    assert sorted(stored_in(channel.id)) == times[2:]
    assert {"telemetry_reading_p2016_05", "telemetry_reading_p2016_06"} <= partition_names()


def test_without_retention_nothing_is_dropped(settings):
    settings.READINGS_RETENTION_DAYS = None
    insert_readings([(make_channel().id, datetime(2001, 1, 1, tzinfo=UTC), 1.0)])
    assert partitions.drop_expired_partitions(datetime(2030, 1, 1, tzinfo=UTC)) == []
    assert "telemetry_reading_p2001_01" in partition_names()


def test_a_reading_for_a_dropped_month_recreates_its_partition(settings):
    """Another process may still remember the month; this one must not trust its memory for expiring months."""
    channel = make_channel()
    settings.READINGS_RETENTION_DAYS = 30
    old = datetime.now(UTC) - timedelta(days=120)
    insert_readings([(channel.id, old, 1.0)])
    run_deferred_checks()
    assert partition_name(partitions.month_start(old)) in partitions.drop_expired_partitions()
    assert insert_readings([(channel.id, old, 2.0)]) == 1


def test_the_command_creates_months_ahead_and_applies_retention(settings):
    channel = make_channel()
    settings.READINGS_PARTITIONS_AHEAD_MONTHS = 6
    settings.READINGS_RETENTION_DAYS = 365
    insert_readings([(channel.id, datetime(2002, 2, 2, tzinfo=UTC), 1.0)])
    run_deferred_checks()
    out = io.StringIO()
    call_command("reading_partitions", stdout=out)
    six_ahead = partition_name(partitions.add_months(partitions.month_start(datetime.now(UTC)), 6))
    assert "readings storage: native" in out.getvalue()
    assert f"created {six_ahead}" in out.getvalue()
    assert "dropped telemetry_reading_p2002_02" in out.getvalue()
    assert six_ahead in partition_names() and "telemetry_reading_p2002_02" not in partition_names()


def test_a_query_by_channel_and_time_range_reads_only_its_months():
    channel = make_channel()
    insert_readings([(channel.id, datetime(2016, month, 10, tzinfo=UTC), 1.0) for month in range(1, 13)])
    in_march = Reading.objects.filter(
        channel=channel, time__gte=datetime(2016, 3, 5, tzinfo=UTC), time__lt=datetime(2016, 3, 20, tzinfo=UTC)
    )
    plan = in_march.explain()
    scanned = {name for name in partition_names() if name in plan}
    assert scanned == {"telemetry_reading_p2016_03"}, plan
    across_a_boundary = Reading.objects.filter(
        channel=channel, time__gte=datetime(2016, 3, 25, tzinfo=UTC), time__lt=datetime(2016, 4, 5, tzinfo=UTC)
    )
    plan = across_a_boundary.explain()
    assert {name for name in partition_names() if name in plan} == {"telemetry_reading_p2016_03", "telemetry_reading_p2016_04"}, plan


def test_migration_keeps_every_reading_both_ways():
    """On a database of its own: the plain table with rows, to partitions, and back."""
    with scratch_database(connection.settings_dict, "migration") as url:
        manage(url, "migrate")
        manage(url, "migrate", "telemetry", "0002")
        seeded = manage(url, "shell", "-c", SEED_READINGS)
        assert f"seeded {SEEDED_READINGS}" in seeded
        manage(url, "migrate", "telemetry")
        with psycopg.connect(url) as db:
            months = db.execute(
                "SELECT tableoid::regclass::text, count(*) FROM telemetry_reading GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert [name for name, _ in months] == [f"telemetry_reading_p2016_{m:02d}" for m in range(1, 13)]
            assert sum(count for _, count in months) == SEEDED_READINGS
            assert db.execute("SELECT sum(value) FROM telemetry_reading").fetchone()[0] == sum(range(SEEDED_READINGS))
        manage(url, "migrate", "telemetry", "0002")
        with psycopg.connect(url) as db:
            assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'telemetry_reading'").fetchone() == ("r",)
            assert db.execute("SELECT count(*), sum(value) FROM telemetry_reading").fetchone() == (SEEDED_READINGS, sum(range(SEEDED_READINGS)))
            # As Django made it: with its own index on channel_id again.
            indexes = db.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'telemetry_reading'").fetchone()
            assert indexes == (2,)




@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("READINGS_RETENTION_DAYS", "a year", "READINGS_RETENTION_DAYS must be a whole number of days"),
        ("TIMESCALE_COMPRESS_AFTER_DAYS", "0", "TIMESCALE_COMPRESS_AFTER_DAYS must be at least 1"),
        ("READINGS_STORAGE", "cassandra", 'READINGS_STORAGE must be "auto", "timescale" or "native"'),
    ],
)
def test_a_wrong_storage_setting_stops_the_start_with_its_name(variable, value, message):
    result = subprocess.run(
        [str(PYTHON), "manage.py", "check"],
        cwd=ROOT, env={**os.environ, variable: value}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_the_scheduled_task_reports_what_it_did(settings):
    from telemetry.tasks import maintain_reading_storage

    settings.READINGS_PARTITIONS_AHEAD_MONTHS = 4
    four_ahead = partition_name(partitions.add_months(partitions.month_start(datetime.now(UTC)), 4))
    assert maintain_reading_storage.apply().get() == {"storage": "native", "created": [four_ahead], "dropped": []}


def test_a_reading_from_a_clock_never_set_makes_its_own_month_only():
    channel = make_channel()
    before = partition_names()

    insert_readings([(channel.id, datetime(2000, 1, 1, tzinfo=UTC), 1.0), (channel.id, datetime(2026, 11, 3, tzinfo=UTC), 2.0)])

    made = partition_names() - before
    assert made <= {"telemetry_reading_p2000_01", "telemetry_reading_p2026_11"}
    assert "telemetry_reading_p2000_01" in made or "telemetry_reading_p2000_01" in before
    assert "telemetry_reading_p2013_06" not in partition_names()
