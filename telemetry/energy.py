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


def bucket_changes(stored: list[Sample], new: list[Sample]) -> dict[datetime, BucketTotal]:
    """How the buckets change when `new` samples join a counter whose stored samples around them are `stored`.

    `stored` must hold every stored sample within the span of `new`, plus the
    stored neighbour on either side of it (if any): energy is a sum over
    consecutive pairs, so only the intervals between those neighbours change.
    A new sample at the time of a stored one is a repeat: the stored value stands.
    The result is new minus old per bucket; for samples newer than everything
    stored it is just the energy of the new intervals.
    """
    stored_times = {sample.time for sample in stored}
    added = [sample for sample in new if sample.time not in stored_times]
    if not added:
        return {}
    after = spread_into_buckets(counter_intervals(stored + added))
    before = spread_into_buckets(counter_intervals(stored))
    changes = {}
    for start in after.keys() | before.keys():
        now, then = after.get(start, BucketTotal()), before.get(start, BucketTotal())
        changes[start] = BucketTotal(now.energy_wh - then.energy_wh, now.covered_seconds - then.covered_seconds)
    return changes
