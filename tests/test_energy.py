"""Counter energy on plain samples: intervals between readings and their 15-minute UTC buckets. No database."""

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from telemetry.energy import (
    BUCKET,
    Interval,
    Sample,
    bucket_ceil,
    bucket_floor,
    Rules,
    counter_energy,
    spread_into_buckets,
)

UTC = timezone.utc


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


# E01: site Europe/Madrid, meter M1, lifetime register in kWh; the supply was lost between 09:00 and 09:30.
E01_SAMPLES = [
    Sample(at("2024-05-10T08:00:00+02:00"), 1520.40),
    Sample(at("2024-05-10T09:00:00+02:00"), 1520.90),
    Sample(at("2024-05-10T09:30:00+02:00"), 0.00),  # first reading after the outage
    Sample(at("2024-05-10T10:00:00+02:00"), 0.30),
    Sample(at("2024-05-10T11:00:00+02:00"), 0.75),
]


def counter_intervals(samples) -> list[Interval]:
    return counter_energy(samples, Rules()).intervals


def energy_per_local_hour(buckets, zone: str) -> dict[int, float]:
    hours = defaultdict(float)
    for start, total in buckets.items():
        hours[start.astimezone(ZoneInfo(zone)).hour] += total.energy_wh
    return dict(hours)


# counter_intervals


def test_counter_energy_is_the_difference_of_consecutive_samples():
    samples = [Sample(utc("2024-01-01T00:00"), 100.0), Sample(utc("2024-01-01T01:00"), 103.5)]

    assert counter_intervals(samples) == [Interval(utc("2024-01-01T00:00"), utc("2024-01-01T01:00"), 3.5)]


def test_counter_intervals_follow_measurement_time_not_list_order():
    shuffled = [
        Sample(utc("2024-01-01T02:00"), 106.0),
        Sample(utc("2024-01-01T00:00"), 100.0),
        Sample(utc("2024-01-01T01:00"), 101.0),
    ]

    intervals = counter_intervals(shuffled)

    assert [(i.start, i.end, i.energy_wh) for i in intervals] == [
        (utc("2024-01-01T00:00"), utc("2024-01-01T01:00"), 1.0),
        (utc("2024-01-01T01:00"), utc("2024-01-01T02:00"), 5.0),
    ]


def test_a_late_sample_is_not_mistaken_for_a_reset():
    # Arrival order 00:00, 02:00, 01:00: in arrival order 106 -> 101 would look like a drop.
    arrival_order = [
        Sample(utc("2024-01-01T00:00"), 100.0),
        Sample(utc("2024-01-01T02:00"), 106.0),
        Sample(utc("2024-01-01T01:00"), 101.0),
    ]

    assert sum(i.energy_wh for i in counter_intervals(arrival_order)) == 6.0


def test_samples_with_the_same_time_are_one_measurement():
    repeated = [
        Sample(utc("2024-01-01T00:00"), 100.0),
        Sample(utc("2024-01-01T01:00"), 101.0),
        Sample(utc("2024-01-01T01:00"), 101.0),
        Sample(utc("2024-01-01T02:00"), 102.0),
    ]

    intervals = counter_intervals(repeated)

    assert len(intervals) == 2
    assert sum(i.energy_wh for i in intervals) == 2.0


def test_the_same_instant_in_different_offsets_is_one_measurement():
    repeated = [
        Sample(at("2024-01-01T00:00:00+00:00"), 100.0),
        Sample(at("2024-01-01T02:00:00+01:00"), 101.0),
        Sample(at("2024-01-01T01:00:00+00:00"), 101.0),
    ]

    assert len(counter_intervals(repeated)) == 1


def test_fewer_than_two_samples_give_no_interval():
    assert counter_intervals([]) == []
    assert counter_intervals([Sample(utc("2024-01-01T00:00"), 5.0)]) == []


def test_a_flat_counter_gives_zero_energy():
    samples = [Sample(utc("2024-01-01T00:00"), 42.0), Sample(utc("2024-01-01T01:00"), 42.0)]

    assert counter_intervals(samples)[0].energy_wh == 0.0


def test_e01_reset_interval_counts_the_new_value_from_zero():
    # 09:00 1520.90 -> 09:30 0.00: nothing is known about the outage, so 0, never negative.
    reset = counter_intervals(E01_SAMPLES)[1]

    assert (reset.start, reset.end) == (at("2024-05-10T09:00:00+02:00"), at("2024-05-10T09:30:00+02:00"))
    assert reset.energy_wh == 0.0


def test_a_drop_counts_the_value_after_the_reset_in_full():
    # The counter restarted from zero somewhere in the interval and already counted 0.4 again.
    samples = [Sample(utc("2024-01-01T00:00"), 900.0), Sample(utc("2024-01-01T01:00"), 0.4)]

    assert counter_intervals(samples)[0].energy_wh == 0.4


def test_e01_counter_reset_gives_1_25_kwh_not_a_negative_total():
    total = sum(i.energy_wh for i in counter_intervals(E01_SAMPLES))

    assert total == pytest.approx(1.25, abs=1e-9)


def test_e01_hourly_split_is_0_50_0_30_0_45():
    buckets = spread_into_buckets(counter_intervals(E01_SAMPLES))

    hours = energy_per_local_hour(buckets, "Europe/Madrid")

    assert hours == {
        8: pytest.approx(0.50, abs=1e-9),
        9: pytest.approx(0.30, abs=1e-9),
        10: pytest.approx(0.45, abs=1e-9),
    }


# bucket_floor / bucket_ceil


def test_bucket_floor_and_ceil_of_a_boundary_are_the_boundary():
    boundary = utc("2024-01-01T10:15")

    assert bucket_floor(boundary) == boundary
    assert bucket_ceil(boundary) == boundary


def test_bucket_floor_and_ceil_off_a_boundary_are_the_surrounding_boundaries():
    inside = utc("2024-01-01T10:22:30")

    assert bucket_floor(inside) == utc("2024-01-01T10:15")
    assert bucket_ceil(inside) == utc("2024-01-01T10:30")


def test_bucket_floor_and_ceil_one_microsecond_off_a_boundary():
    boundary = utc("2024-01-01T10:30")
    tick = timedelta(microseconds=1)

    assert bucket_floor(boundary + tick) == boundary
    assert bucket_ceil(boundary - tick) == boundary
    assert bucket_ceil(boundary + tick) == boundary + BUCKET


def test_buckets_are_cut_on_utc_quarter_hours_whatever_the_offset():
    # Kathmandu is UTC+05:45: 10:07 local is 04:22 UTC.
    assert bucket_floor(at("2024-06-01T10:07:00+05:45")) == utc("2024-06-01T04:15")


# spread_into_buckets


def test_an_interval_inside_one_bucket_puts_all_its_energy_there():
    interval = Interval(utc("2024-01-01T10:02"), utc("2024-01-01T10:07"), 12.0)

    buckets = spread_into_buckets([interval])

    assert list(buckets) == [utc("2024-01-01T10:00")]
    assert buckets[utc("2024-01-01T10:00")].energy_wh == 12.0


def test_an_interval_across_buckets_splits_in_proportion_to_time():
    # 10:10 -> 10:50 is 40 minutes: 5 in the 10:00 bucket, 15, 15, then 5 in the 10:45 bucket.
    interval = Interval(utc("2024-01-01T10:10"), utc("2024-01-01T10:50"), 80.0)

    buckets = spread_into_buckets([interval])

    assert {start: total.energy_wh for start, total in buckets.items()} == {
        utc("2024-01-01T10:00"): pytest.approx(10.0, abs=1e-9),
        utc("2024-01-01T10:15"): pytest.approx(30.0, abs=1e-9),
        utc("2024-01-01T10:30"): pytest.approx(30.0, abs=1e-9),
        utc("2024-01-01T10:45"): pytest.approx(10.0, abs=1e-9),
    }


def test_an_interval_ending_on_a_boundary_does_not_touch_the_next_bucket():
    interval = Interval(utc("2024-01-01T10:00"), utc("2024-01-01T10:30"), 6.0)

    buckets = spread_into_buckets([interval])

    assert sorted(buckets) == [utc("2024-01-01T10:00"), utc("2024-01-01T10:15")]


def test_coverage_is_the_share_of_the_bucket_between_known_samples():
    interval = Interval(utc("2024-01-01T10:10"), utc("2024-01-01T10:50"), 80.0)

    buckets = spread_into_buckets([interval])

    assert buckets[utc("2024-01-01T10:00")].coverage == pytest.approx(1 / 3)
    assert buckets[utc("2024-01-01T10:15")].coverage == 1.0
    assert buckets[utc("2024-01-01T10:45")].coverage == pytest.approx(1 / 3)


def test_consecutive_intervals_sharing_a_bucket_add_energy_and_coverage():
    intervals = [
        Interval(utc("2024-01-01T10:00"), utc("2024-01-01T10:05"), 1.0),
        Interval(utc("2024-01-01T10:05"), utc("2024-01-01T10:15"), 2.0),
    ]

    bucket = spread_into_buckets(intervals)[utc("2024-01-01T10:00")]

    assert bucket.energy_wh == 3.0
    assert bucket.coverage == 1.0


def test_a_gap_between_intervals_leaves_the_bucket_partly_covered():
    intervals = [
        Interval(utc("2024-01-01T10:00"), utc("2024-01-01T10:05"), 1.0),
        Interval(utc("2024-01-01T10:10"), utc("2024-01-01T10:15"), 1.0),
    ]

    bucket = spread_into_buckets(intervals)[utc("2024-01-01T10:00")]

    assert bucket.coverage == pytest.approx(2 / 3)


def test_a_zero_length_interval_adds_nothing():
    instant = utc("2024-01-01T10:00")

    assert spread_into_buckets([Interval(instant, instant, 5.0)]) == {}


def test_spreading_conserves_the_total_energy():
    # Odd lengths and offsets so no bucket share is a round number.
    intervals = [
        Interval(utc("2024-01-01T09:58:17"), utc("2024-01-01T11:03:41"), 1234.567),
        Interval(utc("2024-01-01T11:03:41"), utc("2024-01-01T11:04:02"), 0.013),
        Interval(utc("2024-01-01T11:04:02"), utc("2024-01-02T03:17:59"), 98765.4321),
    ]

    buckets = spread_into_buckets(intervals)

    assert sum(b.energy_wh for b in buckets.values()) == pytest.approx(1234.567 + 0.013 + 98765.4321, abs=1e-9)


def test_spreading_conserves_the_covered_time():
    intervals = [Interval(utc("2024-01-01T09:58:17"), utc("2024-01-01T11:03:41"), 10.0)]

    buckets = spread_into_buckets(intervals)

    assert sum(b.covered_seconds for b in buckets.values()) == pytest.approx(65 * 60 + 24, abs=1e-9)
