"""Intervals of known energy shared among 15-minute UTC buckets, the atom every view is built from."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .samples import Interval

BUCKET = timedelta(minutes=15)
BUCKET_SECONDS = BUCKET.total_seconds()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class BucketTotal:
    energy_wh: float = 0.0
    covered_seconds: float = 0.0  # how much of the bucket lies within an interval of known energy
    estimated_wh: float = 0.0  # energy whose place in time is estimated
    min_power_w: float | None = None
    max_power_w: float | None = None

    @property
    def coverage(self) -> float:
        return self.covered_seconds / BUCKET_SECONDS

    def widen(self, low: float, high: float) -> None:
        self.min_power_w = low if self.min_power_w is None else min(self.min_power_w, low)
        self.max_power_w = high if self.max_power_w is None else max(self.max_power_w, high)


def bucket_floor(t: datetime) -> datetime:
    return t - (t - _EPOCH) % BUCKET


def bucket_ceil(t: datetime) -> datetime:
    floor = bucket_floor(t)
    return floor if floor == t else floor + BUCKET


def bucket_starts(interval: Interval):
    """The buckets the interval overlaps."""
    start = bucket_floor(interval.start)
    while start < interval.end:
        yield start
        start += BUCKET


def spread_into_buckets(intervals) -> dict[datetime, BucketTotal]:
    """Share each interval's energy among the buckets it overlaps.

    Constant power shares it in proportion to time; a straight line between two power
    samples gives each part the integral of the line over it.
    """
    buckets: dict[datetime, BucketTotal] = defaultdict(BucketTotal)
    for interval in intervals:
        length = interval.seconds
        if length <= 0:
            continue
        linear = interval.power_at_start_w is not None and interval.power_at_end_w is not None
        first = bucket_floor(interval.start)
        if interval.end <= first + BUCKET:  # within one bucket, as most intervals of minute data are
            total = buckets[first]
            if linear:
                total.widen(min(interval.power_at_start_w, interval.power_at_end_w), max(interval.power_at_start_w, interval.power_at_end_w))
            else:
                power = interval.energy_wh * 3600.0 / length
                total.widen(power, power)
            total.energy_wh += interval.energy_wh
            total.covered_seconds += length
            if interval.estimated:
                total.estimated_wh += interval.energy_wh
            continue
        for start in bucket_starts(interval):
            part_start, part_end = max(start, interval.start), min(start + BUCKET, interval.end)
            overlap = (part_end - part_start).total_seconds()
            total = buckets[start]
            if linear:
                power_from, power_to = interval.power_at(part_start), interval.power_at(part_end)
                energy = interval.energy_wh if overlap == length else (power_from + power_to) / 2 * overlap / 3600.0
                total.widen(min(power_from, power_to), max(power_from, power_to))
            else:
                energy = interval.energy_wh * overlap / length
                power = interval.energy_wh * 3600.0 / length
                total.widen(power, power)
            total.energy_wh += energy
            total.covered_seconds += overlap
            if interval.estimated:
                total.estimated_wh += energy
    return dict(buckets)
