"""How a channel's buckets and flags change when new samples join its stored ones.

The roll-up keeps one invariant: a channel's buckets are the energy of all its stored samples.
The rules look only at nearby samples (telemetry/energy/counters.py), so new samples change only
intervals near them: given the stored samples around the new ones (CONTEXT_SAMPLES on either
side, and all in between), the intervals computed with and without the new samples differ
exactly where the buckets must change. Intervals far from the new samples come out the same in
both, including those computed with a cut-short history at the window's edges, and cancel.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from .buckets import BucketTotal, bucket_starts, spread_into_buckets
from .counters import GLITCH_LOOKAHEAD, MEMORY_SAMPLES, counter_energy
from .power import power_energy
from .samples import COUNTER, Energy, Flag, Rules, Sample

# Stored samples read on either side of new ones: more than the rules look back or ahead.
CONTEXT_SAMPLES = 2 * (MEMORY_SAMPLES + GLITCH_LOOKAHEAD)


def energy_of(samples, rules: Rules) -> Energy:
    return counter_energy(samples, rules) if rules.kind == COUNTER else power_energy(samples, rules)


@dataclass
class BucketChanges:
    # Per bucket: energy, coverage and estimated energy to add; power extremes of what was added.
    additions: dict[datetime, BucketTotal] = field(default_factory=dict)
    # Buckets that lost an interval: their power extremes cannot be narrowed by adding, so they are rebuilt.
    rebuild: set[datetime] = field(default_factory=set)
    flags_added: list[Flag] = field(default_factory=list)
    flags_removed: list[Flag] = field(default_factory=list)

    def __bool__(self):
        return bool(self.additions or self.rebuild or self.flags_added or self.flags_removed)


def bucket_changes(stored: list[Sample], new: list[Sample], rules: Rules) -> BucketChanges:
    """`stored`: the stored samples within the span of `new` and CONTEXT_SAMPLES on either side of it.

    A new sample at the time of a stored one is a repeat: the stored value stands.
    """
    stored_times = {sample.time for sample in stored}
    added = [sample for sample in new if sample.time not in stored_times]
    if not added:
        return BucketChanges()
    before, after = energy_of(stored, rules), energy_of(stored + added, rules)
    gained = Counter(after.intervals) - Counter(before.intervals)
    lost = Counter(before.intervals) - Counter(after.intervals)
    changes = BucketChanges(
        flags_added=list((Counter(after.flags) - Counter(before.flags)).elements()),
        flags_removed=list((Counter(before.flags) - Counter(after.flags)).elements()),
    )
    changes.additions = spread_into_buckets(gained.elements())
    for start, taken in spread_into_buckets(lost.elements()).items():
        total = changes.additions.setdefault(start, BucketTotal())
        total.energy_wh -= taken.energy_wh
        total.covered_seconds -= taken.covered_seconds
        total.estimated_wh -= taken.estimated_wh
    changes.rebuild = {start for interval in lost for start in bucket_starts(interval)}
    return changes
