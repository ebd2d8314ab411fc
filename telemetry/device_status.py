"""Device activity seen in one ingest batch: when each device was last heard, and its latest status.

The ingest notes every message's device here and writes everything with one UPDATE per batch,
never one per message: a busy device sends hundreds of messages a batch.

Status messages are ordered by their arrival at the bridge (`received_at`), not by the order in
which batches reach the database: every bridge subscribes to the status topics, so the same
message arrives on several bridges and their batches commit in any order, and a retried batch can
commit after a newer one. An older status never overwrites a newer one; the same status again
changes nothing but the time of the newest report, so the writes are idempotent.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from assets.models import Device


@dataclass
class _Seen:
    last_seen_at: datetime | None = None  # newest live message; None if the batch held retained ones only
    online: bool | None = None
    status_at: datetime | None = None  # arrival of the newest status message in the batch


class DeviceActivity:
    def __init__(self):
        self._devices: dict[int, _Seen] = {}

    def message(self, device_id: int, received_at: datetime, retained: bool) -> None:
        """Any message of the device. A retained one is the broker's memory of an earlier message, replayed
        to a bridge that (re)subscribes: it says nothing about when the device was last heard."""
        seen = self._devices.setdefault(device_id, _Seen())
        if not retained and (seen.last_seen_at is None or received_at > seen.last_seen_at):
            seen.last_seen_at = received_at

    def status(self, device_id: int, online: bool, received_at: datetime) -> None:
        seen = self._devices.setdefault(device_id, _Seen())
        if seen.status_at is None or received_at >= seen.status_at:  # equal times: the later message in the batch
            seen.online, seen.status_at = online, received_at

    def save(self) -> None:
        """One UPDATE for the whole batch. Rows are locked in id order first, so two workers updating
        the same devices concurrently wait for each other instead of deadlocking."""
        if not self._devices:
            return
        table = Device._meta.db_table
        ids = sorted(self._devices)
        values = ", ".join(["(%s::bigint, %s::timestamptz, %s::boolean, %s::timestamptz)"] * len(ids))
        params = [p for pk in ids for p in (pk, self._devices[pk].last_seen_at, self._devices[pk].online, self._devices[pk].status_at)]
        # In SET, d.* are the row's values before this UPDATE; GREATEST ignores NULLs.
        newer = "(v.status_at IS NOT NULL AND (d.status_reported_at IS NULL OR v.status_at > d.status_reported_at))"
        sql = f"""
            WITH locked AS (SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE)
            UPDATE {table} AS d SET
                last_seen_at = GREATEST(d.last_seen_at, v.seen_at),
                online = CASE WHEN {newer} THEN v.online ELSE d.online END,
                status_changed_at = CASE WHEN {newer} AND d.online IS DISTINCT FROM v.online
                                         THEN v.status_at ELSE d.status_changed_at END,
                status_reported_at = CASE WHEN {newer} THEN v.status_at ELSE d.status_reported_at END
            FROM (VALUES {values}) AS v(id, seen_at, online, status_at), locked
            WHERE d.id = v.id AND locked.id = v.id
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [ids, *params])
