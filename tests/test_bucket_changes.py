"""Buckets kept by adding each batch's changes equal buckets computed from every reading at once.

Pure functions first (many random streams, fast), then through ingest and PostgreSQL
against `recompute_counter_buckets`, the from-scratch definition.
"""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from telemetry.energy import BucketTotal, Sample, bucket_changes, counter_intervals, spread_into_buckets

START = datetime(2024, 3, 30, 22, 0, tzinfo=timezone.utc)


def random_counter(rng: random.Random, count: int) -> list[Sample]:
    """Irregular times (seconds to hours apart), rising values, now and then a reset to near zero."""
    samples, time, value = [], START, rng.uniform(0, 5000)
    for _ in range(count):
        time += timedelta(seconds=rng.choice([1, 7, 60, 300, 899, 900, 3600, 7321]))
        value = rng.uniform(0, 3) if rng.random() < 0.05 else value + rng.uniform(0, 2)
        samples.append(Sample(time, round(value, 3)))
    return samples


def neighbours(stored: list[Sample], batch: list[Sample]) -> list[Sample]:
    """What the database query returns: stored samples within the batch's span and one either side."""
    first, last = min(s.time for s in batch), max(s.time for s in batch)
    ordered = sorted(stored, key=lambda s: s.time)
    before = [s for s in ordered if s.time < first][-1:]
    inside = [s for s in ordered if first <= s.time <= last]
    after = [s for s in ordered if s.time > last][:1]
    return before + inside + after


def add(buckets: dict, changes: dict) -> None:
    for start, change in changes.items():
        total = buckets.setdefault(start, BucketTotal())
        total.energy_wh += change.energy_wh
        total.covered_seconds += change.covered_seconds


def assert_equal_buckets(kept: dict, expected: dict) -> None:
    for start in kept.keys() | expected.keys():
        got, want = kept.get(start, BucketTotal()), expected.get(start, BucketTotal())
        assert got.energy_wh == pytest.approx(want.energy_wh, rel=1e-9, abs=1e-6), start
        assert got.covered_seconds == pytest.approx(want.covered_seconds, rel=1e-9, abs=1e-6), start


@pytest.mark.parametrize("seed", range(200))
def test_batches_in_any_order_with_repeats_add_up_to_the_whole_stream(seed):
    rng = random.Random(seed)
    stream = random_counter(rng, rng.randint(2, 60))
    deliveries = stream + rng.sample(stream, rng.randint(0, len(stream)))  # some delivered twice
    rng.shuffle(deliveries)
    cuts = sorted(rng.sample(range(1, len(deliveries)), min(len(deliveries) - 1, rng.randint(0, 8))))

    stored: dict[datetime, Sample] = {}
    kept: dict = {}
    for a, b in zip([0] + cuts, cuts + [len(deliveries)]):
        batch = deliveries[a:b]
        add(kept, bucket_changes(neighbours(list(stored.values()), batch), batch))
        for sample in batch:
            stored.setdefault(sample.time, sample)

    assert_equal_buckets(kept, spread_into_buckets(counter_intervals(stream)))


def test_a_repeat_at_a_stored_time_keeps_the_stored_value():
    stored = [Sample(START, 10.0), Sample(START + timedelta(hours=1), 11.0)]

    assert bucket_changes(stored, [Sample(START + timedelta(hours=1), 99.0)]) == {}


# Through ingest and PostgreSQL


def native(device: str, sample: Sample) -> dict:
    payload = json.dumps({"ts": sample.time.isoformat(), "channels": {"main": {"energy_kwh": sample.value}}})
    return {"topic": f"iotwatt/{device}/telemetry", "payload": payload, "received_at": sample.time.isoformat()}


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(8))
def test_ingested_batches_in_any_order_equal_a_recomputation_from_the_readings(seed):
    from telemetry.ingest import ingest_messages
    from telemetry.models import EnergyBucket
    from telemetry.rollup import recompute_counter_buckets
    from tests.test_local_periods import make_channel

    rng = random.Random(seed)
    channel = make_channel("Europe/Berlin", device="random")
    stream = random_counter(rng, 80)
    deliveries = stream + rng.sample(stream, 20)
    rng.shuffle(deliveries)
    for a in range(0, len(deliveries), 9):
        ingest_messages([native("random", s) for s in deliveries[a : a + 9]])
    kept = {b.start: BucketTotal(b.energy_wh, b.covered_seconds) for b in EnergyBucket.objects.filter(channel=channel)}

    EnergyBucket.objects.filter(channel=channel).delete()
    recompute_counter_buckets(channel.id, stream[0].time, stream[-1].time)
    recomputed = {b.start: BucketTotal(b.energy_wh, b.covered_seconds) for b in EnergyBucket.objects.filter(channel=channel)}

    assert recomputed and kept.keys() >= recomputed.keys()
    assert_equal_buckets(kept, recomputed)
