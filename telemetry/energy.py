"""Energy maths on plain samples: from counter readings to energy in 15-minute buckets.

No Django here, so every rule is tested alone and fast.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

BUCKET = timedelta(minutes=15)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Sample:
    time: datetime  # measurement time, aware
    value: float


@dataclass(frozen=True)
class Interval:
    """Energy known to have flowed between two instants."""

    start: datetime
    end: datetime
    energy_wh: float


@dataclass
class BucketTotal:
    energy_wh: float = 0.0
    covered_seconds: float = 0.0  # how much of the bucket lies between two known samples

    @property
    def coverage(self) -> float:
        return self.covered_seconds / BUCKET.total_seconds()


def bucket_floor(t: datetime) -> datetime:
    return t - (t - _EPOCH) % BUCKET


def bucket_ceil(t: datetime) -> datetime:
    floor = bucket_floor(t)
    return floor if floor == t else floor + BUCKET


def counter_intervals(samples: list[Sample]) -> list[Interval]:
    """Energy between consecutive counter samples, in measurement-time order.

    Samples with the same time are one measurement (a re-delivered message).
    A drop is a meter reset: the counter starts again from zero, so the new
    value is the energy since the reset.
    """
    ordered = sorted({s.time: s for s in samples}.values(), key=lambda s: s.time)
    intervals = []
    for previous, current in zip(ordered, ordered[1:]):
        delta = current.value - previous.value
        energy = delta if delta >= 0 else current.value
        intervals.append(Interval(previous.time, current.time, energy))
    return intervals


def spread_into_buckets(intervals: list[Interval]) -> dict[datetime, BucketTotal]:
    """Share each interval's energy among the 15-minute buckets it overlaps, in proportion to time."""
    buckets: dict[datetime, BucketTotal] = defaultdict(BucketTotal)
    for interval in intervals:
        length = (interval.end - interval.start).total_seconds()
        if length <= 0:
            continue
        start = bucket_floor(interval.start)
        while start < interval.end:
            overlap_start = max(start, interval.start)
            overlap_end = min(start + BUCKET, interval.end)
            overlap = (overlap_end - overlap_start).total_seconds()
            total = buckets[start]
            total.energy_wh += interval.energy_wh * overlap / length
            total.covered_seconds += overlap
            start += BUCKET
    return dict(buckets)
