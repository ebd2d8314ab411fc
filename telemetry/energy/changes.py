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
from .counters import GLITCH_LOOKAHEAD, MEMORY_SAMPLES, counter_energy, run_counter
from .power import power_energy
from .samples import COUNTER, Energy, Flag, Rules, Sample, in_time_order

# Stored samples read on either side of new ones where the short read below is not enough: the memory
# of the verdicts a new sample can change, and of the samples whose memory holds it, counted in valid
# samples. Glitches and spikes sit among them, so the reach is generous: the result is exact while
# fewer than about 50 readings in a row are invalid. Few batches need it, so its size costs little.
CONTEXT_SAMPLES = 64
# Enough before samples newer than every stored one, when the stored ones broke no rule: the memory
# of the verdicts the new samples can change. Most batches are such; the rest read CONTEXT_SAMPLES.
SHORT_CONTEXT_SAMPLES = MEMORY_SAMPLES + GLITCH_LOOKAHEAD + 1


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
    stored_flagged: bool = False  # the rules flagged some of the stored samples given

    def __bool__(self):
        return bool(self.additions or self.rebuild or self.flags_added or self.flags_removed)


def _before_and_after(stored: list[Sample], added: list[Sample], rules: Rules) -> tuple[Energy, Energy]:
    """The rules with and without the added samples. Added samples newer than every stored one (the
    usual case) are judged by resuming the run over the stored ones just before its last verdicts
    that could not yet see them: the stored samples are gone through once, not twice."""
    if rules.kind == COUNTER and stored:
        ordered = in_time_order(stored)
        newer = in_time_order(added)
        if newer[0].time > ordered[-1].time:
            before, checkpoint = run_counter(ordered, rules, checkpoint_until=len(ordered) - 1 - GLITCH_LOOKAHEAD)
            if checkpoint is not None:
                return before, run_counter(ordered + newer, rules, resume=(checkpoint, before))[0]
    return energy_of(stored, rules), energy_of(stored + added, rules)


def _difference(now: list, then: list) -> tuple[Counter, Counter]:
    """What `now` has that `then` has not, and the reverse, as multisets. Both lists run in time
    order and mostly agree at both ends: only the middle where they differ is counted."""
    start, end = 0, 0
    limit = min(len(now), len(then))
    while start < limit and now[start] == then[start]:
        start += 1
    while end < limit - start and now[-1 - end] == then[-1 - end]:
        end += 1
    now_middle, then_middle = Counter(now[start:len(now) - end]), Counter(then[start:len(then) - end])
    return now_middle - then_middle, then_middle - now_middle


def bucket_changes(stored: list[Sample], new: list[Sample], rules: Rules) -> BucketChanges:
    """`stored`: the stored samples within the span of `new` and CONTEXT_SAMPLES on either side of it.

    A new sample at the time of a stored one is a repeat: the stored value stands.
    """
    stored_times = {sample.time for sample in stored}
    added = [sample for sample in new if sample.time not in stored_times]
    if not added:
        return BucketChanges()
    before, after = _before_and_after(stored, added, rules)
    gained, lost = _difference(after.intervals, before.intervals)
    flags_added, flags_removed = _difference(after.flags, before.flags)
    changes = BucketChanges(stored_flagged=bool(before.flags), flags_added=list(flags_added.elements()),
                            flags_removed=list(flags_removed.elements()))
    changes.additions = spread_into_buckets(gained.elements())
    for start, taken in spread_into_buckets(lost.elements()).items():
        total = changes.additions.setdefault(start, BucketTotal())
        total.energy_wh -= taken.energy_wh
        total.covered_seconds -= taken.covered_seconds
        total.estimated_wh -= taken.estimated_wh
    changes.rebuild = {start for interval in lost for start in bucket_starts(interval)}
    return changes


def short_context_suffices(stored: list[Sample], new: list[Sample], changes: BucketChanges) -> bool:
    """Whether changes worked out from SHORT_CONTEXT_SAMPLES stored samples before `new` are exact:
    the new samples follow every stored one, and the stored ones are all there is or broke no rule."""
    if not stored:
        return True
    in_order = min(sample.time for sample in new) > max(sample.time for sample in stored)
    return in_order and (len(stored) < SHORT_CONTEXT_SAMPLES or not changes.stored_flagged)
