"""Redelivered messages whose readings carry their arrival time: stored already, under the first arrival.

A device that sends no time gets the message's arrival time (the map says
{"source": "arrival"}). If the bridge dies after the commit but before the
acknowledgement, the broker delivers the message again, flagged DUP, and it
arrives at a new time: the (channel, time) key no longer recognises it. Stored
again, a cumulative counter would read as falling back after newer values, a
meter reset. So a redelivered message whose arrival-stamped readings all equal
readings of the same channels stored within the redelivery window before it is
taken as stored. A message the bridge never committed before it died matches
nothing and is stored as usual.
"""

from datetime import datetime, timedelta

from django.db import connection


def stored_earlier(readings: list[tuple[int, datetime, float]], window: timedelta) -> set[tuple[int, datetime]]:
    """Of (channel_id, arrival time, value), those whose channel stored the same value within `window` before."""
    if not readings:
        return set()
    channel_ids, times, values = zip(*readings)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.channel_id, c.time
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS c(channel_id, time, value)
            WHERE EXISTS (
                SELECT 1 FROM telemetry_reading AS r
                WHERE r.channel_id = c.channel_id AND r.value = c.value
                  AND r.time >= c.time - %s AND r.time < c.time
            )
            """,
            [list(channel_ids), list(times), list(values), window],
        )
        return set(cursor.fetchall())
