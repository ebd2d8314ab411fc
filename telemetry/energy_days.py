"""Energy per local day rebuilt from the buckets, for when the day a bucket belongs to changes.

The ingest keeps `telemetry_energyday` in step with the buckets as they are written; a day is
the bucket's local date in the zone of the site of the channel's device. When that zone changes
(a site's timezone is edited, a device moves to another site), every day row of the channels
is recomputed here, under the channels' locks so no ingest adds to the old days meanwhile.
"""

from django.db import connection, transaction

from .rollup import lock_channels

_REBUILD_DAYS = """
    INSERT INTO telemetry_energyday (channel_id, day, energy_wh, covered_seconds, estimated_wh)
    SELECT b.channel_id, (b.start AT TIME ZONE site.timezone)::date, sum(b.energy_wh), sum(b.covered_seconds), sum(b.estimated_wh)
    FROM telemetry_energybucket AS b
    JOIN assets_channel AS channel ON channel.id = b.channel_id
    JOIN assets_device AS device ON device.id = channel.device_id
    JOIN assets_site AS site ON site.id = device.site_id
    WHERE b.channel_id = ANY(%s)
    GROUP BY 1, 2
"""


def rebuild_energy_days(channel_ids) -> int:
    """Replace the channels' day rows by the sums of their buckets per local day; returns the rows written."""
    channel_ids = sorted(set(channel_ids))
    if not channel_ids:
        return 0
    with transaction.atomic():
        lock_channels(channel_ids)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM telemetry_energyday WHERE channel_id = ANY(%s)", [channel_ids])
            cursor.execute(_REBUILD_DAYS, [channel_ids])
            return cursor.rowcount
