"""Meter streams with the faults real meters produce, and a pure model of the incremental roll-up.

The model does what telemetry/rollup.py does with the database: for each batch it reads the
stored samples around it (a short context first, the whole where that is not enough), adds the bucket changes, rebuilds the buckets that lost an interval,
and keeps the flags; the tests compare it with the rules applied to the whole stream at once.
"""

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from telemetry.energy import (
    CONTEXT_SAMPLES,
    SHORT_CONTEXT_SAMPLES,
    BucketTotal,
    Rules,
    Sample,
    bucket_changes,
    energy_of,
    short_context_suffices,
    spread_into_buckets,
)
from telemetry.rollup import _ranges

START = datetime(2024, 3, 30, 22, 0, tzinfo=timezone.utc)
COUNTER_RULES = Rules(max_power_w=50_000.0)
ROLLOVER_RULES = Rules(max_power_w=50_000.0, rollover_wh=10_000.0)

# What happens before the next sample: a plain rise, and the faults of energy-cases.md.
EVENTS = ["rise", "rise", "rise", "rise", "repeat", "reset", "glitch_zero", "spike", "jitter", "gap", "double_step"]


@st.composite
def counter_streams(draw, min_size=2, max_size=60, rollover=None):
    """A counter's samples in time order, with resets, glitches, spikes, jitter, stale repeats and gaps."""
    time, value = START, draw(st.floats(0, 9_000)) if rollover else draw(st.floats(0, 50_000))
    value = round(value, 3)
    samples = [Sample(time, value)]
    for _ in range(draw(st.integers(min_size - 1, max_size - 1))):
        event = draw(st.sampled_from(EVENTS))
        time += timedelta(seconds=draw(st.sampled_from([1, 10, 60, 300, 899, 900, 3600])) * (50 if event == "gap" else 1))
        if event == "glitch_zero":
            samples.append(Sample(time, 0.0))
            time += timedelta(seconds=10)
        elif event == "spike":
            samples.append(Sample(time, value + 1e7))
            time += timedelta(seconds=10)
        if event == "reset":
            value = round(draw(st.floats(0, 3)), 3)
        elif event == "jitter":
            value = round(value - abs(value) * 5e-5, 6)
        elif event in ("rise", "gap", "double_step"):
            value = round(value + draw(st.floats(0, 2 if event != "double_step" else 4)), 3)
        if rollover and value >= rollover:
            value = round(value - rollover, 3)
        samples.append(Sample(time, value))
    return samples


@st.composite
def power_streams(draw, min_size=2, max_size=60):
    time, samples = START, []
    for _ in range(draw(st.integers(min_size, max_size))):
        time += timedelta(seconds=draw(st.sampled_from([1, 10, 60, 299, 900, 1800, 7200])))
        samples.append(Sample(time, round(draw(st.floats(-5_000, 60_000)), 1)))
    return samples


def around(stored: dict[datetime, Sample], first: datetime, last: datetime, before: int = CONTEXT_SAMPLES,
           after: int = CONTEXT_SAMPLES) -> list[Sample]:
    """What the database query returns: stored samples within [first, last], `before` before and `after` after."""
    ordered = sorted(stored.values(), key=lambda s: s.time)
    earlier = [s for s in ordered if s.time < first][-before:]
    inside = [s for s in ordered if first <= s.time <= last]
    later = [s for s in ordered if s.time > last][:after]
    return earlier + inside + later


class RollUpModel:
    def __init__(self, rules: Rules):
        self.rules = rules
        self.stored: dict[datetime, Sample] = {}
        self.buckets: dict[datetime, BucketTotal] = {}
        self.flags: dict[datetime, str] = {}

    def ingest(self, batch: list[Sample]) -> None:
        if not batch:
            return
        first, last = min(s.time for s in batch), max(s.time for s in batch)
        window = around(self.stored, first, last, before=SHORT_CONTEXT_SAMPLES)
        changes = bucket_changes(window, batch, self.rules)
        if not short_context_suffices(window, batch, changes):
            changes = bucket_changes(around(self.stored, first, last), batch, self.rules)
        for sample in batch:
            self.stored.setdefault(sample.time, sample)
        for start, change in changes.additions.items():
            if start in changes.rebuild:
                continue
            total = self.buckets.setdefault(start, BucketTotal())
            total.energy_wh += change.energy_wh
            total.covered_seconds += change.covered_seconds
            total.estimated_wh += change.estimated_wh
            if change.min_power_w is not None:
                total.widen(change.min_power_w, change.max_power_w)
        for first, end in _ranges(changes.rebuild):
            totals = spread_into_buckets(energy_of(around(self.stored, first, end), self.rules).intervals)
            for start in [s for s in self.buckets if first <= s < end]:
                del self.buckets[start]
            self.buckets.update({start: total for start, total in totals.items() if first <= start < end})
        for flag in changes.flags_removed:
            self.flags.pop(flag.time, None)
        for flag in changes.flags_added:
            self.flags[flag.time] = flag.kind


def from_scratch(samples: list[Sample], rules: Rules) -> tuple[dict[datetime, BucketTotal], dict[datetime, str]]:
    energy = energy_of(samples, rules)
    return spread_into_buckets(energy.intervals), {flag.time: flag.kind for flag in energy.flags}


def assert_same_buckets(kept: dict, expected: dict) -> None:
    import pytest

    for start in kept.keys() | expected.keys():
        got, want = kept.get(start, BucketTotal()), expected.get(start, BucketTotal())
        for name in ("energy_wh", "covered_seconds", "estimated_wh"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-6), (start, name)
        for name in ("min_power_w", "max_power_w"):
            if getattr(want, name) is None or getattr(got, name) is None:
                # A bucket whose intervals all cancelled out may keep a stale extreme only with no energy and no coverage.
                assert getattr(got, name) == getattr(want, name) or want.covered_seconds == 0, (start, name)
            else:
                assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-6), (start, name)
