"""Keep a channel's 15-minute energy buckets equal to what its stored readings say.

The invariant, kept by every transaction under the channel's lock: the buckets
are the energy of all the channel's stored readings. Energy is a sum over
consecutive readings, so new readings change only the intervals between their
stored neighbours: before inserting a batch, the stored readings around it are
read (for an in-order batch, just the newest one), and each bucket gets the
difference between the intervals with and without the new readings. A late,
out-of-order, repeated or concurrent batch costs the same few statements as an
in-order one, whatever the number of channels, and gives the same buckets as a
clean stream. `recompute_counter_buckets` rebuilds buckets from scratch.
"""

from datetime import datetime

from django.db import connection

from .energy import Sample, bucket_ceil, bucket_changes, bucket_floor, counter_intervals, spread_into_buckets
from .models import Reading
from .storage import add_to_buckets, readings_around, replace_buckets

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


def stored_around(batch: dict[int, list[Sample]]) -> dict[int, list[Sample]]:
    """Read before inserting the batch, under the channels' locks: the stored samples its energy depends on."""
    spans = {channel_id: (min(s.time for s in samples), max(s.time for s in samples)) for channel_id, samples in batch.items()}
    return {channel_id: [Sample(t, v) for t, v in rows] for channel_id, rows in readings_around(spans).items()}


def roll_up_counter_batch(batch: dict[int, list[Sample]], stored: dict[int, list[Sample]]) -> None:
    """Add the batch's energy changes to the buckets, once its readings are inserted.

    `stored`: from `stored_around`, read before the insert under the same locks.
    """
    additions = []
    for channel_id, samples in batch.items():
        for start, change in bucket_changes(stored.get(channel_id, []), samples).items():
            additions.append((channel_id, start, change.energy_wh, change.covered_seconds, 0.0, None, None))
    add_to_buckets(additions)


def recompute_counter_buckets(channel_id: int, changed_from: datetime, changed_to: datetime) -> int:
    """Recompute every bucket whose energy depends on readings in [changed_from, changed_to].

    A reading changes the intervals to its neighbours, so the range widens to the
    stored neighbours; whole buckets are then rebuilt from every reading that
    touches them. Call inside the transaction that holds the channel's lock.
    """
    readings = Reading.objects.filter(channel_id=channel_id)
    before = readings.filter(time__lt=changed_from).order_by("-time").values_list("time", flat=True).first()
    after = readings.filter(time__gt=changed_to).order_by("time").values_list("time", flat=True).first()
    first_bucket = bucket_floor(before or changed_from)
    end_bucket = bucket_ceil(after or changed_to)

    # Every interval overlapping [first_bucket, end_bucket) starts at or after the
    # last reading at or before first_bucket, and ends at or before the first one after end_bucket.
    start_anchor = readings.filter(time__lte=first_bucket).order_by("-time").values_list("time", flat=True).first()
    end_anchor = readings.filter(time__gte=end_bucket).order_by("time").values_list("time", flat=True).first()
    window = readings
    if start_anchor is not None:
        window = window.filter(time__gte=start_anchor)
    if end_anchor is not None:
        window = window.filter(time__lte=end_anchor)
    samples = [Sample(t, v) for t, v in window.order_by("time").values_list("time", "value")]

    totals = spread_into_buckets(counter_intervals(samples))
    rows = [
        (start, total.energy_wh, total.covered_seconds, 0.0, None, None)
        for start, total in sorted(totals.items())
        if first_bucket <= start < end_bucket
    ]
    replace_buckets({(channel_id, first_bucket, end_bucket): rows})
    return len(rows)
