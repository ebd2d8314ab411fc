"""Local calendar periods as UTC instants (telemetry/periods.py): plain Python, no database."""

from datetime import date, datetime, timedelta, timezone

from zoneinfo import ZoneInfo

import pytest

from telemetry.periods import local_midnight, local_periods, period_boundaries, period_label

UTC = timezone.utc


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def labels(zone, period, start, end, anchor_day=1) -> list[str]:
    return [p.label for p in local_periods(zone, period, start, end, anchor_day)]


def hours_of(periods) -> list[float]:
    return [p.seconds / 3600 for p in periods]


# E11: the local day, not the UTC day


def test_e11_madrid_day_is_cut_at_local_midnight():
    assert period_boundaries("Europe/Madrid", "day", date(2024, 1, 15), date(2024, 1, 16)) == [
        utc(2024, 1, 14, 23), utc(2024, 1, 15, 23),
    ]


# E12: spring forward, a 23-hour day without 02:00


def test_e12_stockholm_spring_forward_day_is_23_hours_long():
    (day,) = local_periods("Europe/Stockholm", "day", date(2023, 3, 26), date(2023, 3, 27))

    assert (day.start, day.end, day.seconds) == (utc(2023, 3, 25, 23), utc(2023, 3, 26, 22), 23 * 3600)


def test_e12_stockholm_spring_forward_day_has_23_hours_labelled_without_02():
    hours = local_periods("Europe/Stockholm", "hour", date(2023, 3, 26), date(2023, 3, 27))

    assert [p.local_start.hour for p in hours] == [0, 1] + list(range(3, 24))
    assert hours_of(hours) == [1.0] * 23
    assert hours[2].label == "2023-03-26T03:00+02:00"


# E13: the month in which DST starts


def test_e13_berlin_march_ends_at_local_midnight_in_summer_time():
    assert period_boundaries("Europe/Berlin", "month", date(2024, 3, 1), date(2024, 4, 1)) == [
        utc(2024, 2, 29, 23), utc(2024, 3, 31, 22),
    ]


def test_e13_a_moment_in_the_last_hour_of_march_is_still_march():
    (march,) = local_periods("Europe/Berlin", "month", utc(2024, 3, 31, 21, 30), utc(2024, 3, 31, 21, 45))

    assert march.label == "2024-03"
    assert march.seconds == (31 * 24 - 1) * 3600


# E14: the days around spring forward in Berlin


def test_e14_berlin_days_around_spring_forward():
    days = local_periods("Europe/Berlin", "day", date(2021, 3, 27), date(2021, 3, 30))

    assert [p.label for p in days] == ["2021-03-27", "2021-03-28", "2021-03-29"]
    assert hours_of(days) == [24.0, 23.0, 24.0]


# E15: the last hour of the day


def test_e15_amsterdam_day_has_24_hours_ending_at_next_midnight():
    hours = local_periods("Europe/Amsterdam", "hour", date(2016, 3, 3), date(2016, 3, 4))

    assert len(hours) == 24
    assert hours[-1].label == "2016-03-03T23:00+01:00"
    assert hours[-1].end == local_midnight(ZoneInfo("Europe/Amsterdam"), date(2016, 3, 4))


# Fall back: the repeated hour is two hours


def test_fall_back_day_has_25_hours_with_two_distinct_02_labels():
    hours = local_periods("Europe/Berlin", "hour", date(2016, 10, 30), date(2016, 10, 31))

    assert len(hours) == 25
    assert [p.label for p in hours if p.local_start.hour == 2] == ["2016-10-30T02:00+02:00", "2016-10-30T02:00+01:00"]


def test_fall_back_day_is_25_hours_long():
    (day,) = local_periods("Europe/Berlin", "day", date(2016, 10, 30), date(2016, 10, 31))

    assert day.seconds == 25 * 3600


# Zones with :30 and :45 offsets


@pytest.mark.parametrize(
    "zone, minutes_past_utc_hour",
    [("Asia/Kolkata", 30), ("Asia/Kathmandu", 15), ("Australia/Adelaide", 30)],
)
def test_half_and_quarter_hour_zones_cut_hours_at_their_own_wall_clock_hours(zone, minutes_past_utc_hour):
    hours = local_periods(zone, "hour", date(2024, 6, 1), date(2024, 6, 2))

    assert len(hours) == 24
    assert {p.start.minute for p in hours} == {minutes_past_utc_hour}
    assert {p.local_start.minute for p in hours} == {0}


def test_adelaide_fall_back_day_has_25_half_past_utc_hours():
    hours = local_periods("Australia/Adelaide", "hour", date(2024, 4, 7), date(2024, 4, 8))

    assert len(hours) == 25
    assert [p.label for p in hours if p.local_start.hour == 2] == ["2024-04-07T02:00+10:30", "2024-04-07T02:00+09:30"]


def test_kathmandu_day_starts_at_local_midnight():
    assert period_boundaries("Asia/Kathmandu", "day", date(2024, 6, 1), date(2024, 6, 2)) == [
        utc(2024, 5, 31, 18, 15), utc(2024, 6, 1, 18, 15),
    ]


# A midnight that does not exist


@pytest.mark.parametrize(
    "zone, day, first_instant",
    [
        ("America/Santiago", date(2022, 9, 11), utc(2022, 9, 11, 4)),  # 00:00 -> 01:00-03:00
        ("America/Havana", date(2024, 3, 10), utc(2024, 3, 10, 5)),  # 00:00 -> 01:00-04:00
    ],
)
def test_a_skipped_midnight_starts_the_day_at_its_first_existing_instant(zone, day, first_instant):
    (period,) = local_periods(zone, "day", day, day + timedelta(days=1))

    assert period.start == first_instant
    assert period.local_start.hour == 1
    assert period.label == day.isoformat()
    assert period.seconds == 23 * 3600


def test_a_skipped_midnight_day_has_23_hours_from_01():
    hours = local_periods("America/Santiago", "hour", date(2022, 9, 11), date(2022, 9, 12))

    assert [p.local_start.hour for p in hours] == list(range(1, 24))


def test_a_day_the_zone_skipped_has_no_period():
    assert labels("Pacific/Apia", "day", date(2011, 12, 29), date(2012, 1, 1)) == ["2011-12-29", "2011-12-31"]


# Weeks, months, years


def test_iso_weeks_start_on_monday():
    weeks = local_periods("Europe/Berlin", "week", date(2024, 3, 27), date(2024, 4, 2))

    assert [p.label for p in weeks] == ["2024-W13", "2024-W14"]
    assert weeks[0].local_start.date() == date(2024, 3, 25)
    assert hours_of(weeks)[0] == 7 * 24 - 1  # the week with the spring-forward Sunday


def test_iso_week_53_and_its_year():
    assert labels("Europe/Berlin", "week", date(2020, 12, 28), date(2021, 1, 5)) == ["2020-W53", "2021-W01"]
    assert labels("Europe/Berlin", "week", date(2021, 1, 1), date(2021, 1, 2)) == ["2020-W53"]


def test_leap_year_february_and_year_lengths():
    (february,) = local_periods("UTC", "month", date(2024, 2, 1), date(2024, 3, 1))
    years = local_periods("UTC", "year", date(2023, 6, 1), date(2024, 6, 1))

    assert february.seconds == 29 * 86400
    assert [(p.label, p.seconds / 86400) for p in years] == [("2023", 365.0), ("2024", 366.0)]


def test_a_datetime_start_rounds_down_to_its_local_period():
    assert period_boundaries("Europe/Berlin", "month", utc(2024, 3, 15, 12), utc(2024, 3, 15, 13))[0] == utc(2024, 2, 29, 23)


# Billing periods


@pytest.mark.parametrize(
    "anchor, year, expected_starts",
    [
        (31, 2024, ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]),
        (30, 2023, ["2023-01-30", "2023-02-28", "2023-03-30", "2023-04-30", "2023-05-30"]),
        (29, 2023, ["2023-01-29", "2023-02-28", "2023-03-29", "2023-04-29", "2023-05-29"]),
        (29, 2024, ["2024-01-29", "2024-02-29", "2024-03-29", "2024-04-29", "2024-05-29"]),
    ],
)
def test_billing_anchor_falls_back_to_the_last_day_of_a_short_month(anchor, year, expected_starts):
    assert labels("Europe/Berlin", "billing", date(year, 2, 1), date(year, 6, 1), anchor) == expected_starts


def test_billing_period_with_anchor_31_in_30_day_months():
    starts = labels("Europe/Berlin", "billing", date(2024, 4, 30), date(2024, 7, 1), 31)

    assert starts == ["2024-04-30", "2024-05-31", "2024-06-30"]


def test_billing_period_starts_at_local_midnight_and_spans_a_dst_change():
    (period,) = local_periods("Europe/Berlin", "billing", date(2024, 3, 15), date(2024, 4, 15), 15)

    assert (period.start, period.end) == (utc(2024, 3, 14, 23), utc(2024, 4, 14, 22))


def test_anchor_day_1_is_the_calendar_month():
    assert period_boundaries("Europe/Berlin", "billing", date(2024, 3, 5), date(2024, 4, 5)) == period_boundaries(
        "Europe/Berlin", "month", date(2024, 3, 5), date(2024, 4, 5)
    )


# Bounds and labels


@pytest.mark.parametrize("period", ["hour", "day", "week", "month", "year", "billing"])
def test_boundaries_enclose_the_range_and_increase(period):
    start, end = utc(2024, 3, 30, 7, 20), utc(2024, 4, 2, 5)
    bounds = period_boundaries("America/New_York", period, start, end, anchor_day=17)

    assert bounds[0] <= start and bounds[-1] >= end and len(bounds) >= 2
    assert all(a < b for a, b in zip(bounds, bounds[1:]))
    assert bounds[-2] < end


def test_labels_per_period():
    start = utc(2024, 3, 31, 1)  # 03:00+02:00 in Berlin
    assert [period_label("Europe/Berlin", p, start) for p in ["hour", "day", "month", "year"]] == [
        "2024-03-31T03:00+02:00", "2024-03-31", "2024-03", "2024",
    ]


def test_unknown_period_and_anchor_are_refused():
    with pytest.raises(ValueError):
        period_boundaries("Europe/Berlin", "fortnight", date(2024, 1, 1), date(2024, 1, 2))
    with pytest.raises(ValueError):
        period_boundaries("Europe/Berlin", "billing", date(2024, 1, 1), date(2024, 1, 2), anchor_day=32)


def test_hours_in_a_historical_offset_of_odd_minutes_end():
    """Amsterdam kept +00:19:32 until 1937: hours still cut at its wall-clock :00, and the walk ends."""
    hours = local_periods("Europe/Amsterdam", "hour", date(1920, 6, 1), date(1920, 6, 2))

    assert len(hours) == 24 and {p.local_start.minute for p in hours} == {0}


def test_an_instant_range_of_hours_is_one_hour():
    (hour,) = local_periods("Europe/Berlin", "hour", utc(2024, 6, 1, 10), utc(2024, 6, 1, 10))

    assert hour.start == utc(2024, 6, 1, 10) and hour.seconds == 3600
