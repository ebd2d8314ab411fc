"""Keep a channel's 15-minute buckets and reading flags equal to what its stored readings say.

The invariant, kept by every transaction under the channel's lock: the buckets and flags are
the energy rules applied to all the channel's stored readings. The rules look only at nearby
readings, so before a batch is inserted the stored readings around it are read (for an
in-order batch, the channel's newest few), and each bucket gets what the new readings change
(telemetry/energy/changes.py). A late, out-of-order, repeated or concurrent batch costs the
same few statements as an in-order one and gives the same buckets as a clean stream. A bucket
that loses an interval (a late reading between two stored ones, a sample found to be a glitch)
is rebuilt from the stored readings after the insert. `recompute_channel` rebuilds a whole
channel from scratch: the reference the tests compare against, and the repair tool.
"""

import gc
from datetime import datetime

from django.db import connection

from .energy import (
    BUCKET,
    CONTEXT_SAMPLES,
    SHORT_CONTEXT_SAMPLES,
    BucketChanges,
    Rules,
    Sample,
    bucket_changes,
    bucket_floor,
    energy_of,
    short_context_suffices,
    spread_into_buckets,
)
from .models import EnergyBucket, ReadingFlag
from .storage import add_to_buckets, all_readings, newest_readings, readings_around, replace_buckets, write_flags

# Namespace of the PostgreSQL advisory locks that serialise writers of one channel.
CHANNEL_LOCK_NAMESPACE = 7_101


def lock_channels(channel_ids) -> None:
    """Take the channels' transaction locks in id order, so two writers never deadlock; one round trip."""
    if not channel_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s::int, id::int)) FROM (SELECT unnest(%s::bigint[]) AS id ORDER BY 1) AS ordered",
            [CHANNEL_LOCK_NAMESPACE, sorted(set(channel_ids))],
        )


def plan_roll_up(batch: dict[int, list[Sample]], rules: dict[int, Rules]) -> dict[int, BucketChanges]:
    """Before the batch is inserted, under the channels' locks: what it changes in each channel's buckets and flags.

    Most batches are newer than everything stored: each channel's newest few readings are read
    (one probe a channel) and are enough unless the rules flagged some of them. The other
    channels (late samples, flagged ones) are read again around their samples with the whole context.
    """
    planned, again = {}, []
    newest = newest_readings(list(batch), SHORT_CONTEXT_SAMPLES)
    for channel_id, samples in batch.items():
        stored = [Sample(t, v) for t, v in newest[channel_id]]
        changes = bucket_changes(stored, samples, rules[channel_id])
        if short_context_suffices(stored, samples, changes):
            planned[channel_id] = changes
        else:
            again.append((channel_id, min(s.time for s in samples), max(s.time for s in samples)))
    for (channel_id, _, _), rows in zip(again, readings_around(again, CONTEXT_SAMPLES)):
        planned[channel_id] = bucket_changes([Sample(t, v) for t, v in rows], batch[channel_id], rules[channel_id])
    return planned


def roll_up_batch(planned: dict[int, BucketChanges], rules: dict[int, Rules]) -> None:
    """Bring the buckets and flags in step with the batch, once its readings are inserted.

    `planned`: from `plan_roll_up`, worked out before the insert under the same locks.
    """
    additions, rebuild, flags_removed, flags_added = [], {}, [], []
    for channel_id, changes in planned.items():
        for start, change in changes.additions.items():
            if start not in changes.rebuild:
                additions.append((channel_id, start, change.energy_wh, change.covered_seconds, change.estimated_wh,
                                  change.min_power_w, change.max_power_w))
        if changes.rebuild:
            rebuild[channel_id] = changes.rebuild
        flags_removed += [(channel_id, flag.time) for flag in changes.flags_removed]
        flags_added += [(channel_id, flag.time, flag.kind, flag.detail) for flag in changes.flags_added]
    add_to_buckets(additions)
    rebuild_buckets({channel_id: (starts, rules[channel_id]) for channel_id, starts in rebuild.items()})
    write_flags(flags_removed, flags_added)


def _ranges(starts) -> list[tuple[datetime, datetime]]:
    """Bucket starts merged into runs [first, end)."""
    ranges: list[list[datetime]] = []
    for start in sorted(starts):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + BUCKET
        else:
            ranges.append([start, start + BUCKET])
    return [(first, end) for first, end in ranges]


def rebuild_buckets(wanted: dict[int, tuple[set[datetime], Rules]]) -> None:
    """Make the given buckets exactly what the stored readings say: every reading in them, and the rules' context around."""
    spans = [(channel_id, first, end) for channel_id, (starts, _) in wanted.items() for first, end in _ranges(starts)]
    windows = readings_around(spans, CONTEXT_SAMPLES)
    rows_by_range = {}
    for (channel_id, first, end), rows in zip(spans, windows):
        totals = spread_into_buckets(energy_of([Sample(t, v) for t, v in rows], wanted[channel_id][1]).intervals)
        rows_by_range[(channel_id, first, end)] = [
            (start, t.energy_wh, t.covered_seconds, t.estimated_wh, t.min_power_w, t.max_power_w)
            for start, t in sorted(totals.items()) if first <= start < end
        ]
    replace_buckets(rows_by_range)


def recompute_channel(channel_id: int, rules: Rules) -> int:
    """Rebuild all the channel's buckets and flags from its stored readings. Call under the channel's lock."""
    # Millions of small objects and no cycles among them: the collector's full passes would only cost time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        samples = [Sample(t, v) for t, v in all_readings(channel_id)]
        energy = energy_of(samples, rules)
        totals = spread_into_buckets(energy.intervals)
        del samples
    finally:
        if collecting:
            gc.enable()
    stored = EnergyBucket.objects.filter(channel_id=channel_id).values_list("start", flat=True)
    first = min([*totals, *stored], default=None)
    if first is None:
        return 0
    end = max([*totals, *stored]) + BUCKET
    rows = [(start, t.energy_wh, t.covered_seconds, t.estimated_wh, t.min_power_w, t.max_power_w) for start, t in sorted(totals.items())]
    replace_buckets({(channel_id, bucket_floor(first), end): rows})
    ReadingFlag.objects.filter(channel_id=channel_id).delete()
    write_flags([], [(channel_id, flag.time, flag.kind, flag.detail) for flag in energy.flags])
    return len(rows)
