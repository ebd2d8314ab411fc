"""Tariffs and what energy and peaks cost under them. Plain Python, no Django: reports and tests call it directly.

A tariff has a currency, an energy rate and optionally a capacity (demand) charge:

    Tariff(
        currency="GBP",
        energy=TimeOfUse(clock="utc", windows=(
            Window("off_peak", ALL_DAYS, time(0, 30), time(7, 30), "0.08"),
            Window("day", ALL_DAYS, time(7, 30), time(0, 30), "0.30"),
        )),
        capacity=CapacityCharge("5.00"),  # per kW of the month's peak
    )

Energy rates are a flat price (`FlatRate`) or time-of-use windows (`TimeOfUse`). Each time-of-use
schedule names the clock its windows are read on, because suppliers differ:
  "local"     the site's wall clock (moves with daylight saving time);
  "utc"       UTC all year (UK Economy 7 meters switch on a fixed UTC time);
  "standard"  the site's winter offset all year: in summer a 22:00 window starts at 23:00 local.
              The winter offset is the smaller of the zone's offsets in mid-January and mid-July,
              which is right in both hemispheres and for Europe/Dublin (whose time zone data calls
              summer time "standard", while its suppliers mean GMT).

A window holds the weekdays it applies to (0 Monday ... 6 Sunday), a start and an end clock time
and a price per kWh. The weekday is the day of the clock time being priced. A window whose end is
not after its start crosses midnight: on each of its days it covers [start, 24:00) and [00:00, end),
so "Mon-Fri 22:00-07:00" covers Monday 00:00-07:00 and Friday 22:00-24:00, and Saturday
00:00-07:00 belongs to Saturday's windows. A start equal to its end is the whole day. Windows must
cover every minute of the week exactly once; several windows may share a rate name (and then
its price), and the cost breakdown has one line per rate name.

Pricing: an interval (start UTC, end UTC, energy Wh) is priced by the window its start falls in on
the schedule's clock; intervals of 15 or 30 minutes never cross a window boundary on a sane tariff.

Money: prices are Decimal (or text such as "0.25"; a float is refused, since 0.1 is not exact in
binary). Amounts are computed exactly and rounded to the currency's minor unit with ROUND_HALF_UP
only once, at the end: 12.3 kWh x 0.25 = 3.075 -> 3.08 EUR and 4.481 kW x 5.00 = 22.405 -> 22.41 EUR.
Binary floats get such halves right or wrong by accident of representation: 10.7 x 0.25 is the
float 2.67499999... and rounds to 2.67, 4.201 x 5.0 rounds to 21.00; in Decimal they are 2.68 and 21.01.
Totals: the billed total is the exact sum of the exact rate amounts, rounded once. Each rate line
also shows its own rounded amount for display; those rounded lines may differ from the total by a
cent or so per line, and the total is what is billed (rounding each line first would add up to
half a cent per line of error on every bill).
"""

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CLOCKS = ("local", "utc", "standard")
ALL_DAYS = frozenset(range(7))
WEEKDAYS = frozenset(range(5))  # Monday to Friday
WEEKEND = frozenset({5, 6})
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# ISO 4217 currencies whose minor unit is not the cent (everything else has two decimals).
_MINOR_DIGITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_MINUTES_PER_DAY = 24 * 60
_WH_PER_KWH = Decimal(1000)
_W_PER_KW = Decimal(1000)


class TariffError(ValueError):
    """A tariff, or an input to price under it, is wrong; the message says what and where."""


def _price(raw, where: str) -> Decimal:
    """A non-negative, finite price as Decimal: from Decimal, int or decimal text; never from a float."""
    if isinstance(raw, float):
        raise TariffError(f"{where}: give the price as Decimal or text such as \"0.25\", not the float {raw!r} (a float is not exact).")
    try:
        price = Decimal(raw) if isinstance(raw, (int, str, Decimal)) and not isinstance(raw, bool) else None
    except InvalidOperation:
        price = None
    return _non_negative(price, raw, f"{where}: price", "a price is what the site pays per unit")


def _non_negative(value: Decimal | None, raw, where: str, why_not_negative: str) -> Decimal:
    if value is None or not value.is_finite():
        raise TariffError(f"{where} {raw!r} is not a finite number.")
    if value < 0:
        raise TariffError(f"{where} {raw!r} is negative; {why_not_negative}.")
    return value


@dataclass(frozen=True)
class FlatRate:
    """One price per kWh at every hour."""

    price_per_kwh: Decimal
    name: str = "flat"

    def __post_init__(self):
        object.__setattr__(self, "price_per_kwh", _price(self.price_per_kwh, f"flat rate {self.name!r}"))

    def rate_at(self, start_utc: datetime, zone: ZoneInfo) -> tuple[str, Decimal]:
        return self.name, self.price_per_kwh


@dataclass(frozen=True)
class Window:
    """A time-of-use window: its rate's name, the weekdays (0 Monday ... 6 Sunday), [start, end) and the price per kWh."""

    rate: str
    weekdays: frozenset[int]
    start: time
    end: time
    price_per_kwh: Decimal

    def __post_init__(self):
        where = f"window {self.rate!r}"
        if not isinstance(self.rate, str) or not self.rate:
            raise TariffError(f"a window's rate name must be non-empty text, not {self.rate!r}.")
        days = frozenset(self.weekdays) if isinstance(self.weekdays, (set, frozenset, list, tuple, range)) else None
        if not days or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
            raise TariffError(f"{where}: weekdays must be a non-empty set of 0 (Monday) ... 6 (Sunday), not {self.weekdays!r}.")
        object.__setattr__(self, "weekdays", days)
        for label, clock_time in (("start", self.start), ("end", self.end)):
            if not isinstance(clock_time, time) or clock_time.tzinfo is not None:
                raise TariffError(f"{where}: {label} must be a clock time without zone (the schedule's clock says which), not {clock_time!r}.")
            if clock_time.second or clock_time.microsecond:
                raise TariffError(f"{where}: {label} {clock_time} must be a whole minute.")
        object.__setattr__(self, "price_per_kwh", _price(self.price_per_kwh, where))

    def minute_ranges(self) -> list[tuple[int, int]]:
        """The window's [from, to) minutes of one of its days; two ranges when it crosses midnight."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        if start < end:
            return [(start, end)]
        return [(start, _MINUTES_PER_DAY)] + ([(0, end)] if end else [])


@dataclass(frozen=True)
class TimeOfUse:
    """Windows that together cover the week exactly once, read on `clock` ("local", "utc" or "standard")."""

    clock: str
    windows: tuple[Window, ...]

    def __post_init__(self):
        if self.clock not in CLOCKS:
            raise TariffError(f"clock {self.clock!r} is unknown; a schedule's windows are read on one of {list(CLOCKS)}.")
        windows = tuple(self.windows) if isinstance(self.windows, (list, tuple)) else ()
        if not windows or not all(isinstance(w, Window) for w in windows):
            raise TariffError("a time-of-use schedule needs a non-empty list of Window objects.")
        object.__setattr__(self, "windows", windows)
        prices: dict[str, Decimal] = {}
        for window in windows:
            if prices.setdefault(window.rate, window.price_per_kwh) != window.price_per_kwh:
                raise TariffError(
                    f"windows of rate {window.rate!r} have different prices ({prices[window.rate]} and "
                    f"{window.price_per_kwh}); give each price its own rate name."
                )
        object.__setattr__(self, "_lookup", _week_table(windows))

    def rate_at(self, start_utc: datetime, zone: ZoneInfo) -> tuple[str, Decimal]:
        clock_time = on_clock(start_utc, self.clock, zone)
        window = self._lookup[clock_time.weekday()][clock_time.hour * 60 + clock_time.minute]
        return window.rate, window.price_per_kwh


def _week_table(windows: tuple[Window, ...]) -> list[list[Window]]:
    """For each weekday, the window of each minute; refuses overlaps and gaps, naming the first one found."""
    table: list[list[Window | None]] = [[None] * _MINUTES_PER_DAY for _ in range(7)]
    for window in windows:
        for day in sorted(window.weekdays):
            for first, last in window.minute_ranges():
                for minute in range(first, last):
                    other = table[day][minute]
                    if other is not None:
                        raise TariffError(
                            f"windows {other.rate!r} ({_span(other)}) and {window.rate!r} ({_span(window)}) "
                            f"overlap on {DAY_NAMES[day]} at {_clock_text(minute)}."
                        )
                    table[day][minute] = window
    for day in range(7):
        if None in table[day]:
            first = table[day].index(None)
            last = first
            while last < _MINUTES_PER_DAY and table[day][last] is None:
                last += 1
            raise TariffError(
                f"no window covers {DAY_NAMES[day]} {_clock_text(first)}-{_clock_text(last)}; "
                "the windows must cover every minute of the week."
            )
    return table  # type: ignore[return-value]


def _clock_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _span(window: Window) -> str:
    return f"{window.start:%H:%M}-{window.end:%H:%M}"


@dataclass(frozen=True)
class CapacityCharge:
    """A price per kW of the month's peak demand (the utility's demand interval average, usually 15 minutes)."""

    price_per_kw_month: Decimal

    def __post_init__(self):
        object.__setattr__(self, "price_per_kw_month", _price(self.price_per_kw_month, "capacity charge"))


@dataclass(frozen=True)
class Tariff:
    currency: str
    energy: FlatRate | TimeOfUse
    capacity: CapacityCharge | None = None

    def __post_init__(self):
        if not (isinstance(self.currency, str) and len(self.currency) == 3 and self.currency.isascii() and self.currency.isupper()):
            raise TariffError(f"currency must be an ISO 4217 code such as \"EUR\", not {self.currency!r}.")
        if not isinstance(self.energy, (FlatRate, TimeOfUse)):
            raise TariffError(f"energy must be a FlatRate or a TimeOfUse schedule, not {self.energy!r}.")
        if self.capacity is not None and not isinstance(self.capacity, CapacityCharge):
            raise TariffError(f"capacity must be a CapacityCharge or None, not {self.capacity!r}.")

    def round_money(self, amount: Decimal) -> Decimal:
        """The amount in the currency's minor unit (cents for most), halves rounded up."""
        return amount.quantize(Decimal(1).scaleb(-_MINOR_DIGITS.get(self.currency, 2)), rounding=ROUND_HALF_UP)


# Clocks


def site_zone(zone: str | ZoneInfo) -> ZoneInfo:
    if isinstance(zone, ZoneInfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TariffError(f"site time zone {zone!r} is not an IANA time zone such as \"Europe/Brussels\".") from None


@lru_cache(maxsize=256)
def standard_offset(zone: ZoneInfo, year: int) -> timedelta:
    """The zone's winter offset in `year`: daylight saving time moves clocks ahead of it in both hemispheres."""
    return min(datetime(year, month, 15, 12, tzinfo=zone).utcoffset() for month in (1, 7))


def on_clock(instant_utc: datetime, clock: str, zone: ZoneInfo) -> datetime:
    """The instant as a wall-clock time on the schedule's clock (naive: only its weekday and time are read)."""
    if clock == "utc":
        return instant_utc.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    if clock == "local":
        return instant_utc.astimezone(zone).replace(tzinfo=None)
    utc = instant_utc.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    return utc + standard_offset(zone, utc.year)


# Costs


@dataclass(frozen=True)
class RateLine:
    rate: str
    price_per_kwh: Decimal
    energy_kwh: Decimal
    exact_amount: Decimal  # energy x price, unrounded
    amount: Decimal  # exact_amount in the currency's minor unit, for display


@dataclass(frozen=True)
class EnergyCost:
    currency: str
    lines: tuple[RateLine, ...]  # one per rate name, in the order the rates were first met
    energy_kwh: Decimal
    exact_total: Decimal  # the sum of the exact line amounts
    total: Decimal  # exact_total rounded once: what is billed


@dataclass(frozen=True)
class CapacityCost:
    currency: str
    peak_kw: Decimal
    price_per_kw_month: Decimal
    exact_amount: Decimal
    amount: Decimal


def energy_cost(tariff: Tariff, intervals: Iterable[tuple[datetime, datetime, object]], zone: str | ZoneInfo) -> EnergyCost:
    """The cost of (start, end, energy in Wh) intervals under `tariff` at a site in `zone`.

    Starts and ends are timezone-aware instants; intervals may come in any order but must not
    overlap (energy counted twice is the fault this refuses). Energy is an int, a Decimal or a
    float (read as its shortest decimal text, so 2000.1 Wh is 2.0001 kWh exactly).
    """
    zone = site_zone(zone)
    checked = sorted(_interval(i, item) for i, item in enumerate(intervals))
    for (_, previous_end, _, previous_index), (start, _, _, index) in zip(checked, checked[1:]):
        if start < previous_end:
            raise TariffError(f"intervals {previous_index} and {index} overlap; energy would be counted twice.")
    energy_by_rate: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    for start, _, energy_wh, _ in checked:
        rate, price = tariff.energy.rate_at(start, zone)
        prices[rate] = price
        energy_by_rate[rate] = energy_by_rate.get(rate, Decimal(0)) + energy_wh / _WH_PER_KWH
    lines = tuple(
        RateLine(rate, prices[rate], kwh, kwh * prices[rate], tariff.round_money(kwh * prices[rate]))
        for rate, kwh in energy_by_rate.items()
    )
    exact_total = sum((line.exact_amount for line in lines), Decimal(0))
    return EnergyCost(
        currency=tariff.currency,
        lines=lines,
        energy_kwh=sum((line.energy_kwh for line in lines), Decimal(0)),
        exact_total=exact_total,
        total=tariff.round_money(exact_total),
    )


def capacity_cost(tariff: Tariff, peak_w) -> CapacityCost:
    """The month's capacity charge on its peak demand, given in W (a W figure is never read as kW)."""
    if tariff.capacity is None:
        raise TariffError("this tariff has no capacity charge.")
    peak_kw = _decimal(peak_w, "peak", "a peak demand is what the site draws at most") / _W_PER_KW
    exact = peak_kw * tariff.capacity.price_per_kw_month
    return CapacityCost(tariff.currency, peak_kw, tariff.capacity.price_per_kw_month, exact, tariff.round_money(exact))


def _interval(index: int, item) -> tuple[datetime, datetime, Decimal, int]:
    try:
        start, end, energy = item
    except (TypeError, ValueError):
        raise TariffError(f"interval {index} must be (start, end, energy Wh), not {item!r}.") from None
    for label, instant in (("start", start), ("end", end)):
        if not isinstance(instant, datetime) or instant.utcoffset() is None:
            raise TariffError(f"interval {index}: {label} must be a timezone-aware datetime, not {instant!r}.")
    if end <= start:
        raise TariffError(f"interval {index}: end {end.isoformat()} is not after start {start.isoformat()}.")
    energy_wh = _decimal(energy, f"interval {index} energy", "exported energy is priced by its own tariff")
    return start, end, energy_wh, index


def _decimal(raw, where: str, why_not_negative: str) -> Decimal:
    """A finite, non-negative quantity as an exact Decimal; a float is read as its shortest decimal text."""
    value = None
    if isinstance(raw, float) and math.isfinite(raw):
        value = Decimal(repr(raw))
    elif isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
        value = Decimal(raw)
    return _non_negative(value, raw, where, why_not_negative)
