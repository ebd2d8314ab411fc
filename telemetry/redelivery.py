"""Redelivered messages whose readings carry their arrival time: stored already, under the first arrival.

A device that sends no time gets the message's arrival time (the map says
{"source": "arrival"}). If the bridge dies after the commit but before the
acknowledgement, the broker delivers the message again, flagged DUP, and it
arrives at a new time: the (channel, time) key no longer recognises it. Stored
again, a cumulative counter would read as falling back after newer values, a
meter reset. So a redelivered message whose arrival-stamped readings all equal
one of the few newest readings of the same channel, stored within the
redelivery window before it, is taken as stored: a message redelivered after a
crash was among the last the bridge received. A message the bridge never
committed matches only if every value it holds repeats one of those few recent
values of its channel, and then a sample that repeats a recent value is lost (for a counter, no energy).
"""

from datetime import datetime, timedelta

from django.db import connection

# How many of a channel's newest readings a redelivered value is compared with: a crash leaves a
# few in-flight messages per device, so a first delivery is among them.
RECENT_READINGS = 10


def stored_earlier(readings: list[tuple[int, datetime, float]], window: timedelta) -> set[tuple[int, datetime]]:
    """Of (channel_id, arrival time, value), those whose channel stored the same value among its
    RECENT_READINGS newest readings within `window` before."""
    if not readings:
        return set()
    channel_ids, times, values = zip(*readings)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.channel_id, c.time
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS c(channel_id, time, value)
            WHERE EXISTS (
                SELECT 1 FROM (
                    SELECT r.value FROM telemetry_reading AS r
                    WHERE r.channel_id = c.channel_id AND r.time >= c.time - %s AND r.time < c.time
                    ORDER BY r.time DESC LIMIT %s
                ) AS recent
                WHERE recent.value = c.value
            )
            """,
            [list(channel_ids), list(times), list(values), window, RECENT_READINGS],
        )
        return set(cursor.fetchall())
