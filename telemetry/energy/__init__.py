"""Energy maths on plain samples: counters and power become intervals of known energy, then 15-minute buckets.

No Django here, so every rule is tested alone and fast:
- samples.py: the values (samples, intervals, flags, a channel's rules);
- counters.py: cumulative counters (resets, rollover, jitter, glitches, spikes, stale values);
- power.py: power samples integrated by the map's sampling rule, never across a long gap;
- buckets.py: intervals shared among 15-minute UTC buckets with coverage and power extremes;
- changes.py: what new samples change in the buckets, for the incremental roll-up.
"""

from .buckets import BUCKET, BucketTotal, bucket_ceil, bucket_floor, bucket_starts, spread_into_buckets
from .changes import CONTEXT_SAMPLES, SHORT_CONTEXT_SAMPLES, BucketChanges, bucket_changes, energy_of, short_context_suffices
from .counters import counter_energy
from .power import power_energy
from .samples import COUNTER, INSTANT, INTERVAL_AVERAGE, INTERVAL_AVERAGE_START, KINDS, Energy, Flag, Interval, Rules, Sample

__all__ = [
    "BUCKET", "BucketTotal", "bucket_ceil", "bucket_floor", "bucket_starts", "spread_into_buckets",
    "CONTEXT_SAMPLES", "SHORT_CONTEXT_SAMPLES", "short_context_suffices", "BucketChanges", "bucket_changes", "energy_of", "counter_energy", "power_energy",
    "COUNTER", "INSTANT", "INTERVAL_AVERAGE", "INTERVAL_AVERAGE_START", "KINDS", "Energy", "Flag", "Interval", "Rules", "Sample",
]
