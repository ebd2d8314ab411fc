"""Local hours, days and months from counter readings fed through ingest, in the site's own time zone.

Counter values in the cases are kWh; stored energy is Wh, so results are compared in kWh.
"""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from assets.models import Channel, Device, DeviceModel, Organisation, Site
from telemetry.ingest import ingest_messages
from telemetry.localtime import energy_by_local_period
from telemetry.models import DeadLetter, EnergyBucket, Reading, UnclaimedMessage
from telemetry.parameter_maps import IOTWATT_NATIVE

pytestmark = pytest.mark.django_db

UTC = timezone.utc


def make_channel(zone: str, device: str = "m1", key: str = "main") -> Channel:
    """An organisation, a site in `zone`, a native IotWatt device and its energy channel."""
    organisation, _ = Organisation.objects.get_or_create(slug="acme", defaults={"name": "Acme"})
    site = Site.objects.create(organisation=organisation, name=f"Site of {device}", timezone=zone)
    model, _ = DeviceModel.objects.get_or_create(
        key="iotwatt-native", defaults={"name": "IotWatt native", "parameter_map": IOTWATT_NATIVE}
    )
    device_row = Device.objects.create(site=site, device_model=model, identifier=device)
    return Channel.objects.create(device=device_row, key=key, metric=Channel.Metric.ENERGY)


def message(device: str, ts: str, kwh, key: str = "main", received_at: str | None = None) -> dict:
    payload = json.dumps({"ts": ts, "channels": {key: {"energy_kwh": kwh}}})
    return {"topic": f"iotwatt/{device}/telemetry", "payload": payload, "received_at": received_at or ts}


def feed(readings: list[tuple[str, float]], device: str = "m1") -> None:
    """Ingest (ts, kWh) counter readings of `device`, all in one batch."""
    ingest_messages([message(device, ts, kwh) for ts, kwh in readings])


def periods(channel: Channel, period: str) -> list:
    return energy_by_local_period([channel.id], channel.device.site.timezone, period)


def kwh(value: float):
    return pytest.approx(value * 1000, abs=1e-6)  # Wh, to a micro-watt-hour


def by_start(rows) -> dict[str, float]:
    return {row.start.isoformat(): row.energy_wh for row in rows}


def bucket_rows(channel: Channel) -> list[tuple]:
    return list(EnergyBucket.objects.filter(channel=channel).order_by("start").values_list("start", "energy_wh", "covered_seconds"))


def assert_same_buckets(actual: list[tuple], expected: list[tuple]) -> None:
    """Energy added bucket by bucket may differ from a recomputation in the last bits of a float, no more."""
    assert [start for start, _, _ in actual] == [start for start, _, _ in expected]
    for (_, energy, covered), (_, expected_energy, expected_covered) in zip(actual, expected):
        assert energy == pytest.approx(expected_energy, rel=1e-12, abs=1e-9)
        assert covered == pytest.approx(expected_covered, rel=1e-12, abs=1e-9)


def hourly_readings(first_utc: datetime, count: int, first_kwh: float, step_kwh: float) -> list[tuple[str, float]]:
    return [((first_utc + timedelta(hours=i)).isoformat(), first_kwh + step_kwh * i) for i in range(count)]


# E01: counter reset after a power loss

E01 = [
    ("2024-05-10T08:00:00+02:00", 1520.40),
    ("2024-05-10T09:00:00+02:00", 1520.90),
    ("2024-05-10T09:30:00+02:00", 0.00),  # first reading after the outage
    ("2024-05-10T10:00:00+02:00", 0.30),
    ("2024-05-10T11:00:00+02:00", 0.75),
]


def test_e01_counter_reset_gives_1_25_kwh_for_the_day():
    channel = make_channel("Europe/Madrid")
    feed(E01)

    assert by_start(periods(channel, "day")) == {"2024-05-10T00:00:00+02:00": kwh(1.25)}


def test_e01_counter_reset_hourly_split():
    channel = make_channel("Europe/Madrid")
    feed(E01)

    assert by_start(periods(channel, "hour")) == {
        "2024-05-10T08:00:00+02:00": kwh(0.50),
        "2024-05-10T09:00:00+02:00": kwh(0.30),
        "2024-05-10T10:00:00+02:00": kwh(0.45),
    }


# E06: the same message delivered twice (QoS 1), counter equivalent of 3600 W for 30 s

E06 = [
    ("2024-02-01T12:00:00+01:00", 100.000),
    ("2024-02-01T12:00:10+01:00", 100.010),
    ("2024-02-01T12:00:10+01:00", 100.010),  # re-delivered
    ("2024-02-01T12:00:20+01:00", 100.020),
    ("2024-02-01T12:00:30+01:00", 100.030),
]


def test_e06_a_repeated_message_is_stored_once():
    channel = make_channel("Europe/Oslo")
    feed(E06)

    assert Reading.objects.filter(channel=channel).count() == 4


def test_e06_a_repeated_message_adds_no_energy():
    channel = make_channel("Europe/Oslo")
    feed(E06)

    assert by_start(periods(channel, "hour")) == {"2024-02-01T12:00:00+01:00": kwh(0.030)}


def test_e06_a_repeat_in_a_later_batch_adds_no_energy():
    channel = make_channel("Europe/Oslo")
    feed(E06)
    feed(E06[2:3])

    assert by_start(periods(channel, "hour")) == {"2024-02-01T12:00:00+01:00": kwh(0.030)}


# E07: a late message with an older timestamp, after the local midnight (lifetime counter)
# The "today" register of the case as a lifetime counter: 5000.00 at the start of 2025-07-08; 0.01 kWh
# "today" at 00:00:10 means 5018.21 at midnight. The 23:59:59 message arrives after the 00:00:20 one.

E07_ARRIVAL_ORDER = [
    ("2025-07-08T00:00:00+01:00", 5000.00, "2025-07-08T00:00:01+01:00"),
    ("2025-07-08T23:59:50+01:00", 5018.20, "2025-07-08T23:59:50+01:00"),
    ("2025-07-09T00:00:00+01:00", 5018.21, "2025-07-09T00:00:01+01:00"),
    ("2025-07-09T00:00:10+01:00", 5018.22, "2025-07-09T00:00:12+01:00"),
    ("2025-07-09T00:00:20+01:00", 5018.24, "2025-07-09T00:00:22+01:00"),
    ("2025-07-08T23:59:59+01:00", 5018.21, "2025-07-09T00:00:32+01:00"),  # late
]


def feed_e07_in_arrival_order() -> None:
    for ts, value, received_at in E07_ARRIVAL_ORDER:
        ingest_messages([message("m1", ts, value, received_at=received_at)])


def test_e07_late_message_is_booked_by_measurement_time():
    channel = make_channel("Europe/London")
    feed_e07_in_arrival_order()

    assert by_start(periods(channel, "day")) == {
        "2025-07-08T00:00:00+01:00": kwh(18.21),
        "2025-07-09T00:00:00+01:00": kwh(0.03),
    }


def test_e07_late_message_gives_the_same_buckets_as_in_order_delivery():
    late = make_channel("Europe/London", device="late")
    in_order = make_channel("Europe/London", device="in-order")
    for ts, value, received_at in E07_ARRIVAL_ORDER:
        ingest_messages([message("late", ts, value, received_at=received_at)])
    ingest_messages([message("in-order", ts, value) for ts, value, _ in sorted(E07_ARRIVAL_ORDER)])

    assert bucket_rows(late) == bucket_rows(in_order)


# E11: the day starts at local midnight, not UTC midnight

E11 = [
    ("2024-01-14T23:00:00+01:00", 100.0),
    ("2024-01-15T00:00:00+01:00", 101.0),
    ("2024-01-15T01:00:00+01:00", 101.5),
    ("2024-01-16T00:00:00+01:00", 121.0),
    ("2024-01-16T01:00:00+01:00", 122.0),
]


def test_e11_local_day_is_cut_at_local_midnight():
    channel = make_channel("Europe/Madrid")
    feed(E11)

    days = by_start(periods(channel, "day"))

    assert days["2024-01-15T00:00:00+01:00"] == kwh(20.0)


def test_e11_hours_either_side_of_local_midnight_go_to_their_own_days():
    channel = make_channel("Europe/Madrid")
    feed(E11)

    assert by_start(periods(channel, "day")) == {
        "2024-01-14T00:00:00+01:00": kwh(1.0),
        "2024-01-15T00:00:00+01:00": kwh(20.0),
        "2024-01-16T00:00:00+01:00": kwh(1.0),
    }


def test_e11_a_fully_measured_local_day_has_full_coverage():
    channel = make_channel("Europe/Madrid")
    feed(E11)

    coverage = {row.local_date.isoformat(): row.coverage for row in periods(channel, "day")}

    assert coverage["2024-01-15"] == pytest.approx(1.0)
    assert coverage["2024-01-14"] == pytest.approx(1 / 24)


# E12: spring-forward day, Europe/Stockholm, 1.0 kWh per UTC hour

E12 = hourly_readings(datetime(2023, 3, 25, 23, tzinfo=UTC), 25, 500.0, 1.0)  # 23:00Z .. 2023-03-26T23:00Z


def test_e12_spring_forward_day_is_23_kwh():
    channel = make_channel("Europe/Stockholm")
    feed(E12)

    days = by_start(periods(channel, "day"))

    assert days["2023-03-26T00:00:00+01:00"] == kwh(23.0)


def test_e12_spring_forward_day_has_23_hourly_rows_without_02():
    channel = make_channel("Europe/Stockholm")
    feed(E12)

    hours = [row for row in periods(channel, "hour") if row.local_date.isoformat() == "2023-03-26"]

    assert [row.start.hour for row in hours] == [0, 1] + list(range(3, 24))
    assert [row.energy_wh for row in hours] == [kwh(1.0)] * 23


def test_e12_next_local_midnight_hour_belongs_to_the_next_day_only():
    channel = make_channel("Europe/Stockholm")
    feed(E12)

    days = by_start(periods(channel, "day"))

    assert days == {"2023-03-26T00:00:00+01:00": kwh(23.0), "2023-03-27T00:00:00+02:00": kwh(1.0)}


def test_e12_spring_forward_day_fully_measured_has_full_coverage():
    channel = make_channel("Europe/Stockholm")
    feed(E12)

    day = next(row for row in periods(channel, "day") if row.local_date.isoformat() == "2023-03-26")

    assert day.coverage == pytest.approx(1.0)


# Fall-back day: Europe/Berlin 2016-10-30 has 25 hours; 02:00 happens twice

FALL_BACK = hourly_readings(datetime(2016, 10, 29, 22, tzinfo=UTC), 26, 3000.0, 1.0)  # local midnight to midnight


def test_fall_back_day_is_25_kwh():
    channel = make_channel("Europe/Berlin")
    feed(FALL_BACK)

    assert by_start(periods(channel, "day")) == {"2016-10-30T00:00:00+02:00": kwh(25.0)}


def test_fall_back_day_has_25_hourly_rows():
    channel = make_channel("Europe/Berlin")
    feed(FALL_BACK)

    hours = periods(channel, "hour")

    assert [row.start.hour for row in hours] == [0, 1, 2, 2] + list(range(3, 24))
    assert [row.energy_wh for row in hours] == [kwh(1.0)] * 25


def test_fall_back_repeated_hour_is_two_rows_with_different_offsets():
    channel = make_channel("Europe/Berlin")
    feed(FALL_BACK)

    twice = [row.start.isoformat() for row in periods(channel, "hour") if row.start.hour == 2]

    assert twice == ["2016-10-30T02:00:00+02:00", "2016-10-30T02:00:00+01:00"]


def test_fall_back_day_fully_measured_has_full_coverage():
    channel = make_channel("Europe/Berlin")
    feed(FALL_BACK)

    assert [row.coverage for row in periods(channel, "day")] == [pytest.approx(1.0)]


# E13: the month in which DST starts

E13 = [
    ("2024-03-01T00:00:00+01:00", 700.0),
    ("2024-03-31T23:00:00+02:00", 1000.4),
    ("2024-04-01T00:00:00+02:00", 1000.9),
    ("2024-04-01T01:00:00+02:00", 1001.3),
]


def test_e13_march_includes_its_last_hour_after_the_dst_change():
    channel = make_channel("Europe/Berlin")
    feed(E13)

    months = by_start(periods(channel, "month"))

    assert months["2024-03-01T00:00:00+01:00"] == kwh(300.9)


def test_e13_april_starts_at_local_midnight_in_summer_time():
    channel = make_channel("Europe/Berlin")
    feed(E13)

    months = periods(channel, "month")

    assert [row.start.isoformat() for row in months] == ["2024-03-01T00:00:00+01:00", "2024-04-01T00:00:00+02:00"]
    assert months[1].start.astimezone(UTC) == datetime(2024, 3, 31, 22, tzinfo=UTC)


def test_e13_fully_measured_dst_month_has_full_coverage():
    channel = make_channel("Europe/Berlin")
    feed(E13)

    march = periods(channel, "month")[0]

    assert march.coverage == pytest.approx(1.0)


# E14: daily totals around the spring-forward day

E14 = [
    ("2021-03-27T00:00:00+01:00", 3976.0),
    ("2021-03-28T00:00:00+01:00", 4000.0),
    ("2021-03-29T00:00:00+02:00", 4021.0),
    ("2021-03-30T00:00:00+02:00", 4045.0),
]


def test_e14_days_around_spring_forward():
    channel = make_channel("Europe/Berlin")
    feed(E14)

    assert by_start(periods(channel, "day")) == {
        "2021-03-27T00:00:00+01:00": kwh(24.0),
        "2021-03-28T00:00:00+01:00": kwh(21.0),
        "2021-03-29T00:00:00+02:00": kwh(24.0),
    }


def test_e14_every_day_around_spring_forward_is_fully_covered():
    channel = make_channel("Europe/Berlin")
    feed(E14)

    assert [row.coverage for row in periods(channel, "day")] == [pytest.approx(1.0)] * 3


# E15: the last hour of the day

E15 = [(f"2016-03-03T{hour:02d}:00:00+01:00", 1000.0 + 0.5 * hour) for hour in range(24)] + [
    ("2016-03-04T00:00:00+01:00", 1012.7)
]


def test_e15_day_has_24_hourly_rows():
    channel = make_channel("Europe/Amsterdam")
    feed(E15)

    hours = periods(channel, "hour")

    assert [row.start.hour for row in hours] == list(range(24))


def test_e15_last_hour_of_the_day_is_1_2_kwh():
    channel = make_channel("Europe/Amsterdam")
    feed(E15)

    last = periods(channel, "hour")[-1]

    assert last.start.isoformat() == "2016-03-03T23:00:00+01:00"
    assert last.energy_wh == kwh(1.2)


def test_e15_day_total_includes_the_last_hour():
    channel = make_channel("Europe/Amsterdam")
    feed(E15)

    assert by_start(periods(channel, "day")) == {"2016-03-03T00:00:00+01:00": kwh(12.7)}


# Zones with :30 and :45 offsets


@pytest.mark.parametrize("zone, offset", [("Asia/Kolkata", "+05:30"), ("Asia/Kathmandu", "+05:45")])
def test_half_and_quarter_hour_zones_cut_days_at_local_midnight(zone, offset):
    channel = make_channel(zone)
    feed([
        (f"2024-06-01T00:00:00{offset}", 100.0),
        (f"2024-06-02T00:00:00{offset}", 110.0),
        (f"2024-06-03T00:00:00{offset}", 130.0),
    ])

    assert by_start(periods(channel, "day")) == {
        f"2024-06-01T00:00:00{offset}": kwh(10.0),
        f"2024-06-02T00:00:00{offset}": kwh(20.0),
    }


@pytest.mark.parametrize("zone, offset", [("Asia/Kolkata", "+05:30"), ("Asia/Kathmandu", "+05:45")])
def test_half_and_quarter_hour_zones_cut_hours_at_local_hours(zone, offset):
    channel = make_channel(zone)
    feed([
        (f"2024-06-01T10:00:00{offset}", 50.0),
        (f"2024-06-01T11:00:00{offset}", 51.0),
        (f"2024-06-01T12:00:00{offset}", 53.0),
    ])

    assert by_start(periods(channel, "hour")) == {
        f"2024-06-01T10:00:00{offset}": kwh(1.0),
        f"2024-06-01T11:00:00{offset}": kwh(2.0),
    }


@pytest.mark.parametrize("zone, offset", [("Asia/Kolkata", "+05:30"), ("Asia/Kathmandu", "+05:45")])
def test_half_and_quarter_hour_zones_fully_measured_hours_have_full_coverage(zone, offset):
    channel = make_channel(zone)
    feed([(f"2024-06-01T10:00:00{offset}", 50.0), (f"2024-06-01T11:00:00{offset}", 51.0)])

    assert [row.coverage for row in periods(channel, "hour")] == [pytest.approx(1.0)]


# The same readings, however they arrive, give the same buckets

# Irregular times, a reset, and the Berlin fall-back night, so buckets are split and crossed.
IRREGULAR = [
    ("2016-10-29T23:47:13+02:00", 812.345),
    ("2016-10-30T00:03:59+02:00", 812.512),
    ("2016-10-30T01:29:01+02:00", 813.07),
    ("2016-10-30T02:14:30+02:00", 813.9),
    ("2016-10-30T02:41:07+01:00", 815.25),
    ("2016-10-30T03:02:00+01:00", 0.12),  # reset
    ("2016-10-30T03:58:44+01:00", 1.731),
    ("2016-10-30T05:00:00+01:00", 2.5),
    ("2016-10-30T07:22:18+01:00", 4.0625),
]


def reference_buckets() -> list[tuple]:
    reference = make_channel("Europe/Berlin", device="reference")
    ingest_messages([message("reference", ts, value) for ts, value in IRREGULAR])
    return bucket_rows(reference)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_shuffled_messages_give_identical_buckets(seed):
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="shuffled")
    shuffled = random.Random(seed).sample(IRREGULAR, len(IRREGULAR))

    ingest_messages([message("shuffled", ts, value) for ts, value in shuffled])

    assert_same_buckets(bucket_rows(channel), expected)


def test_duplicated_messages_give_identical_buckets():
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="duplicated")

    ingest_messages([message("duplicated", ts, value) for ts, value in IRREGULAR + IRREGULAR[::2] + IRREGULAR[3:5]])

    assert_same_buckets(bucket_rows(channel), expected)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_messages_split_into_shuffled_batches_give_identical_buckets(seed):
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="batched")
    rng = random.Random(seed)
    shuffled = rng.sample(IRREGULAR, len(IRREGULAR))
    cuts = sorted(rng.sample(range(1, len(shuffled)), 3))

    for batch in (shuffled[a:b] for a, b in zip([0] + cuts, cuts + [len(shuffled)])):
        ingest_messages([message("batched", ts, value) for ts, value in batch])

    assert_same_buckets(bucket_rows(channel), expected)


def test_one_message_per_batch_newest_first_gives_identical_buckets():
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="one-by-one")

    for ts, value in reversed(IRREGULAR):
        ingest_messages([message("one-by-one", ts, value)])

    assert_same_buckets(bucket_rows(channel), expected)


def test_redelivering_every_batch_gives_identical_buckets():
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="redelivered")
    batches = [IRREGULAR[:4], IRREGULAR[4:]]

    for batch in batches + batches:
        ingest_messages([message("redelivered", ts, value) for ts, value in batch])

    assert_same_buckets(bucket_rows(channel), expected)


# Messages that cannot be used


def test_a_message_for_an_unknown_device_waits_for_adoption():
    make_channel("Europe/Berlin")

    ingest_messages([message("nobody", "2024-01-01T00:00:00+01:00", 1.0)])

    assert not DeadLetter.objects.exists()
    kept = UnclaimedMessage.objects.get()
    assert (kept.topic, kept.pending_device.identifier) == ("iotwatt/nobody/telemetry", "nobody")


def test_a_message_that_is_not_json_becomes_a_dead_letter_with_its_payload():
    make_channel("Europe/Berlin")
    broken = {"topic": "iotwatt/m1/telemetry", "payload": "ts=2024 main=1.0", "received_at": "2024-01-01T00:00:05+00:00"}

    ingest_messages([broken])

    dead = DeadLetter.objects.get()
    assert dead.payload == "ts=2024 main=1.0"
    assert "not JSON" in dead.reason


def test_valid_messages_in_a_batch_with_dead_letters_are_stored():
    channel = make_channel("Europe/Berlin")
    batch = [
        message("m1", "2024-01-01T00:00:00+01:00", 10.0),
        message("nobody", "2024-01-01T00:30:00+01:00", 11.0),
        {"topic": "iotwatt/m1/telemetry", "payload": "{not json", "received_at": "2024-01-01T00:30:05+01:00"},
        message("m1", "2024-01-01T01:00:00+01:00", 12.0),
    ]

    result = ingest_messages(batch)

    assert (result.readings, result.dead_letters, result.pending) == (2, 1, 1)
    assert Reading.objects.filter(channel=channel).count() == 2
    assert by_start(periods(channel, "hour")) == {"2024-01-01T00:00:00+01:00": kwh(2.0)}


def test_a_bad_channel_value_is_a_dead_letter_while_the_rest_of_the_message_is_stored():
    good = make_channel("Europe/Berlin", key="good")
    Channel.objects.create(device=good.device, key="bad", metric=Channel.Metric.ENERGY)
    payload = json.dumps({"ts": "2024-01-01T00:00:00+01:00", "channels": {"good": {"energy_kwh": 1.0}, "bad": {"energy_kwh": None}}})

    ingest_messages([{"topic": "iotwatt/m1/telemetry", "payload": payload, "received_at": "2024-01-01T00:00:01+01:00"}])

    assert list(Reading.objects.values_list("channel_id", "value")) == [(good.id, 1000.0)]
    assert "'bad'" in DeadLetter.objects.get().reason


def test_a_reading_for_a_channel_the_device_does_not_have_is_a_dead_letter():
    channel = make_channel("Europe/Berlin")

    ingest_messages([message("m1", "2024-01-01T00:00:00+01:00", 1.0, key="unknown")])

    assert not Reading.objects.filter(channel=channel).exists()
    assert "no energy channel 'unknown'" in DeadLetter.objects.get().reason


def test_a_message_that_makes_the_decoder_raise_does_not_stop_the_batch():
    channel = make_channel("Europe/Berlin")
    batch = [
        message("m1", "2024-01-01T00:00:00+01:00", 10.0),
        message("m1", "9999-12-31T23:59:59-01:00", 11.0),
        message("m1", "2024-01-01T01:00:00+01:00", 12.0),
    ]

    ingest_messages(batch)

    assert Reading.objects.filter(channel=channel).count() == 2
    assert DeadLetter.objects.count() == 1


def test_the_energy_table_prints_both_hours_of_the_dst_fall_back_day():
    from io import StringIO

    from django.core.management import call_command

    channel = make_channel("Europe/Berlin")
    # Hourly readings across 2016-10-30 (25 local hours), 1 kWh an hour.
    feed(hourly_readings(datetime(2016, 10, 29, 22, tzinfo=UTC), 26, 100.0, 1.0))
    out = StringIO()

    call_command("energy_table", str(channel.device.site_id), "--period", "hour", stdout=out)

    rows = [line for line in out.getvalue().splitlines() if line.startswith("2016-10-30")]
    assert len(rows) == 25
    assert [r.split()[1] for r in rows if " 02:00" in r] == ["02:00+0200", "02:00+0100"]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_in_order_batches_added_to_the_buckets_give_the_recomputed_buckets(batch_size):
    """The in-order path adds each batch's energy without reading back: it must equal the recomputation."""
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="in-order")

    for i in range(0, len(IRREGULAR), batch_size):
        ingest_messages([message("in-order", ts, value) for ts, value in IRREGULAR[i : i + batch_size]])

    assert_same_buckets(bucket_rows(channel), expected)


def test_a_late_reading_after_in_order_batches_recomputes_what_it_touches():
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="late")
    late = IRREGULAR[7]

    for ts, value in IRREGULAR[:7] + IRREGULAR[8:]:
        ingest_messages([message("late", ts, value)])
    ingest_messages([message("late", *late)])

    assert_same_buckets(bucket_rows(channel), expected)


def test_a_batch_of_repeats_and_new_readings_adds_only_the_new_energy():
    expected = reference_buckets()
    channel = make_channel("Europe/Berlin", device="overlap")

    ingest_messages([message("overlap", ts, value) for ts, value in IRREGULAR[:6]])
    ingest_messages([message("overlap", ts, value) for ts, value in IRREGULAR[3:]])  # 3 repeats, then new ones

    assert_same_buckets(bucket_rows(channel), expected)
