"""Local calendar periods of an IANA zone as UTC instants: hours, days, ISO weeks, months, years, billing periods.

Plain Python, no Django. Every boundary is built from a local date in the zone, never by
adding a fixed duration to an earlier boundary, so a period's length in UTC is whatever
the calendar says (23, 24 or 25-hour days; a month with a DST change in it).

- A day starts at local midnight; where midnight does not exist (zones whose DST starts at
  midnight: America/Santiago, America/Havana) it starts at the first instant that exists,
  and where it happens twice (DST ending at 01:00 -> 00:00) at the first of them.
- Hours are stepped in UTC and cut where the local wall clock shows :00, so the hour that
  repeats when DST ends is two hours, and :30/:45 zones cut at their own wall-clock hours.
- A billing period starts at local midnight on the anchor day (1-31); in a month without that
  day, on the month's last day.
"""

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
PERIODS = ("hour", "day", "week", "month", "year", "billing")
# The local dates the views answer for: zone rules outside them are guesses, and datetime ends at year 9999.
EARLIEST, LATEST = date(1900, 1, 1), date(2199, 12, 31)
# Every offset in use is a multiple of 15 minutes, so wall-clock hours start on these steps.
_QUARTER_HOUR = timedelta(minutes=15)


@dataclass(frozen=True)
class LocalPeriod:
    """[start, end) in UTC, with the local start and the period's name."""

    start: datetime  # aware, UTC
    end: datetime  # aware, UTC
    local_start: datetime  # the same instant in the zone
    label: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def check_period(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def local_midnight(zone: ZoneInfo, day: date) -> datetime:
    """The UTC instant the local day starts: its midnight, or the first instant after it where midnight is skipped."""
    wall = datetime(day.year, day.month, day.day)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first of two midnights
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # Midnight falls in a DST gap. fold=1 lands before the gap and fold=0 after it; the day starts at
    # the first instant (to the minute; transitions are on whole minutes) whose wall time is past midnight.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    while high - low > timedelta(minutes=1):
        middle = low + timedelta(minutes=((high - low) // timedelta(minutes=1)) // 2)
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def billing_start(year: int, month: int, anchor_day: int) -> date:
    """The day the billing period of this month starts: the anchor day, or the month's last day if it has no such day."""
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def period_start_date(period: str, day: date, anchor_day: int = 1) -> date:
    """The local date on which the period containing `day` starts (not for hours)."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return date(day.year, 1, 1)
    if period == "billing":
        this_month = billing_start(day.year, day.month, anchor_day)
        return this_month if day >= this_month else billing_start(*_previous_month(day.year, day.month), anchor_day)
    raise ValueError(f"no start date for period {period!r}")


def next_period_start_date(period: str, start: date, anchor_day: int = 1) -> date:
    """The start date of the period after the one starting on `start`."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return date(*_next_month(start.year, start.month), 1)
    if period == "year":
        return date(start.year + 1, 1, 1)
    if period == "billing":
        # A period starting on a short month's last day (anchor 31 in April) belongs to that month.
        return billing_start(*_next_month(start.year, start.month), anchor_day)
    raise ValueError(f"no next start date for period {period!r}")


def _local_date(zone: ZoneInfo, moment: date | datetime) -> date:
    return moment.astimezone(zone).date() if isinstance(moment, datetime) else moment


def _instant(zone: ZoneInfo, moment: date | datetime) -> datetime:
    """A date means its local midnight; an aware datetime is itself."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("datetimes must be aware")
        return moment.astimezone(UTC)
    return local_midnight(zone, moment)


def period_boundaries(zone: str, period: str, start: date | datetime, end: date | datetime, anchor_day: int = 1) -> list[datetime]:
    """UTC instants b0 <= start < ... <= bn, bn >= end; each [b_i, b_i+1) is one local period.

    `start` and `end` are local dates (their midnights) or aware datetimes. A period the zone
    skipped entirely (Pacific/Apia on 2011-12-30) has no boundary of its own.
    """
    check_period(period)
    if not 1 <= anchor_day <= 31:
        raise ValueError(f"anchor_day must be 1 to 31, not {anchor_day}")
    tz = ZoneInfo(zone)
    first, last = _instant(tz, start), _instant(tz, end)
    if period == "hour":
        return _hour_boundaries(tz, first, last)
    day = period_start_date(period, _local_date(tz, start), anchor_day)
    boundaries = [local_midnight(tz, day)]
    while boundaries[-1] < last or len(boundaries) == 1:
        day = next_period_start_date(period, day, anchor_day)
        instant = local_midnight(tz, day)
        if instant > boundaries[-1]:
            boundaries.append(instant)
    return boundaries


def _hour_boundaries(tz: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Day by day: the day's start, then every quarter-hour step from it where the wall clock shows :00.

    Stepping from each local midnight keeps the steps on the zone's own quarter hours even for
    historical offsets in odd minutes, and every day ends, so the walk always ends."""
    day = first.astimezone(tz).date()
    if local_midnight(tz, day) > first:  # `first` lies before its date's start only where that midnight was skipped
        day -= timedelta(days=1)
    boundaries = []
    day_start = local_midnight(tz, day)
    while True:
        day += timedelta(days=1)
        day_end = local_midnight(tz, day)
        step = day_start
        while step < day_end:
            wall = step.astimezone(tz)
            if step == day_start or (wall.minute == 0 and wall.second == 0):
                if step <= first:
                    boundaries = [step]
                elif step < last or len(boundaries) < 2 or boundaries[-1] < last:
                    boundaries.append(step)
            step += _QUARTER_HOUR
        if day_end >= last and (len(boundaries) < 2 or boundaries[-1] < last):
            boundaries.append(day_end)
        if len(boundaries) >= 2 and boundaries[-1] >= last:
            return boundaries
        day_start = day_end


def local_periods(zone: str, period: str, start: date | datetime, end: date | datetime, anchor_day: int = 1) -> list[LocalPeriod]:
    """The local periods covering [start, end), each named by `period_label`."""
    tz = ZoneInfo(zone)
    bounds = period_boundaries(zone, period, start, end, anchor_day)
    return [
        LocalPeriod(begin, finish, begin.astimezone(tz), period_label(zone, period, begin))
        for begin, finish in zip(bounds, bounds[1:])
    ]


def period_label(zone: str, period: str, start: datetime) -> str:
    """The period's name: '2024-03-31T02:00+02:00' (an hour, with its offset so a repeated hour is told apart),
    '2024-03-31', '2024-W13', '2024-03', '2024', and a billing period by the date it starts on."""
    check_period(period)
    local = start.astimezone(ZoneInfo(zone))
    if period == "hour":
        return local.isoformat(timespec="minutes")
    if period in ("day", "billing"):
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.date().isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year:04d}-{local.month:02d}"
    return f"{local.year:04d}"
