"""Energy of channels per local period of their site's zone (telemetry/periods.py cuts the calendar).

- Hours come from the 15-minute UTC buckets, each put in its hour by `width_bucket` over the
  hour boundaries: the repeated hour of a DST change is two hours, :30/:45 zones cut at their own hours.
- Days, weeks, months, years and billing periods are sums of the channels' local days
  (`telemetry_energyday`, kept in step with the buckets and cut in the site's zone), so the zone
  given must be the channels' site zone.

Coverage is the covered seconds over the period's length measured in UTC (23/24/25-hour days).
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

from .periods import PERIODS, LocalPeriod, check_period, local_periods

__all__ = ["PERIODS", "PeriodEnergy", "PeriodTotals", "data_span", "energy_by_local_period", "period_totals"]

_HOURS_FROM_BUCKETS = """
    SELECT channel_id, width_bucket(start, %(bounds)s::timestamptz[]) - 1, sum(energy_wh), sum(covered_seconds), sum(estimated_wh)
    FROM telemetry_energybucket
    WHERE channel_id = ANY(%(channels)s) AND start >= %(first)s AND start < %(last)s
    GROUP BY 1, 2
"""
_PERIODS_FROM_DAYS = """
    SELECT channel_id, width_bucket(day, %(bounds)s::date[]) - 1, sum(energy_wh), sum(covered_seconds), sum(estimated_wh)
    FROM telemetry_energyday
    WHERE channel_id = ANY(%(channels)s) AND day >= %(first)s AND day < %(last)s
    GROUP BY 1, 2
"""


@dataclass(frozen=True)
class PeriodTotals:
    energy_wh: float = 0.0
    covered_seconds: float = 0.0
    estimated_wh: float = 0.0


@dataclass(frozen=True)
class PeriodEnergy:
    channel_id: int
    start: datetime  # aware, in the site's zone
    energy_wh: float
    coverage: float  # share of the period lying between known samples
    estimated_wh: float = 0.0
    label: str = ""

    @property
    def local_date(self) -> date:
        return self.start.date()


def period_totals(
    channel_ids, zone: str, period: str, start: date, end: date, anchor_day: int = 1
) -> tuple[list[LocalPeriod], dict[tuple[int, int], PeriodTotals]]:
    """The local periods covering the local dates [start, end), and each channel's totals per period
    index, for the (channel, period) pairs that have data."""
    periods = local_periods(zone, period, start, end, anchor_day)
    if not periods or not channel_ids:
        return periods, {}
    if period == "hour":
        bounds = [p.start for p in periods] + [periods[-1].end]
        sql = _HOURS_FROM_BUCKETS
    else:
        tz = ZoneInfo(zone)
        bounds = [p.local_start.date() for p in periods] + [periods[-1].end.astimezone(tz).date()]
        sql = _PERIODS_FROM_DAYS
    with connection.cursor() as cursor:
        cursor.execute(sql, {"channels": list(channel_ids), "bounds": bounds, "first": bounds[0], "last": bounds[-1]})
        rows = cursor.fetchall()
    return periods, {(channel_id, index): PeriodTotals(*figures) for channel_id, index, *figures in rows}


def data_span(channel_ids) -> tuple[date, date] | None:
    """The first and last local days on which any of the channels has energy rows."""
    if not channel_ids:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(day), max(day) FROM telemetry_energyday WHERE channel_id = ANY(%s)", [list(channel_ids)])
        first, last = cursor.fetchone()
    return None if first is None else (first, last)


def energy_by_local_period(
    channel_ids, zone: str, period: str, start: date | None = None, end: date | None = None, anchor_day: int = 1
) -> list[PeriodEnergy]:
    """Each channel's energy per local period that has data, in time order; by default over all its data."""
    check_period(period)
    if start is None or end is None:
        span = data_span(channel_ids)
        if span is None:
            return []
        start = start or span[0]
        end = end or span[1] + timedelta(days=1)
    periods, totals = period_totals(channel_ids, zone, period, start, end, anchor_day)
    result = []
    for (channel_id, index), figures in sorted(totals.items(), key=lambda item: (item[0][1], item[0][0])):
        if 0 <= index < len(periods):
            local = periods[index]
            result.append(
                PeriodEnergy(
                    channel_id, local.local_start, figures.energy_wh, figures.covered_seconds / local.seconds,
                    figures.estimated_wh, local.label,
                )
            )
    return result
