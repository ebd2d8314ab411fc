"""Energy per local hour, day and month, built from the 15-minute UTC buckets in the site's zone.

Each bucket is assigned to the local period that contains it, and the period is
named by the UTC instant it starts at:
- a day or month starts at local midnight (`date_trunc` on the wall time, turned
  back into an instant in the zone), so a day is 23, 24 or 25 hours long as the
  calendar says;
- an hour starts at the bucket's instant minus its minutes past the local hour,
  so the hour that repeats when DST ends gives two separate hours, and zones with
  :30 and :45 offsets cut hours at their own wall-clock hours.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from django.db import connection

PERIODS = ("hour", "day", "month")


@dataclass(frozen=True)
class PeriodEnergy:
    channel_id: int
    start: datetime  # aware, in the site's zone
    energy_wh: float
    coverage: float  # share of the period lying between known samples

    @property
    def local_date(self) -> date:
        return self.start.date()


def period_seconds(start: datetime, period: str) -> float:
    """Length of the local period beginning at `start`, measured in UTC (23/24/25-hour days)."""
    if period == "hour":
        return 3600.0
    zone = start.tzinfo
    if period == "day":
        following = start.date() + timedelta(days=1)
    else:
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return (end.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds()


def energy_by_local_period(channel_ids, zone: str, period: str) -> list[PeriodEnergy]:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, not {period!r}")
    sql = """
        SELECT channel_id,
               CASE WHEN %(period)s = 'hour'
                    THEN start - (wall - date_trunc('hour', wall))
                    ELSE date_trunc(%(period)s, wall) AT TIME ZONE %(zone)s
               END AS period_start,
               sum(energy_wh), sum(covered_seconds)
        FROM (SELECT channel_id, start, energy_wh, covered_seconds, start AT TIME ZONE %(zone)s AS wall
              FROM telemetry_energybucket WHERE channel_id = ANY(%(channels)s)) AS buckets
        GROUP BY 1, 2
        ORDER BY 2, 1
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"zone": zone, "channels": list(channel_ids), "period": period})
        rows = cursor.fetchall()
    tz = ZoneInfo(zone)
    result = []
    for channel_id, instant, energy, covered in rows:
        start = instant.astimezone(tz)
        result.append(PeriodEnergy(channel_id, start, energy, covered / period_seconds(start, period)))
    return result
