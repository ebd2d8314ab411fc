"""Celery tasks of device parameters, on the CONTROL_QUEUE."""

from celery import shared_task
from django.conf import settings


def enqueue(task, *args, countdown: float | None = None) -> None:
    """The queue is named at each send, not only in the routes: the setting may change after start-up (tests)."""
    task.apply_async(args, countdown=countdown, queue=settings.CONTROL_QUEUE)


@shared_task(name="control.tasks.deliver_change_set", ignore_result=True)
def deliver_change_set(change_set_id: int, delivery_round: int, attempt: int) -> str:
    """One send of a change set; schedules the next (the retry, or the timeout) itself."""
    from .delivery import deliver

    step = deliver(change_set_id, delivery_round, attempt)
    if step.next_attempt is not None:
        enqueue(deliver_change_set, change_set_id, delivery_round, step.next_attempt, countdown=step.delay_s)
    return step.outcome


@shared_task(name="control.tasks.deliver_pending", ignore_result=True)
def deliver_pending(device_id: int) -> int:
    """The device came online: what is pending for it goes out now."""
    from .delivery import restart_delivery

    started = restart_delivery(device_id)
    for change_set_id, delivery_round in started:
        enqueue(deliver_change_set, change_set_id, delivery_round, 0)
    return len(started)


@shared_task(name="control.tasks.prepare_bulk_change", ignore_result=True)
def prepare_bulk_change(bulk_change_id: int) -> int:
    """Change sets for every device of a bulk change, with progress on the bulk change's row."""
    from .bulk import prepare

    return prepare(bulk_change_id)


@shared_task(name="control.tasks.resume_stalled_deliveries", ignore_result=True)
def resume_stalled_deliveries() -> int:
    """Celery beat, every minute: deliveries whose next step is overdue take it now, and bulk changes whose
    preparation stopped go on."""
    from .bulk import stalled_preparations
    from .delivery import stalled_deliveries

    overdue = stalled_deliveries()
    for change_set_id, delivery_round, attempt in overdue:
        enqueue(deliver_change_set, change_set_id, delivery_round, attempt)
    stuck = stalled_preparations()
    for bulk_change_id in stuck:
        enqueue(prepare_bulk_change, bulk_change_id)
    return len(overdue) + len(stuck)
