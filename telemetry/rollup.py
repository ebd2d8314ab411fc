"""Keep a channel's 15-minute energy buckets equal to what its stored readings say.

Buckets are recomputed from the readings, never incremented: a repeated, late or
out-of-order reading therefore gives the same buckets as a clean stream.
"""

from datetime import datetime

from django.db import connection

from .energy import Sample, bucket_ceil, bucket_floor, counter_intervals, spread_into_buckets
from .models import Reading
from .storage import replace_buckets

# Namespace of the PostgreSQL advisory locks that serialise writers of one channel.
CHANNEL_LOCK_NAMESPACE = 7_101


def lock_channels(channel_ids) -> None:
    """Take the channels' transaction locks in id order, so two writers never deadlock."""
    with connection.cursor() as cursor:
        for channel_id in sorted(set(channel_ids)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CHANNEL_LOCK_NAMESPACE, channel_id])


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
