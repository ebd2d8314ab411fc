"""Demand: the average power of a set of channels over each demand interval, and each local month's peak.

Intervals (15, 30 or 60 minutes) follow the site's wall clock: a 30-minute interval in
Asia/Kolkata runs from local :00 and :30 (UTC :30 and :00), and the repeated hour of a DST
change gives separate intervals. Every figure is computed from the 15-minute buckets when asked,
so a peak is never a stored running maximum that a bad value could corrupt.
Demand is the interval's energy over its whole length (what a utility bills); coverage says
how much of it had data.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import connection

from .periods import period_boundaries, period_label

DEMAND_INTERVALS = (15, 30, 60)

# Each bucket's interval starts at the bucket's instant minus its wall-clock minutes past the interval start.
_INTERVALS = """
    WITH buckets AS (
        SELECT start, energy_wh, covered_seconds, start AT TIME ZONE %(zone)s AS wall
        FROM telemetry_energybucket
        WHERE channel_id = ANY(%(channels)s) AND start >= %(first)s AND start < %(last)s
    ), intervals AS (
        SELECT start - (wall - date_trunc('hour', wall)
                        - floor(extract(minute FROM wall) / %(minutes)s) * %(minutes)s * interval '1 minute') AS interval_start,
               sum(energy_wh) AS energy_wh, sum(covered_seconds) AS covered_seconds
        FROM buckets GROUP BY 1
    )
"""
_INTERVAL_ROWS = _INTERVALS + """
    SELECT interval_start, energy_wh, covered_seconds FROM intervals ORDER BY interval_start
"""
_MONTHLY_PEAKS = _INTERVALS + """
    SELECT DISTINCT ON (width_bucket(interval_start, %(months)s::timestamptz[]))
           width_bucket(interval_start, %(months)s::timestamptz[]) - 1, interval_start, energy_wh, covered_seconds
    FROM intervals
    ORDER BY width_bucket(interval_start, %(months)s::timestamptz[]), energy_wh DESC, interval_start
"""


@dataclass(frozen=True)
class DemandInterval:
    start: datetime  # aware, in the site's zone
    demand_w: float
    coverage: float

    @property
    def demand_kw(self) -> float:
        return self.demand_w / 1000


@dataclass(frozen=True)
class MonthlyPeak:
    month: str  # e.g. "2026-05"
    month_start: datetime  # aware, in the site's zone
    interval: DemandInterval  # the interval with the highest demand in the month (the earliest of equals)


def _interval(zone: ZoneInfo, minutes: int, channel_count: int, start: datetime, energy_wh: float, covered: float) -> DemandInterval:
    seconds = minutes * 60
    return DemandInterval(start.astimezone(zone), energy_wh * 3600 / seconds, covered / (seconds * max(channel_count, 1)))


def _parameters(channel_ids, zone: str, minutes: int, first: datetime, last: datetime) -> dict:
    if minutes not in DEMAND_INTERVALS:
        raise ValueError(f"demand interval must be one of {DEMAND_INTERVALS} minutes, not {minutes}")
    return {"channels": list(channel_ids), "zone": zone, "minutes": minutes, "first": first, "last": last}


def demand_intervals(channel_ids, zone: str, minutes: int, first: datetime, last: datetime) -> list[DemandInterval]:
    """The summed demand of the channels in each interval with data within [first, last) (UTC instants)."""
    if not channel_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_INTERVAL_ROWS, _parameters(channel_ids, zone, minutes, first, last))
        rows = cursor.fetchall()
    tz = ZoneInfo(zone)
    return [_interval(tz, minutes, len(channel_ids), *row) for row in rows]


def monthly_peaks(channel_ids, zone: str, minutes: int, start, end) -> list[MonthlyPeak]:
    """The peak interval of each local month covering the local dates [start, end) that has data."""
    if not channel_ids:
        return []
    months = period_boundaries(zone, "month", start, end)
    parameters = _parameters(channel_ids, zone, minutes, months[0], months[-1]) | {"months": months}
    with connection.cursor() as cursor:
        cursor.execute(_MONTHLY_PEAKS, parameters)
        rows = cursor.fetchall()
    tz = ZoneInfo(zone)
    return [
        MonthlyPeak(period_label(zone, "month", months[index]), months[index].astimezone(tz), _interval(tz, minutes, len(channel_ids), *row))
        for index, *row in rows
    ]
