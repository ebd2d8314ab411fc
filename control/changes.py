"""Asking for parameter changes: validation, the desired state, change sets and their versions.

A device has at most one open change set: a new one carries every parameter still on its way
(from the one it supersedes) plus the new values, so superseding never loses a change, and the
device ends with the newest desired state whatever order the answers come in.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from assets.models import Device

from .definitions import Configuration, configuration_of, values_equal
from .models import ChangeSet, DeviceConfiguration, DeviceParameter, ParameterEvent


class ChangeRefused(ValueError):
    """The change cannot be made; `problems` maps each parameter (or "device") to the reason."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(problems.values()))


def device_configuration(device: Device) -> Configuration:
    configuration = configuration_of(device.device_model.parameter_map)
    if configuration is None:
        raise ChangeRefused({"device": f"the device model {device.device_model} declares no parameters (no configuration section)"})
    return configuration


@dataclass(frozen=True)
class PlannedChange:
    """One parameter of a request: what is wanted now, what would be sent."""

    key: str
    current_desired: object
    reported: object
    new_value: object
    needs_sending: bool  # False: the device already has it, or it is already on its way


def plan_changes(device: Device, values: dict, parameters: dict[str, DeviceParameter] | None = None) -> list[PlannedChange]:
    """What asking `values` of the device would change, without changing anything (the bulk preview
    shows this). Raises ChangeRefused when a value breaks its rule."""
    configuration = device_configuration(device)
    if not values:
        raise ChangeRefused({"values": "no parameter given"})
    accepted, refused = configuration.check(values)
    if refused:
        raise ChangeRefused(refused)
    if parameters is None:
        parameters = {p.key: p for p in DeviceParameter.objects.filter(device=device, key__in=list(accepted))}
    planned = []
    for key, value in accepted.items():
        row = parameters.get(key)
        desired, reported, state = (row.desired, row.reported, row.state) if row else (None, None, None)
        already_wanted = desired is not None and values_equal(desired, value)
        on_its_way = already_wanted and state in DeviceParameter.IN_FLIGHT
        in_place = reported is not None and values_equal(reported, value) and state not in DeviceParameter.IN_FLIGHT
        planned.append(PlannedChange(key, desired, reported, value, needs_sending=not (on_its_way or in_place)))
    return planned


def request_changes(device: Device, values: dict, actor=None, bulk_change=None) -> ChangeSet | None:
    """Make `values` the device's desired parameters and the newest change set carry them.

    Returns the change set to deliver (after commit), or None when nothing needs sending.
    """
    with transaction.atomic():
        configuration_row = DeviceConfiguration.locked(device.pk)
        parameters = {p.key: p for p in DeviceParameter.objects.select_for_update().filter(device=device)}
        planned = plan_changes(device, values, parameters)
        now = timezone.now()
        to_send, requested = {}, []
        for change in planned:
            row = parameters.get(change.key) or DeviceParameter(device=device, key=change.key)
            parameters[change.key] = row
            if change.needs_sending or change.current_desired is None or not values_equal(change.current_desired, change.new_value):
                requested.append(ParameterEvent(
                    device=device, key=change.key, kind=ParameterEvent.Kind.REQUESTED, actor=actor,
                    old_value=change.current_desired if change.current_desired is not None else change.reported,
                    new_value=change.new_value,
                    note=(
                        "the device already has this value" if not change.needs_sending
                        else "asked again" if change.current_desired is not None and values_equal(change.current_desired, change.new_value)
                        else ""
                    ),
                ))
            row.desired, row.desired_at = change.new_value, now
            if change.needs_sending:
                to_send[change.key] = change.new_value
            elif row.state not in DeviceParameter.IN_FLIGHT:
                row.state, row.reason = DeviceParameter.State.IN_SYNC, ""
            row.save()
        ParameterEvent.objects.bulk_create(requested)  # before the supersession it causes, in the audit's order
        if not to_send:
            return None
        change_set = issue_change_set(device, configuration_row, parameters, to_send, actor, bulk_change)
        ParameterEvent.objects.filter(pk__in=[event.pk for event in requested if event.key in to_send]).update(change_set=change_set)
        return change_set


def issue_change_set(device: Device, configuration_row: DeviceConfiguration, parameters: dict, values: dict,
                     actor=None, bulk_change=None, reason: str = "superseded by version {version}") -> ChangeSet:
    """The device's next version, carrying `values` and whatever has not reached the device yet (on its way, or
    timed out); the open change set is superseded, for `reason`. Called under the device's lock, with its
    parameter rows locked."""
    from .bulk import finish_if_done

    not_there_yet = (*DeviceParameter.IN_FLIGHT, DeviceParameter.State.TIMED_OUT)
    on_their_way = {
        key: row.desired for key, row in parameters.items()
        if row.state in not_there_yet and row.desired is not None and key not in values
    }
    configuration_row.last_version += 1
    configuration_row.save(update_fields=["last_version"])
    change_set = ChangeSet.objects.create(
        device=device, version=configuration_row.last_version, values={**on_their_way, **values},
        created_by=actor, bulk_change=bulk_change,
    )
    for older in ChangeSet.objects.select_for_update().filter(device=device, state__in=ChangeSet.OPEN).exclude(pk=change_set.pk):
        older.state, older.superseded_by = ChangeSet.State.SUPERSEDED, change_set
        older.reason = reason.format(version=change_set.version)
        older.save(update_fields=["state", "superseded_by", "reason"])
        ParameterEvent.objects.create(device=device, kind=ParameterEvent.Kind.SUPERSEDED, change_set=older, actor=actor, note=older.reason)
        if older.bulk_change_id and older.bulk_change_id != (bulk_change.pk if bulk_change else None):
            finish_if_done(older.bulk_change_id)  # superseded is an end for the bulk change it belonged to
    for key in change_set.values:
        row = parameters[key]
        row.state, row.reason, row.change_set = DeviceParameter.State.PENDING, "", change_set
        row.save(update_fields=["state", "reason", "change_set"])
    transaction.on_commit(lambda: _deliver_later(change_set))
    return change_set


def _deliver_later(change_set: ChangeSet) -> None:
    from .tasks import deliver_change_set, enqueue

    enqueue(deliver_change_set, change_set.pk, change_set.delivery_round, 0)
