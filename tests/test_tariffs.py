"""Tariffs: energy cost under flat and time-of-use rates on the right clock, capacity charges, money rounding. No database.

Expected amounts are worked out by hand from the energy cases (../shared/cases/energy-cases.md)
and the tariff figures, never by the code under test.
"""

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from reports.tariffs import (
    ALL_DAYS,
    WEEKDAYS,
    WEEKEND,
    CapacityCharge,
    FlatRate,
    Tariff,
    TariffError,
    TimeOfUse,
    Window,
    capacity_cost,
    energy_cost,
    on_clock,
    standard_offset,
)

UTC = timezone.utc
HALF_HOUR = timedelta(minutes=30)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def half_hour(start: str, wh) -> tuple[datetime, datetime, object]:
    begin = at(start)
    return begin, begin + HALF_HOUR, wh


def by_rate(cost) -> dict[str, tuple[Decimal, Decimal]]:
    return {line.rate: (line.energy_kwh, line.exact_amount) for line in cost.lines}


# Flat rate and money rounding (E09)


def flat_eur(price="0.25") -> Tariff:
    return Tariff("EUR", FlatRate(price))


def test_e09_a_day_of_12_3_kwh_at_a_flat_0_25_costs_3_075_exactly_and_3_08_billed():
    day = (at("2025-01-10T00:00:00+01:00"), at("2025-01-11T00:00:00+01:00"), 1_535_700 - 1_523_400)  # Wh

    cost = energy_cost(flat_eur(), [day], "Europe/Brussels")

    assert cost.energy_kwh == Decimal("12.3")
    assert cost.exact_total == Decimal("3.075")  # three decimals kept until the end
    assert cost.total == Decimal("3.08")
    assert cost.currency == "EUR"
    assert [(line.rate, line.price_per_kwh, line.amount) for line in cost.lines] == [("flat", Decimal("0.25"), Decimal("3.08"))]


def test_a_half_cent_rounds_up_where_a_binary_float_rounds_it_down():
    assert round(10.7 * 0.25, 2) == 2.67  # the float product is 2.67499999...: why money is Decimal

    cost = energy_cost(flat_eur(), [half_hour("2025-01-10T12:00:00+01:00", 10_700)], "Europe/Brussels")

    assert cost.exact_total == Decimal("2.675") and cost.total == Decimal("2.68")


def test_the_total_is_the_exact_sum_rounded_once_not_the_sum_of_rounded_lines():
    # Two rates at the same price, each 0.05 kWh x 0.10 = 0.005: each line shows 0.01, but the bill is 0.010 -> 0.01.
    tariff = Tariff("EUR", TimeOfUse("local", (
        Window("day", ALL_DAYS, time(7), time(22), "0.10"),
        Window("night", ALL_DAYS, time(22), time(7), "0.10"),
    )))
    intervals = [half_hour("2025-01-10T12:00:00+01:00", 50), half_hour("2025-01-10T23:00:00+01:00", 50)]

    cost = energy_cost(tariff, intervals, "Europe/Brussels")

    assert [line.amount for line in cost.lines] == [Decimal("0.01"), Decimal("0.01")]
    assert cost.exact_total == Decimal("0.010")
    assert cost.total == Decimal("0.01")


@pytest.mark.parametrize(("currency", "expected"), [("EUR", "3.08"), ("JPY", "3"), ("KWD", "3.075")])
def test_amounts_round_to_the_currency_minor_unit(currency, expected):
    tariff = Tariff(currency, FlatRate("0.25"))

    cost = energy_cost(tariff, [half_hour("2025-01-10T12:00:00+01:00", 12_300)], "Europe/Brussels")

    assert cost.total == Decimal(expected)


def test_float_energy_is_read_as_its_decimal_text():
    cost = energy_cost(flat_eur("1"), [half_hour("2025-01-10T12:00:00+01:00", 2000.1)], "Europe/Brussels")

    assert cost.energy_kwh == Decimal("2.0001")


def test_no_intervals_cost_nothing():
    cost = energy_cost(flat_eur(), [], "Europe/Brussels")

    assert (cost.lines, cost.energy_kwh, cost.total) == ((), Decimal(0), Decimal("0.00"))


# Capacity charge (E10)


def test_e10_a_4481_w_monthly_peak_is_4_481_kw_and_costs_22_41():
    tariff = Tariff("EUR", FlatRate("0.25"), CapacityCharge("5.00"))
    peaks_w = [3120, 4481, 2950]  # 15-minute peaks of May 2026, in W

    charge = capacity_cost(tariff, max(peaks_w))

    assert charge.peak_kw == Decimal("4.481")  # never 4481 kW
    assert charge.exact_amount == Decimal("22.40500")
    assert charge.amount == Decimal("22.41")


def test_a_capacity_half_cent_rounds_up_where_a_binary_float_rounds_it_down():
    assert round(4.201 * 5.0, 2) == 21.0

    charge = capacity_cost(Tariff("EUR", FlatRate("0.25"), CapacityCharge("5.00")), 4201)

    assert charge.amount == Decimal("21.01")


def test_a_float_peak_in_w_is_read_as_its_decimal_text():
    charge = capacity_cost(Tariff("EUR", FlatRate("0.25"), CapacityCharge("5.00")), 4481.0)

    assert charge.peak_kw == Decimal("4.481") and charge.amount == Decimal("22.41")


# Time-of-use on the tariff's clock (E16)


def economy_7(clock: str) -> Tariff:
    return Tariff("GBP", TimeOfUse(clock, (
        Window("off_peak", ALL_DAYS, time(0, 30), time(7, 30), "0.08"),
        Window("day", ALL_DAYS, time(7, 30), time(0, 30), "0.30"),
    )))


E16_SUMMER = [half_hour("2025-08-12T00:30:00+01:00", 2000), half_hour("2025-08-12T08:00:00+01:00", 500)]


def test_e16_an_off_peak_window_fixed_in_utc_is_read_in_utc_in_summer():
    cost = energy_cost(economy_7("utc"), E16_SUMMER, "Europe/London")

    # 00:30 BST is 23:30Z (day rate); 08:00 BST is 07:00Z (off-peak).
    assert by_rate(cost) == {"day": (Decimal("2"), Decimal("0.60")), "off_peak": (Decimal("0.5"), Decimal("0.040"))}
    assert cost.total == Decimal("0.64")


def test_e16_the_same_windows_read_on_the_local_clock_give_the_other_answer():
    cost = energy_cost(economy_7("local"), E16_SUMMER, "Europe/London")

    assert by_rate(cost) == {"off_peak": (Decimal("2"), Decimal("0.16")), "day": (Decimal("0.5"), Decimal("0.150"))}
    assert cost.total == Decimal("0.31")


def test_e16_in_january_utc_and_local_windows_agree():
    winter = [half_hour("2025-01-14T00:30:00+00:00", 2000), half_hour("2025-01-14T08:00:00+00:00", 500)]

    totals = {clock: energy_cost(economy_7(clock), winter, "Europe/London").total for clock in ("utc", "local", "standard")}

    assert totals == {"utc": Decimal("0.31"), "local": Decimal("0.31"), "standard": Decimal("0.31")}


def belgian_nights(clock: str) -> Tariff:
    return Tariff("EUR", TimeOfUse(clock, (
        Window("night", ALL_DAYS, time(22), time(7), "0.15"),
        Window("day", ALL_DAYS, time(7), time(22), "0.30"),
    )))


def test_a_standard_time_clock_in_summer_runs_an_hour_behind_the_wall_clock():
    # Brussels in July is +02:00; its standard time is +01:00 all year.
    late_evening = half_hour("2025-07-15T22:30:00+02:00", 1000)  # 21:30 standard: still day
    early_morning = half_hour("2025-07-16T07:30:00+02:00", 1000)  # 06:30 standard: still night

    standard = energy_cost(belgian_nights("standard"), [late_evening, early_morning], "Europe/Brussels")
    local = energy_cost(belgian_nights("local"), [late_evening, early_morning], "Europe/Brussels")

    assert [line.rate for line in standard.lines] == ["day", "night"]
    assert [line.rate for line in local.lines] == ["night", "day"]
    assert standard.total == local.total == Decimal("0.45")  # one kWh at each price either way


def test_a_standard_time_clock_in_winter_is_the_wall_clock():
    late_evening = half_hour("2025-01-15T22:30:00+01:00", 1000)

    for clock in ("standard", "local"):
        assert [line.rate for line in energy_cost(belgian_nights(clock), [late_evening], "Europe/Brussels").lines] == ["night"]


@pytest.mark.parametrize(
    ("zone", "instant", "offset_hours"),
    [
        ("Europe/London", "2025-07-01T12:00:00+00:00", 0),
        ("Europe/Brussels", "2025-07-01T12:00:00+00:00", 1),
        ("Europe/Dublin", "2025-07-01T12:00:00+00:00", 0),  # tz data calls Irish summer time "standard"; winter is GMT
        ("Europe/Dublin", "2025-01-01T12:00:00+00:00", 0),
        ("Australia/Sydney", "2025-01-01T12:00:00+00:00", 10),  # southern summer: +11 on the wall, +10 standard
        ("America/New_York", "2025-07-01T12:00:00+00:00", -5),
    ],
)
def test_standard_time_is_the_zone_winter_offset(zone, instant, offset_hours):
    utc = at(instant)

    assert standard_offset(ZoneInfo(zone), utc.year) == timedelta(hours=offset_hours)
    assert on_clock(utc, "standard", ZoneInfo(zone)) == utc.replace(tzinfo=None) + timedelta(hours=offset_hours)


def test_a_window_crossing_midnight_covers_the_evening_and_the_early_morning():
    intervals = [
        half_hour("2025-01-15T21:30:00+01:00", 1000),  # day
        half_hour("2025-01-15T22:00:00+01:00", 1000),  # night from its start
        half_hour("2025-01-15T23:30:00+01:00", 1000),  # night
        half_hour("2025-01-16T00:00:00+01:00", 1000),  # night past midnight
        half_hour("2025-01-16T06:30:00+01:00", 1000),  # night
        half_hour("2025-01-16T07:00:00+01:00", 1000),  # day from the window's end
    ]

    cost = energy_cost(belgian_nights("local"), intervals, "Europe/Brussels")

    assert by_rate(cost) == {"day": (Decimal(2), Decimal("0.60")), "night": (Decimal(4), Decimal("0.60"))}


def weekend_tariff(clock: str) -> Tariff:
    return Tariff("EUR", TimeOfUse(clock, (
        Window("peak", WEEKDAYS, time(7), time(22), "0.30"),
        Window("off_peak", WEEKDAYS, time(22), time(7), "0.15"),
        Window("weekend", WEEKEND, time(0), time(0), "0.10"),  # start == end: the whole day
    )))


@pytest.mark.parametrize(
    ("start", "rate"),
    [
        ("2025-01-10T12:00:00+01:00", "peak"),  # Friday noon
        ("2025-01-10T23:30:00+01:00", "off_peak"),  # Friday night before midnight
        ("2025-01-11T00:30:00+01:00", "weekend"),  # after midnight it is Saturday's window
        ("2025-01-11T12:00:00+01:00", "weekend"),
        ("2025-01-12T23:30:00+01:00", "weekend"),  # Sunday night
        ("2025-01-13T00:00:00+01:00", "off_peak"),  # Monday from midnight
        ("2025-01-13T07:00:00+01:00", "peak"),
    ],
)
def test_weekend_and_weekday_rates_follow_the_day_of_the_clock_time(start, rate):
    cost = energy_cost(weekend_tariff("local"), [half_hour(start, 1000)], "Europe/Brussels")

    assert [line.rate for line in cost.lines] == [rate]


def test_the_weekday_is_read_on_the_schedule_clock_too():
    # Sunday 23:30Z is Monday 00:30 in Brussels: weekend on a UTC clock, Monday's off-peak on the local one.
    sunday_night_utc = [half_hour("2025-01-12T23:30:00+00:00", 1000)]

    assert [line.rate for line in energy_cost(weekend_tariff("utc"), sunday_night_utc, "Europe/Brussels").lines] == ["weekend"]
    assert [line.rate for line in energy_cost(weekend_tariff("local"), sunday_night_utc, "Europe/Brussels").lines] == ["off_peak"]


def local_day_half_hours(day: str, zone: str) -> list[tuple[datetime, datetime, int]]:
    """Every half hour of a local day, 1 kWh each, stepped in UTC (a DST day has 46 or 50)."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    start, end = midnight.astimezone(UTC), (midnight + timedelta(days=1)).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    steps = []
    while start < end:
        steps.append((start, start + HALF_HOUR, 1000))
        start += HALF_HOUR
    return steps


@pytest.mark.parametrize(
    ("day", "clock", "half_hours", "off_peak_kwh", "day_kwh"),
    [
        # Spring forward: 01:00 GMT -> 02:00 BST. Local 00:30-07:30 is 00:30Z-06:30Z, six hours.
        ("2025-03-30", "local", 46, 12, 34),
        ("2025-03-30", "utc", 46, 14, 32),
        # Fall back: 02:00 BST -> 01:00 GMT. Local 00:30-07:30 is 23:30Z-07:30Z, eight hours.
        ("2025-10-26", "local", 50, 16, 34),
        ("2025-10-26", "utc", 50, 14, 36),
    ],
)
def test_dst_days_give_the_local_window_its_wall_clock_length(day, clock, half_hours, off_peak_kwh, day_kwh):
    intervals = local_day_half_hours(day, "Europe/London")

    cost = energy_cost(economy_7(clock), intervals, "Europe/London")

    assert len(intervals) == half_hours
    assert {line.rate: line.energy_kwh for line in cost.lines} == {"off_peak": off_peak_kwh, "day": day_kwh}
    assert cost.exact_total == Decimal(off_peak_kwh) * Decimal("0.08") + Decimal(day_kwh) * Decimal("0.30")


def test_a_zone_object_and_its_name_give_the_same_cost():
    by_name = energy_cost(economy_7("local"), E16_SUMMER, "Europe/London")

    assert energy_cost(economy_7("local"), E16_SUMMER, ZoneInfo("Europe/London")) == by_name


def test_intervals_in_any_order_cost_the_same():
    assert energy_cost(economy_7("utc"), E16_SUMMER[::-1], "Europe/London").total == Decimal("0.64")


# Validation


def tou(*windows, clock="local") -> TimeOfUse:
    return TimeOfUse(clock, windows)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: tou(Window("night", ALL_DAYS, time(0), time(8), "0.1"), Window("day", ALL_DAYS, time(7), time(0), "0.2")),
         r"windows 'night' \(00:00-08:00\) and 'day' \(07:00-00:00\) overlap on Monday at 07:00"),
        (lambda: tou(Window("night", ALL_DAYS, time(0), time(7), "0.1"), Window("day", ALL_DAYS, time(8), time(0), "0.2")),
         "no window covers Monday 07:00-08:00"),
        (lambda: tou(Window("all", WEEKDAYS, time(0), time(0), "0.1")), "no window covers Saturday 00:00-24:00"),
        (lambda: tou(Window("all", ALL_DAYS, time(0), time(0), "0.1"), clock="gmt"), r"clock 'gmt' is unknown.*'local', 'utc', 'standard'"),
        (lambda: tou(), "non-empty list of Window"),
        (lambda: tou(Window("a", WEEKDAYS, time(0), time(0), "0.1"), Window("a", WEEKEND, time(0), time(0), "0.2")),
         "windows of rate 'a' have different prices"),
        (lambda: Window("all", ALL_DAYS, time(0), time(0), "-0.01"), "negative"),
        (lambda: Window("all", ALL_DAYS, time(0), time(0), 0.25), "not the float 0.25"),
        (lambda: Window("all", ALL_DAYS, time(0), time(0), "cheap"), "'cheap' is not a finite number"),
        (lambda: Window("all", ALL_DAYS, time(0), time(0), "NaN"), "is not a finite number"),
        (lambda: Window("all", set(), time(0), time(0), "0.1"), "weekdays must be a non-empty set"),
        (lambda: Window("all", {7}, time(0), time(0), "0.1"), "weekdays must be a non-empty set"),
        (lambda: Window("all", ALL_DAYS, time(7, 0, 30), time(0), "0.1"), "must be a whole minute"),
        (lambda: Window("all", ALL_DAYS, "07:00", time(0), "0.1"), "start must be a clock time"),
        (lambda: Window("", ALL_DAYS, time(0), time(0), "0.1"), "rate name must be non-empty"),
        (lambda: FlatRate("-1"), "negative"),
        (lambda: CapacityCharge(5.0), "not the float"),
        (lambda: Tariff("eur", FlatRate("0.25")), "ISO 4217"),
        (lambda: Tariff("EUR", "0.25"), "FlatRate or a TimeOfUse"),
    ],
)
def test_a_wrong_tariff_is_refused_with_a_clear_message(build, message):
    with pytest.raises(TariffError, match=message):
        build()


@pytest.mark.parametrize(
    ("intervals", "message"),
    [
        ([(datetime(2025, 1, 10, 12), datetime(2025, 1, 10, 12, 30), 1000)], "start must be a timezone-aware"),
        ([(at("2025-01-10T12:30:00+00:00"), at("2025-01-10T12:00:00+00:00"), 1000)], "is not after start"),
        ([half_hour("2025-01-10T12:00:00+00:00", -5)], "negative; exported energy"),
        ([half_hour("2025-01-10T12:00:00+00:00", float("nan"))], "not a finite number"),
        ([half_hour("2025-01-10T12:00:00+00:00", None)], "not a finite number"),
        ([half_hour("2025-01-10T12:00:00+00:00", "12")], "not a finite number"),
        ([(at("2025-01-10T12:00:00+00:00"), 1000)], r"must be \(start, end, energy Wh\)"),
        ([half_hour("2025-01-10T12:00:00+00:00", 1), half_hour("2025-01-10T12:15:00+00:00", 1)], "intervals 0 and 1 overlap"),
    ],
)
def test_wrong_intervals_are_refused_with_a_clear_message(intervals, message):
    with pytest.raises(TariffError, match=message):
        energy_cost(flat_eur(), intervals, "Europe/Brussels")


def test_an_unknown_site_zone_is_refused():
    with pytest.raises(TariffError, match="not an IANA time zone"):
        energy_cost(flat_eur(), [], "Europe/Atlantis")


def test_a_capacity_cost_needs_a_capacity_charge_and_a_non_negative_peak():
    with pytest.raises(TariffError, match="no capacity charge"):
        capacity_cost(flat_eur(), 4481)
    with pytest.raises(TariffError, match="peak -1 is negative"):
        capacity_cost(Tariff("EUR", FlatRate("0.25"), CapacityCharge("5.00")), -1)
