"""Delivering change sets: publish, wait for the answer, send again with growing pauses, give up.

A send is one step of a delivery round: `deliver(change_set, round, attempt)` does something only
if the change set is still open and still at that round and attempt, so a repeated or outdated
Celery task (a redelivered message, a retry scheduled before the device came back) does nothing.
A device known to be offline is not sent anything: the change set waits, and a new round starts
when the device's status says it is back (control/agent.py).
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications.models import AlertEvent, raise_alert

from .answers import answered_keys, refuse_unsent
from .definitions import Configuration, configuration_of
from .models import BulkChange, ChangeSet, DeviceConfiguration, DeviceParameter, ParameterEvent
from .protocols import change_set_messages
from .publisher import PublishError, publisher

log = logging.getLogger(__name__)

MAX_AWAITING = 200  # commands awaiting an answer kept per device; older ones are forgotten


@dataclass(frozen=True)
class Step:
    """What a delivery step did, and when the next one is due (None: no next step)."""

    outcome: str
    next_attempt: int | None = None
    delay_s: float | None = None


def retry_delay(attempts_made: int) -> float:
    """Pause after the n-th send: base, 2x base, 4x base, ... up to the cap."""
    return min(settings.CONTROL_RETRY_BASE_S * 2 ** (attempts_made - 1), settings.CONTROL_RETRY_MAX_S)


def deliver(change_set_id: int, delivery_round: int, attempt: int, publish=None) -> Step:
    publish = publish or publisher().publish
    # Without a lock first: most late steps (retries of a change set answered since) end here at once.
    device_id = ChangeSet.objects.filter(pk=change_set_id, state__in=ChangeSet.OPEN).values_list("device_id", flat=True).first()
    if device_id is None:
        return Step("closed")
    with transaction.atomic():
        device_state = DeviceConfiguration.locked(device_id)
        change_set = ChangeSet.objects.select_for_update().select_related("device__device_model", "device__site").filter(pk=change_set_id).first()
        if change_set is None or not change_set.is_open:
            return Step("closed")
        if change_set.delivery_round != delivery_round or change_set.attempts != attempt:
            return Step("outdated")
        device = change_set.device
        if device.online is False:
            _wait_for_device(change_set)
            return Step("waiting")
        if attempt >= settings.CONTROL_MAX_ATTEMPTS:
            _time_out(change_set)
            return Step("timed_out")
        configuration = configuration_of(device.device_model.parameter_map) or Configuration("iotwatt")
        answered = answered_keys(change_set)
        unanswered = {key: value for key, value in change_set.values.items() if key not in answered}
        undefined = {key: f"{key} is no longer a parameter of the device model {device.device_model}" for key in unanswered if key not in configuration.parameters}
        if undefined:
            # The model's map changed after the request: say so at once rather than send what cannot be sent.
            refuse_unsent(device, configuration, change_set, undefined)
            change_set.refresh_from_db()
            unanswered = {key: value for key, value in unanswered.items() if key not in undefined}
            if not unanswered:
                return Step("refused")
        messages = change_set_messages(configuration, device.identifier, change_set.version, unanswered)
        try:
            for message in messages:
                publish(message.topic, message.payload)
        except PublishError as exc:
            log.warning("change set %s of %s not sent (%s); trying again", change_set.version, device, exc)
            # Not counted as an attempt: the device had no chance to answer.
            return Step("broker_unavailable", next_attempt=attempt, delay_s=retry_delay(1))
        if configuration.protocol == "tasmota":
            # Its answers name no version: they are matched to these commands in order (control/answers.py).
            sent = [[change_set.version, key, value] for key, value in sorted(unanswered.items())]
            device_state.awaiting = (device_state.awaiting + sent)[-MAX_AWAITING:]
            device_state.save(update_fields=["awaiting"])
        change_set.attempts += 1
        change_set.messages_sent += len(messages)
        change_set.state, change_set.last_sent_at, change_set.reason = ChangeSet.State.SENT, timezone.now(), ""
        change_set.save(update_fields=["attempts", "messages_sent", "state", "last_sent_at", "reason"])
        DeviceParameter.objects.filter(change_set=change_set, state=DeviceParameter.State.PENDING).update(
            state=DeviceParameter.State.SENT, reason=""
        )
        ParameterEvent.objects.create(
            device=device, kind=ParameterEvent.Kind.SENT, change_set=change_set, new_value=unanswered,
            note=f"send {change_set.attempts} of at most {settings.CONTROL_MAX_ATTEMPTS}: {', '.join(m.topic for m in messages)}",
        )
        return Step("sent", next_attempt=change_set.attempts, delay_s=retry_delay(change_set.attempts))


def _wait_for_device(change_set: ChangeSet) -> None:
    device = change_set.device
    since = f" since {device.status_changed_at:%Y-%m-%d %H:%M:%S} UTC" if device.status_changed_at else ""
    reason = f"waiting: the device is offline{since}; it gets this when it comes back"
    if change_set.state == ChangeSet.State.PENDING and change_set.reason == reason:
        return
    change_set.state, change_set.reason = ChangeSet.State.PENDING, reason
    change_set.save(update_fields=["state", "reason"])
    DeviceParameter.objects.filter(change_set=change_set, state__in=DeviceParameter.IN_FLIGHT).update(
        state=DeviceParameter.State.PENDING, reason=reason
    )
    ParameterEvent.objects.create(device=device, kind=ParameterEvent.Kind.WAITING, change_set=change_set, note=reason)


def _time_out(change_set: ChangeSet) -> None:
    from .bulk import finish_if_done

    device = change_set.device
    reason = f"no answer after {change_set.attempts} sends"
    change_set.state, change_set.reason = ChangeSet.State.TIMED_OUT, reason
    change_set.save(update_fields=["state", "reason"])
    keys = list(
        DeviceParameter.objects.filter(change_set=change_set, state__in=DeviceParameter.IN_FLIGHT).values_list("key", flat=True)
    )
    DeviceParameter.objects.filter(change_set=change_set, key__in=keys).update(state=DeviceParameter.State.TIMED_OUT, reason=reason)
    ParameterEvent.objects.create(device=device, kind=ParameterEvent.Kind.TIMED_OUT, change_set=change_set, note=reason)
    # Timed out again after the device came back: it was alerted the first time.
    if not AlertEvent.objects.filter(device=device, kind=AlertEvent.Kind.PARAMETER_TIMED_OUT, details__change_set=change_set.pk).exists():
        raise_alert(
            device, AlertEvent.Kind.PARAMETER_TIMED_OUT,
            f"{device}: parameter change version {change_set.version} ({', '.join(keys)}) timed out: {reason}",
            change_set=change_set.pk,
        )
    if change_set.bulk_change_id:
        finish_if_done(change_set.bulk_change_id)


def restart_delivery(device_id: int) -> list[tuple[int, int]]:
    """The device is back: its newest change set, if waiting for it, starts a new round now.
    Returns (change set id, round) to deliver."""
    with transaction.atomic():
        DeviceConfiguration.locked(device_id)
        newest = ChangeSet.objects.select_for_update().filter(device_id=device_id).order_by("-version").first()
        if newest is None or newest.state != ChangeSet.State.PENDING:
            return []
        newest.delivery_round, newest.attempts = newest.delivery_round + 1, 0
        newest.save(update_fields=["delivery_round", "attempts"])
        return [(newest.pk, newest.delivery_round)]


def wait_for_return(device_id: int) -> None:
    """The device went offline after its newest change set timed out (it may have been failing): that change
    set waits for it again, and goes out when the device is back."""
    with transaction.atomic():
        DeviceConfiguration.locked(device_id)
        newest = ChangeSet.objects.select_for_update().select_related("device").filter(device_id=device_id).order_by("-version").first()
        if newest is None or newest.state != ChangeSet.State.TIMED_OUT:
            return
        DeviceParameter.objects.filter(change_set=newest, state=DeviceParameter.State.TIMED_OUT).update(state=DeviceParameter.State.PENDING)
        _wait_for_device(newest)
        if newest.bulk_change_id:  # its bulk change is under way again
            BulkChange.objects.filter(pk=newest.bulk_change_id).update(state=BulkChange.State.DELIVERING, finished_at=None)


def stalled_deliveries(now=None) -> list[tuple[int, int, int]]:
    """(change set, round, attempt) of deliveries whose next step is overdue: a worker killed while it held the
    step's task (Redis gives such a task to another worker only after CELERY_VISIBILITY_TIMEOUT), or a first send
    lost before it ran. Running the step again is harmless: `deliver` does a step once."""
    now = now or timezone.now()
    margin = timedelta(seconds=settings.CONTROL_STALL_AFTER_S)
    overdue = []
    candidates = ChangeSet.objects.filter(state__in=ChangeSet.OPEN).exclude(device__online=False).only(
        "pk", "state", "attempts", "delivery_round", "last_sent_at", "created_at"
    )
    for change_set in candidates:
        if change_set.state == ChangeSet.State.SENT and change_set.last_sent_at:
            due = change_set.last_sent_at + timedelta(seconds=retry_delay(change_set.attempts))
        else:
            due = change_set.last_sent_at or change_set.created_at
        if now - due > margin:
            overdue.append((change_set.pk, change_set.delivery_round, change_set.attempts))
    return overdue
