"""Keep a channel's 15-minute energy buckets equal to what its stored readings say.

The invariant, kept by every transaction under the channel's lock: the buckets
are the energy of all the channel's stored readings. Readings newer than
everything stored only add intervals after the newest one, so their energy is
added to the buckets without reading anything back (the common, in-order case);
a late or out-of-order reading changes intervals already counted, so the
buckets it touches are recomputed from the readings. Either way a repeated,
late or out-of-order reading gives the same buckets as a clean stream.
"""

from datetime import datetime

from django.db import connection

from .energy import Sample, bucket_ceil, bucket_floor, counter_intervals, spread_into_buckets
from .models import Reading
from .storage import NewReadings, add_to_buckets, latest_readings, replace_buckets

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


def newest_stored(channel_ids) -> dict[int, Sample]:
    """Read before inserting a batch, under the channels' locks: where each channel's counted energy ends."""
    return {channel_id: Sample(time, value) for channel_id, (time, value) in latest_readings(channel_ids).items()}


def roll_up_counter_batch(batch: dict[int, list[Sample]], stored_before: dict[int, Sample], new: dict[int, NewReadings]) -> None:
    """Bring the buckets of the batch's counter channels up to date once its readings are inserted.

    `stored_before`: each channel's newest reading before the insert (from `newest_stored`);
    `new`: what the insert added. A channel the batch added nothing to keeps its buckets:
    a redelivered batch costs no roll-up.
    """
    additions = []
    for channel_id, samples in batch.items():
        added = new.get(channel_id)
        if added is None:
            continue
        newest = stored_before.get(channel_id)
        if newest is None or added.first > newest.time:
            # Everything inserted is newer than what was stored: the new intervals start at the newest
            # stored reading. Samples at or before it were repeats, already counted.
            anchored = [newest] + [s for s in samples if s.time > newest.time] if newest else samples
            for start, total in spread_into_buckets(counter_intervals(anchored)).items():
                additions.append((channel_id, start, total.energy_wh, total.covered_seconds))
        else:
            recompute_counter_buckets(channel_id, added.first, added.last)
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
        (start, total.energy_wh, total.covered_seconds)
        for start, total in sorted(totals.items())
        if first_bucket <= start < end_bucket
    ]
    replace_buckets(channel_id, first_bucket, end_bucket, rows)
    return len(rows)
