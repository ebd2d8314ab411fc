"""One parameter change for many devices: choose them, preview what changes, make the change sets
(in a Celery task, with progress), and follow the deliveries to the end."""

from collections import Counter
from dataclasses import dataclass

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from assets.models import Device

from .changes import ChangeRefused, plan_changes, request_changes
from .models import BulkChange, ChangeSet, DeviceParameter

PROGRESS_EVERY = 25  # devices between progress writes while the change sets are made
ADVISORY_LOCK_SPACE = 7301  # pg_advisory_lock(space, bulk change id): one preparation run per bulk change


def select_devices(devices: QuerySet, device_model=None, site=None, tag: str | None = None, device_ids=None) -> QuerySet:
    """`devices`: what the user may change; narrowed by every criterion given (all must hold)."""
    if device_model is not None:
        devices = devices.filter(device_model=device_model)
    if site is not None:
        devices = devices.filter(site=site)
    if tag:
        devices = devices.filter(tags__contains=[tag])
    if device_ids is not None:
        devices = devices.filter(pk__in=device_ids)
    return devices.select_related("device_model", "site").order_by("identifier")


@dataclass(frozen=True)
class PreviewRow:
    device: Device
    changes: list  # PlannedChange
    refused: dict[str, str]

    @property
    def sends(self) -> bool:
        return any(change.needs_sending for change in self.changes)


def preview(devices: QuerySet, values: dict) -> list[PreviewRow]:
    devices = list(devices)
    rows_by_device: dict[int, dict] = {}
    for row in DeviceParameter.objects.filter(device__in=devices, key__in=list(values)):
        rows_by_device.setdefault(row.device_id, {})[row.key] = row
    result = []
    for device in devices:
        try:
            result.append(PreviewRow(device, plan_changes(device, values, rows_by_device.get(device.pk, {})), {}))
        except ChangeRefused as exc:
            result.append(PreviewRow(device, [], exc.problems))
    return result


def preview_summary(rows: list[PreviewRow]) -> dict:
    return {
        "devices": len(rows),
        "to_send": sum(1 for row in rows if row.sends),
        "already_set": sum(1 for row in rows if not row.refused and not row.sends),
        "refused": sum(1 for row in rows if row.refused),
    }


def start(organisation, devices: QuerySet, values: dict, selection: dict, actor=None) -> BulkChange:
    """The bulk change, with its change sets made by a Celery task after commit."""
    from .tasks import enqueue, prepare_bulk_change

    bulk = BulkChange.objects.create(
        organisation=organisation, values=values, selection=selection,
        device_ids=list(devices.values_list("pk", flat=True)), created_by=actor,
    )
    transaction.on_commit(lambda: enqueue(prepare_bulk_change, bulk.pk))
    return bulk


def prepare(bulk_id: int) -> int:
    """Make the bulk change's change sets, device by device, resuming where an earlier run stopped (a worker
    killed, the database restarted: Celery beat's sweep queues it again). One run at a time per bulk change."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_SPACE, bulk_id])
        if not cursor.fetchone()[0]:
            return 0  # another worker is preparing it
    try:
        return _prepare(bulk_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_SPACE, bulk_id])


def _prepare(bulk_id: int) -> int:
    bulk = BulkChange.objects.get(pk=bulk_id)
    if bulk.state != BulkChange.State.PREPARING:
        return 0
    done_ids = set(bulk.change_sets.values_list("device_id", flat=True))
    skipped = dict(bulk.skipped)
    made = 0
    devices = Device.objects.filter(pk__in=bulk.device_ids).select_related("device_model", "site").order_by("pk")
    for index, device in enumerate(devices, start=1):
        if device.pk not in done_ids and device.identifier not in skipped:
            try:
                if request_changes(device, bulk.values, actor=bulk.created_by, bulk_change=bulk) is None:
                    skipped[device.identifier] = "already set: nothing to send"
                else:
                    made += 1
            except ChangeRefused as exc:
                skipped[device.identifier] = "; ".join(exc.problems.values())
        if index % PROGRESS_EVERY == 0:
            BulkChange.objects.filter(pk=bulk.pk).update(prepared=index, skipped=skipped, updated_at=timezone.now())
    present = set(devices.values_list("pk", flat=True))
    for pk in bulk.device_ids:
        if pk not in present:
            skipped[f"device #{pk}"] = "deleted before its change set was made"
    BulkChange.objects.filter(pk=bulk.pk).update(
        prepared=len(bulk.device_ids), skipped=skipped, state=BulkChange.State.DELIVERING, updated_at=timezone.now()
    )
    finish_if_done(bulk.pk)
    return made


def stalled_preparations(now=None) -> list[int]:
    """Bulk changes still preparing with no progress for CONTROL_STALL_AFTER_S: their task died."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=settings.CONTROL_STALL_AFTER_S)
    return list(BulkChange.objects.filter(state=BulkChange.State.PREPARING, updated_at__lt=quiet_since).values_list("pk", flat=True))


def finish_if_done(bulk_id: int) -> None:
    open_sets = ChangeSet.objects.filter(bulk_change_id=bulk_id, state__in=ChangeSet.OPEN).exists()
    if not open_sets:
        BulkChange.objects.filter(pk=bulk_id, state=BulkChange.State.DELIVERING).update(state=BulkChange.State.DONE, finished_at=timezone.now())


def progress(bulk: BulkChange) -> dict:
    """Per device, its newest change set of this bulk change (a device whose change set went again under a newer
    version, after a "stale" answer, counts once)."""
    if bulk.state == BulkChange.State.DELIVERING:
        finish_if_done(bulk.pk)  # a device deleted with its change set open leaves nothing else to end it
        bulk.refresh_from_db()
    newest = bulk.change_sets.order_by("device_id", "-version").distinct("device_id").values_list("state", flat=True)
    by_state = Counter(newest)
    answered = sum(by_state[state] for state in (ChangeSet.State.APPLIED, ChangeSet.State.PARTIAL, ChangeSet.State.REJECTED))
    finished = sum(n for state, n in by_state.items() if state not in ChangeSet.OPEN)
    messages = sum(bulk.change_sets.values_list("messages_sent", flat=True))
    total = len(bulk.device_ids)
    finished_s = (bulk.finished_at - bulk.created_at).total_seconds() if bulk.finished_at else None
    return {
        "id": bulk.pk,
        "state": bulk.state,
        "devices": total,
        "prepared": bulk.prepared,
        "skipped": len(bulk.skipped),
        "change_sets": sum(by_state.values()),
        "by_state": {state: by_state.get(state, 0) for state in ChangeSet.State.values},
        "answered": answered,
        "messages_sent": messages,
        "percent_done": round(100.0 * min(total, finished + len(bulk.skipped)) / total, 1) if total else 100.0,
        "seconds": finished_s,
    }
