"""A logger that stamps its rows with the local wall clock and no offset, on real data: the UCI household.

The UCI file in ../shared/data (see its README, section 3) is a gap-free 1-minute grid of local
French time. On 2008-03-30 the clocks went from 02:00 to 03:00, yet the file holds 60 rows stamped
02:00-02:59 (02:01-02:59 are copies of 03:01-03:59). Each row is published as the logger would,
one JSON message per minute with its `date_time` as written, and goes through the ingest in the
bridge's batches; the device model reads that time as "local" in Europe/Paris.

Why "interval_average_start": UCI's Global_active_power is the household's average active power
over one minute, and the grid is stamped on whole minutes starting at 00:00 with the day's last
row at 23:59. A row stamped at the end of its minute would make 00:00 the last minute of the day
before and the day's rows would run 00:01-24:00; the file's days run 00:00-23:59, so each row
is the minute that starts at its stamp. The sub-meters are Wh consumed during that minute,
i.e. a mean power of value x 60 W over the same minute.

Energy per local day is then compared with a computation straight from the CSV text (Decimal,
the standard library's zone rules, nothing from the product): the sum over a local date's rows
of kW x 1000 / 60 Wh, without the rows whose local time does not exist.

What the product measured on this file (`pytest -s` prints it again):

    local day   hours  Global_active_power  kitchen  laundry  water heater, AC  coverage
    2008-03-26  24         27,224.533 Wh     2,547    3,831         7,547       1
    2008-03-27  24         22,847.033 Wh         0      356         9,022       1
    2008-03-28  24         31,423.733 Wh     2,325    3,605        11,581       1
    2008-03-29  24         41,185.833 Wh     5,153      375        17,240       1
    2008-03-30  23         34,401.133 Wh     4,892    1,315         8,935       1   (02:00-02:59: 60 dead letters)
    2008-03-31  24         22,959.500 Wh     1,091      411         9,387       1
    2008-04-01  24         35,484.200 Wh     1,079    6,657        14,515       1
    2008-04-02  24         28,187.567 Wh     1,106    3,674         7,989       0.999306 (1439/1440)

(sub-meters in Wh; every figure equals the one computed from the CSV to 1e-6 relative.)

The first day is fully covered: its first row, 00:00, opens the day's first minute. The last
row's minute is not counted, since nothing yet says when that minute ended (the next row would).
"""

import csv
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from assets.models import Channel, Device, DeviceModel, Organisation, Site
from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, EnergyBucket, EnergyDay, Reading
from telemetry.replay import replay_dead_letters

from .conftest import SHARED_DATA

pytestmark = pytest.mark.django_db

UCI_CSV = SHARED_DATA / "uci_household_power_1min_2008-03-26_2008-04-03.csv"
ZONE = "Europe/Paris"
PARIS = ZoneInfo(ZONE)
UTC = timezone.utc
BATCH = 500  # the bridge's default INGEST_BATCH_MAX_MESSAGES
ONE_MINUTE = timedelta(minutes=1)

# Channel key -> how to read the CSV cell as Wh in its minute, for the independent side.
WH_PER_MINUTE = {
    "Global_active_power": lambda text: Decimal(text) * 1000 / 60,  # kW averaged over the minute
    "Sub_metering_1": Decimal,  # kitchen, Wh in the minute
    "Sub_metering_2": Decimal,  # laundry
    "Sub_metering_3": Decimal,  # water heater and air conditioner
}


def logger_map(zone: str = ZONE) -> dict:
    every_minute = "interval_average_start"
    return {
        "format": "json",
        "topic": "uci/{device}/minute",
        "timestamp": {"path": "date_time", "format": "local", "timezone": zone},
        "channels": {
            "Global_active_power": {"metric": "power", "unit": "kW", "sample": every_minute},
            **{key: {"metric": "power", "unit": "W", "scale": 60, "sample": every_minute, "description": "Wh per minute"}
               for key in ("Sub_metering_1", "Sub_metering_2", "Sub_metering_3")},
        },
    }


def make_logger(identifier: str = "sceaux") -> dict[str, Channel]:
    """The household's site in Paris time, the logger's device model and device, a power channel per column."""
    organisation, _ = Organisation.objects.get_or_create(slug="uci", defaults={"name": "UCI household"})
    site = Site.objects.create(organisation=organisation, name="Sceaux", timezone=ZONE)
    model = DeviceModel.objects.create(organisation=organisation, key="local-time-logger", name="Local-time logger",
                                       parameter_map=logger_map())
    device = Device.objects.create(site=site, device_model=model, identifier=identifier)
    return {key: Channel.objects.create(device=device, key=key, metric=Channel.Metric.POWER) for key in WH_PER_MINUTE}


def read_rows() -> list[dict[str, str]]:
    with open(UCI_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


def payload(wall_clock: str, row: dict[str, str]) -> str:
    """The row as the logger publishes it: its cells as written, numbers as JSON numbers (never re-formatted)."""
    cells = [f'"date_time": "{wall_clock}"'] + [f'"{column}": {text}' for column, text in row.items() if column != "date_time"]
    return "{" + ", ".join(cells) + "}"


def ingest_in_batches(messages: list[dict]) -> None:
    for start in range(0, len(messages), BATCH):
        ingest_messages(messages[start:start + BATCH])


def exists_in_paris(wall_clock: str) -> bool:
    """A wall-clock time exists in the zone when it survives the trip to UTC and back unchanged."""
    naive = datetime.fromisoformat(wall_clock)
    return naive.replace(tzinfo=PARIS).astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) == naive


def day_seconds(day: date) -> float:
    midnight = datetime(day.year, day.month, day.day, tzinfo=PARIS)
    following = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=PARIS)
    return (following.astimezone(UTC) - midnight.astimezone(UTC)).total_seconds()


def expected_wh_by_day(rows, key: str, skip=lambda row: False) -> dict[date, Decimal]:
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for row in rows:
        if not skip(row):
            totals[date.fromisoformat(row["date_time"][:10])] += WH_PER_MINUTE[key](row[key])
    return dict(totals)


def bucket_days(channel: Channel) -> dict[date, tuple[float, float]]:
    """(energy Wh, covered seconds) per local date, summed from the channel's 15-minute buckets."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (start AT TIME ZONE %s)::date, sum(energy_wh), sum(covered_seconds) "
            "FROM telemetry_energybucket WHERE channel_id = %s GROUP BY 1 ORDER BY 1",
            [ZONE, channel.id],
        )
        return {day: (energy, covered) for day, energy, covered in cursor.fetchall()}


def stored_days(channel: Channel) -> dict[date, tuple[float, float]]:
    return {day: (energy, covered) for day, energy, covered in
            EnergyDay.objects.filter(channel=channel).order_by("day").values_list("day", "energy_wh", "covered_seconds")}


def assert_days_agree(buckets, days) -> None:
    """The day table kept with the buckets says what the buckets say."""
    assert list(buckets) == list(days)
    for day, (energy, covered) in buckets.items():
        assert days[day][0] == pytest.approx(energy, rel=1e-12, abs=1e-9), day
        assert days[day][1] == pytest.approx(covered, rel=1e-12, abs=1e-9), day


# The file, spring forward: 2008-03-30 has no 02:00-02:59 in Europe/Paris.

@pytest.fixture
def uci():
    channels = make_logger()
    rows = read_rows()
    received_at = datetime.now(UTC).isoformat()  # a backlog sent through the bridge now
    ingest_in_batches([{"topic": "uci/sceaux/minute", "payload": payload(row["date_time"], row), "received_at": received_at}
                       for row in rows])
    return {"channels": channels, "rows": rows}


def test_the_spring_forward_hour_is_refused_and_nothing_else(uci):
    rows = uci["rows"]
    missing = [row["date_time"] for row in rows if not exists_in_paris(row["date_time"])]
    assert missing == [f"2008-03-30 02:{minute:02d}:00" for minute in range(60)]

    letters = list(DeadLetter.objects.order_by("payload"))
    assert [letter.payload for letter in letters] == sorted(payload(row["date_time"], row) for row in rows if row["date_time"] in missing)
    for letter in letters:
        assert letter.topic == "uci/sceaux/minute"
        assert "does not exist in Europe/Paris: the clocks went forward over it (a DST change)" in letter.reason, letter.reason
        assert letter.payload.split('"')[3] in letter.reason  # the refused local time is named

    stored_rows = len(rows) - len(missing)
    assert stored_rows == 11460
    for channel in uci["channels"].values():
        assert Reading.objects.filter(channel=channel).count() == stored_rows
    # Each stored reading sits at the instant its local time names: 01:59 CET is followed by 03:00 CEST, a minute later.
    times = list(Reading.objects.filter(channel=uci["channels"]["Global_active_power"]).order_by("time").values_list("time", flat=True))
    assert {later - earlier for earlier, later in zip(times, times[1:])} == {ONE_MINUTE}


def test_energy_per_local_day_equals_the_csv_minute_by_minute(uci):
    rows = uci["rows"]
    days = sorted({date.fromisoformat(row["date_time"][:10]) for row in rows})
    assert days[0] == date(2008, 3, 26)
    last_day = days[-1]
    last_row = rows[-1]
    assert last_row["date_time"] == "2008-04-02 23:59:00"
    report = ["local day    hours  channel               product Wh      CSV Wh          coverage"]

    for key, channel in uci["channels"].items():
        expected = expected_wh_by_day(rows, key, skip=lambda row: not exists_in_paris(row["date_time"]))
        # The last row's minute has no end yet: the next row would give it. It is not in the product's figures.
        expected[last_day] -= WH_PER_MINUTE[key](last_row[key])
        measured = bucket_days(channel)
        assert_days_agree(measured, stored_days(channel))
        assert list(measured) == days

        for day in days:
            energy, covered = measured[day]
            assert energy == pytest.approx(float(expected[day]), rel=1e-6, abs=1e-6), (key, day)
            coverage = covered / day_seconds(day)
            report.append(f"{day}   {day_seconds(day) / 3600:>4.0f}   {key:<20}  {energy:>13,.3f}  {float(expected[day]):>13,.3f}  {coverage:.6f}")
            if day == last_day:
                assert coverage == pytest.approx(1439 / 1440) and coverage < 1
            else:
                # The first day too: its first row, 00:00 local, opens the day's first minute.
                assert coverage == pytest.approx(1.0), (key, day)

        # The DST day is 23 hours long and all 23 are covered.
        assert day_seconds(date(2008, 3, 30)) == 23 * 3600
        assert measured[date(2008, 3, 30)][1] == pytest.approx(23 * 3600)
    print("\n" + "\n".join(report))


def test_bucket_power_extremes_are_the_csv_minutes(uci):
    """Each minute is one constant power: a bucket's highest and lowest are its highest and lowest minute."""
    channel = uci["channels"]["Global_active_power"]
    counted = [row for row in uci["rows"][:-1] if exists_in_paris(row["date_time"])]
    by_bucket: dict[datetime, list[Decimal]] = defaultdict(list)
    for row in counted:
        instant = datetime.fromisoformat(row["date_time"]).replace(tzinfo=PARIS).astimezone(UTC)
        by_bucket[instant.replace(minute=instant.minute - instant.minute % 15)].append(Decimal(row["Global_active_power"]) * 1000)
    buckets = {start: (low, high) for start, low, high in
               EnergyBucket.objects.filter(channel=channel).values_list("start", "min_power_w", "max_power_w")}
    assert set(buckets) == set(by_bucket)
    for start, powers in by_bucket.items():
        assert buckets[start] == (pytest.approx(float(min(powers))), pytest.approx(float(max(powers)))), start


def test_replaying_the_spring_forward_hour_as_standard_time_collides_with_the_real_hour(uci):
    """Why the product refuses instead of guessing: read as CET (+01:00), 02:MM is the instant of 03:MM CEST,
    which is stored already. The (channel, time) key keeps the first value, so the replayed minute is dropped:
    harmless for 02:01-02:59 (copies of 03:01-03:59 in this file), but 02:00 (3.85 kW) differs from 03:00
    (0.382 kW) and is lost without a trace; read as CEST (+02:00) it would land on 01:MM instead."""
    channel = uci["channels"]["Global_active_power"]
    before = stored_days(channel)
    by_wall_clock = {row["date_time"]: row for row in uci["rows"]}
    assert by_wall_clock["2008-03-30 02:00:00"]["Global_active_power"] != by_wall_clock["2008-03-30 03:00:00"]["Global_active_power"]
    assert all(by_wall_clock[f"2008-03-30 02:{m:02d}:00"]["Global_active_power"] == by_wall_clock[f"2008-03-30 03:{m:02d}:00"]["Global_active_power"]
               for m in range(1, 60))

    model = channel.device.device_model
    model.parameter_map = logger_map("Etc/GMT-1")  # POSIX sign: Etc/GMT-1 is UTC+01:00, French standard time
    model.save()
    outcome = replay_dead_letters(DeadLetter.objects.all())

    assert (outcome.stored, outcome.failed_again) == (60, 0)
    assert DeadLetter.objects.count() == 0
    assert Reading.objects.filter(channel=channel).count() == 11460  # nothing new: every instant was taken
    three_am = datetime(2008, 3, 30, 3, tzinfo=PARIS)
    assert Reading.objects.get(channel=channel, time=three_am).value == pytest.approx(382.0)
    assert stored_days(channel) == before


# The repeated hour: 2008-10-26, clocks go back from 03:00 CEST to 02:00 CET.

FALL_BACK_DAY = date(2008, 10, 26)


def autumn_logger_messages() -> list[tuple[str, datetime, dict]]:
    """(wall clock, true instant, row) for 2008-10-25 00:00 to 2008-10-28 00:00 local, minute by minute, as a logger
    following the French clock writes it: 02:00-02:59 of the 26th twice. The values are the UCI file's rows in order."""
    rows = iter(read_rows())
    instant = datetime(2008, 10, 25, tzinfo=PARIS).astimezone(UTC)
    end = datetime(2008, 10, 28, tzinfo=PARIS).astimezone(UTC)
    written = []
    while instant <= end:
        written.append((instant.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S"), instant, next(rows)))
        instant += ONE_MINUTE
    return written


@pytest.fixture
def autumn():
    channels = make_logger("sceaux-autumn")
    written = autumn_logger_messages()
    # Published as each minute closes.
    ingest_in_batches([{"topic": "uci/sceaux-autumn/minute", "payload": payload(wall, row),
                        "received_at": (instant + ONE_MINUTE).isoformat()} for wall, instant, row in written])
    return {"channels": channels, "written": written}


def test_the_repeated_hour_is_refused_as_ambiguous_and_the_rest_adds_up(autumn):
    written, channel = autumn["written"], autumn["channels"]["Global_active_power"]
    repeated = [f"2008-10-26 02:{minute:02d}:00" for minute in range(60)]
    assert [wall for wall, _, _ in written if wall.startswith("2008-10-26 02:")] == repeated * 2
    assert len(written) == (24 + 25 + 24) * 60 + 1

    letters = list(DeadLetter.objects.order_by("received_at"))
    assert len(letters) == 120
    assert [letter.payload.split('"')[3] for letter in letters] == repeated * 2  # both passes, in the order they came
    for letter in letters:
        assert "is ambiguous in Europe/Paris: the clocks went back and it happened twice" in letter.reason, letter.reason
    assert Reading.objects.filter(channel=channel).count() == len(written) - 120

    kept = [(wall, row) for wall, _, row in written if not wall.startswith("2008-10-26 02:")]
    expected = expected_wh_by_day([{**row, "date_time": wall} for wall, row in kept], "Global_active_power")
    # 01:59 CEST is the last minute before the refused hour: the next stored reading is 03:00 CET, 2 h 1 min later,
    # beyond the 15-minute maximum gap, so that minute's end is unknown and it is not counted. Nor is the last row's.
    expected[FALL_BACK_DAY] -= WH_PER_MINUTE["Global_active_power"](dict(kept)["2008-10-26 01:59:00"]["Global_active_power"])
    del expected[date(2008, 10, 28)]
    measured = bucket_days(channel)
    assert_days_agree(measured, stored_days(channel))
    assert list(measured) == [date(2008, 10, 25), FALL_BACK_DAY, date(2008, 10, 27)]
    for day, wh in expected.items():
        assert measured[day][0] == pytest.approx(float(wh), rel=1e-6), day
    assert day_seconds(FALL_BACK_DAY) == 25 * 3600
    assert measured[FALL_BACK_DAY][1] == pytest.approx((2 * 60 - 1 + 21 * 60) * 60)  # 00:00-01:59 CEST and 03:00-24:00 CET
    assert measured[date(2008, 10, 25)][1] == measured[date(2008, 10, 27)][1] == 24 * 3600


def test_the_repeated_hour_is_recovered_by_replaying_each_pass_with_its_offset(autumn):
    """The payloads of the two passes are the same wall clock: only their order tells them apart. An operator
    replays the first pass read as CEST (Etc/GMT-2, UTC+02:00) and the second as CET (Etc/GMT-1), then puts the
    zone back. The late readings close the gap and the day has all its 25 hours."""
    written, channel = autumn["written"], autumn["channels"]["Global_active_power"]
    model = channel.device.device_model

    unchanged = replay_dead_letters(DeadLetter.objects.all())
    assert (unchanged.stored, unchanged.failed_again) == (0, 120)
    assert set(DeadLetter.objects.values_list("replay_count", flat=True)) == {1}

    clocks_go_back = datetime(2008, 10, 26, 1, tzinfo=UTC)  # 03:00 CEST, which became 02:00 CET
    for zone, letters in (("Etc/GMT-2", DeadLetter.objects.filter(received_at__lte=clocks_go_back)),
                          ("Etc/GMT-1", DeadLetter.objects.filter(received_at__gt=clocks_go_back))):
        model.parameter_map = logger_map(zone)
        model.save()
        outcome = replay_dead_letters(letters)
        assert (outcome.stored, outcome.failed_again) == (60, 0), zone
    model.parameter_map = logger_map()
    model.save()

    assert DeadLetter.objects.count() == 0
    assert Reading.objects.filter(channel=channel).count() == len(written)
    expected = expected_wh_by_day([{**row, "date_time": wall} for wall, _, row in written[:-1]], "Global_active_power")
    measured = bucket_days(channel)
    assert_days_agree(measured, stored_days(channel))
    for day, wh in expected.items():
        assert measured[day][0] == pytest.approx(float(wh), rel=1e-6), day
    assert measured[FALL_BACK_DAY][1] == pytest.approx(25 * 3600)
