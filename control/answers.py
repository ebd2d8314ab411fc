"""What a device answers about its configuration, applied to the desired/reported state.

Rules (docs/device-parameters.md):
- An answer only ever writes reported values and the answered change set's results; it never
  changes what is desired.
- An answer for a change set that was superseded (or never sent) changes nothing but the audit: a
  late answer cannot roll a newer state back. Reports count in the order they come.
- A parameter with nothing on its way whose reported value differs from the desired one has
  drifted: its state says so and an alert event is raised once, when the drift starts.
"""

import json
import logging
import math
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from assets.models import Device
from notifications.models import AlertEvent, raise_alert
from telemetry.ingest import storable_text

from .definitions import MAX_STRING_LENGTH, Configuration, values_equal
from .models import ChangeSet, DeviceConfiguration, DeviceParameter, ParameterEvent
from .protocols import DeviceAnswer

log = logging.getLogger(__name__)

SETTLED = (DeviceParameter.State.IN_SYNC, DeviceParameter.State.APPLIED, DeviceParameter.State.DRIFTED)
# Change sets whose answer still counts: open ones, and one that timed out but the device did take after all.
ANSWERABLE = (*ChangeSet.OPEN, ChangeSet.State.TIMED_OUT)


def apply_answer(device: Device, configuration: Configuration, answer: DeviceAnswer, raw: str, received_at: datetime) -> str:
    """Apply one message; returns what it was (for logs and tests)."""
    with transaction.atomic():
        state = DeviceConfiguration.locked(device.pk)
        rows = {row.key: row for row in DeviceParameter.objects.select_for_update().filter(device=device)}
        applier = _Applier(device, configuration, state, rows, storable_text(raw[:4000]), received_at)
        outcome = applier.apply(answer)
        applier.settle()
        return outcome


class _Applier:
    def __init__(self, device, configuration, state, rows, raw, received_at):
        self.device, self.configuration, self.state, self.rows = device, configuration, state, rows
        self.raw, self.received_at = raw, received_at
        self.touched: set[str] = set()

    def apply(self, answer: DeviceAnswer) -> str:
        if answer.unmatched_refusal is not None:
            return self._unmatched_refusal(answer.unmatched_refusal)
        if answer.version is None:
            return self._versionless(answer.values)
        if answer.stale_at is not None:
            return self._stale(answer)
        if answer.is_report:
            self._numbering_past(answer.version)
            # Taken in the order it comes, even with a lower version: MQTT keeps one device's messages in order,
            # and a device that was reset or replaced reports version 0 and its defaults, which must show.
            self._report(answer.values, answer.version)
            return "report"
        change_set = ChangeSet.objects.select_for_update().filter(device=self.device, version=answer.version).first()
        if change_set is None:
            self._event(ParameterEvent.Kind.LATE_ANSWER, note=f"answer for version {answer.version}, which was never sent to this device: nothing changed")
            return "unknown_version"
        if change_set.state == ChangeSet.State.SUPERSEDED:
            self._event(ParameterEvent.Kind.LATE_ANSWER, change_set=change_set, note=f"answer for version {change_set.version}, superseded by a newer one: nothing changed")
            return "late_answer"
        if change_set.state not in ANSWERABLE:
            return "repeated_answer"  # QoS 1 may deliver the same answer twice
        if answer.values:
            self._report(answer.values, answer.version)
        applied = list(change_set.values) if answer.applies_all else answer.applied
        values = {key: change_set.values[key] for key in applied if key in change_set.values}
        if self.configuration.protocol != "iotwatt" and values:
            self._report(values, None)  # an RPC result says "done" without the values: they are the ones sent
        self._results(change_set, applied, answer.rejected)
        return "answer"

    def _numbering_past(self, version: int) -> None:
        """A device at a version this server never issued (it was registered again, or the database restored)
        has its next change sets numbered after it: it takes only versions above its own."""
        if version > self.state.last_version:
            self.state.last_version = version
            self.state.save(update_fields=["last_version"])

    def _stale(self, answer: DeviceAnswer) -> str:
        """The device already has version `stale_at` (or newer): the open change set goes again, renumbered after it."""
        from .changes import issue_change_set

        self._numbering_past(answer.stale_at)
        if answer.values:
            self._report(answer.values, answer.stale_at)
        open_set = ChangeSet.objects.select_for_update().filter(
            device=self.device, state__in=ChangeSet.OPEN, version__lte=answer.stale_at
        ).order_by("-version").first()
        if open_set is None:
            return "stale"
        issue_change_set(self.device, self.state, self.rows, {}, bulk_change=open_set.bulk_change,
                         reason=f"the device is already at version {answer.stale_at}: sent again as version {{version}}")
        return "stale"

    def _versionless(self, values: dict) -> str:
        """Tasmota: answers carry no version, but the device answers its commands in the order they came. Each
        RESULT answers the oldest command for its parameter still awaiting one (DeviceConfiguration.awaiting);
        a value nobody sent for is the device's own change (its console, a button)."""
        awaiting = [list(entry) for entry in self.state.awaiting]
        outcomes = []
        for key, value in values.items():
            index = next((i for i, (_, awaited_key, _) in enumerate(awaiting) if awaited_key == key), None)
            if index is None:
                self._report({key: value}, None)
                outcomes.append("report")
                continue
            version, _, asked = awaiting.pop(index)
            outcomes.append(self._command_answer(version, key, asked, value=value))
        self._set_awaiting(awaiting)
        return "answer" if "answer" in outcomes else (outcomes[0] if outcomes else "report")

    def _unmatched_refusal(self, reason: str) -> str:
        """A refusal that does not name its command ({"Command":"Unknown"}): the oldest command awaiting an answer."""
        awaiting = [list(entry) for entry in self.state.awaiting]
        if not awaiting:
            self._event(ParameterEvent.Kind.UNREADABLE, note=f"{reason}, with no command awaiting an answer")
            return "unmatched"
        version, key, asked = awaiting.pop(0)
        self._set_awaiting(awaiting)
        return self._command_answer(version, key, asked, refusal=reason)

    def _command_answer(self, version: int, key: str, asked, value=None, refusal: str | None = None) -> str:
        change_set = ChangeSet.objects.select_for_update().filter(device=self.device, version=version).first()
        if change_set is None or change_set.state == ChangeSet.State.SUPERSEDED:
            self._event(ParameterEvent.Kind.LATE_ANSWER, key=key, change_set=change_set, new_value=value,
                        note=f"answer to the command of version {version}, superseded by a newer one: nothing changed")
            return "late_answer"
        if change_set.state not in ANSWERABLE or key in answered_keys(change_set):
            return "repeated_answer"  # the answer to a command sent again
        if refusal is not None:
            self._results(change_set, [], {key: refusal})
            return "answer"
        self._report({key: value}, None)
        if values_equal(asked, value):
            self._results(change_set, [key], {})
        else:
            self._results(change_set, [], {key: f"the device kept {value!r} (asked {asked!r})"})
        return "answer"

    def _set_awaiting(self, awaiting: list) -> None:
        self.state.awaiting = awaiting
        self.state.save(update_fields=["awaiting"])

    def _report(self, values: dict, version: int | None) -> None:
        unstorable = []
        for key, value in values.items():
            if key not in self.configuration.parameters:
                continue  # keys the model does not define are not kept: a device cannot grow the table
            if not storable_value(value):
                unstorable.append(key)
                continue
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = DeviceParameter(device=self.device, key=key, state=DeviceParameter.State.IN_SYNC)
            if row.reported is not None and values_equal(row.reported, value) and row.pk:
                continue
            self._event(ParameterEvent.Kind.REPORTED, key=key, old_value=row.reported, new_value=value)
            row.reported, row.reported_at = value, self.received_at
            row.save()
            self.touched.add(key)
        if unstorable:
            self._event(ParameterEvent.Kind.UNREADABLE, note=f"reported values not kept (not a finite number, true/false or text of at most {MAX_STRING_LENGTH} characters): {', '.join(unstorable)}")
        if version is not None:
            self.state.reported_version, self.state.reported_at = version, self.received_at
            self.state.save(update_fields=["reported_version", "reported_at"])

    def _results(self, change_set: ChangeSet, applied, rejected: dict, by_device: bool = True) -> None:
        from .bulk import finish_if_done

        answer = {"applied": list(change_set.answer.get("applied", [])), "rejected": dict(change_set.answer.get("rejected", {}))}
        for key in applied:
            if key in change_set.values and key not in answer["applied"]:
                answer["applied"].append(key)
                self._parameter_result(change_set, key, DeviceParameter.State.APPLIED, "")
        for key, reason in rejected.items():
            reason = storable_text(reason)  # the device's words, into text and JSON columns
            if key in change_set.values and key not in answer["rejected"]:
                answer["rejected"][key] = reason
                self._parameter_result(change_set, key, DeviceParameter.State.REJECTED, reason, by_device)
        change_set.answer = answer
        fields = ["answer"]
        if len(answer["applied"]) + len(answer["rejected"]) >= len(change_set.values):
            change_set.state = (
                ChangeSet.State.APPLIED if not answer["rejected"]
                else ChangeSet.State.REJECTED if not answer["applied"] else ChangeSet.State.PARTIAL
            )
            change_set.answered_at = self.received_at
            change_set.reason = "; ".join(answer["rejected"].values())
            fields += ["state", "answered_at", "reason"]
            if answer["rejected"] and by_device:
                raise_alert(
                    self.device, AlertEvent.Kind.PARAMETER_REJECTED,
                    f"{self.device} refused {', '.join(f'{k} ({r})' for k, r in answer['rejected'].items())}",
                    change_set=change_set.pk,
                )
        change_set.save(update_fields=fields)
        if change_set.bulk_change_id and change_set.state not in ChangeSet.OPEN:
            finish_if_done(change_set.bulk_change_id)

    def _parameter_result(self, change_set: ChangeSet, key: str, result: str, reason: str, by_device: bool = True) -> None:
        kind = ParameterEvent.Kind.APPLIED if result == DeviceParameter.State.APPLIED else ParameterEvent.Kind.REJECTED
        if not by_device:
            kind = ParameterEvent.Kind.NOT_SENT
        self._event(kind, key=key, change_set=change_set, new_value=change_set.values[key], note=reason)
        row = self.rows.get(key)
        if row is None or row.change_set_id != change_set.pk:
            return  # a newer change set carries this parameter now: its state is that one's
        row.state, row.reason = result, reason
        row.save(update_fields=["state", "reason"])
        self.touched.add(key)

    def settle(self) -> None:
        """Drift, or back in sync, for every parameter this message touched that has nothing on its way."""
        for key in sorted(self.touched):
            row = self.rows[key]
            if row.state not in SETTLED or row.desired is None or row.reported is None:
                continue
            if values_equal(row.desired, row.reported):
                if row.state == DeviceParameter.State.DRIFTED:
                    row.state, row.reason = DeviceParameter.State.IN_SYNC, ""
                    row.save(update_fields=["state", "reason"])
                    self._event(ParameterEvent.Kind.DRIFT, key=key, old_value=row.desired, new_value=row.reported, note="drift ended: the device reports the desired value again")
                continue
            already_drifted = row.state == DeviceParameter.State.DRIFTED
            row.state, row.reason = DeviceParameter.State.DRIFTED, f"the device reports {row.reported!r}, {row.desired!r} is desired"
            row.save(update_fields=["state", "reason"])
            if already_drifted:
                continue  # alerted when it started
            self._event(ParameterEvent.Kind.DRIFT, key=key, old_value=row.desired, new_value=row.reported, note=row.reason)
            raise_alert(self.device, AlertEvent.Kind.PARAMETER_DRIFT, f"{self.device}: {key} drifted: {row.reason}", key=key)

    def _event(self, kind, key="", change_set=None, old_value=None, new_value=None, note=""):
        ParameterEvent.objects.create(
            device=self.device, key=key, kind=kind, change_set=change_set, old_value=old_value,
            new_value=new_value, device_answer=self.raw, note=storable_text(note[:2000]),
        )


def refuse_unsent(device: Device, configuration: Configuration, change_set: ChangeSet, reasons: dict[str, str]) -> None:
    """Parameters of a change set that cannot be sent (the model no longer defines them): refused here, said so."""
    with transaction.atomic():
        state = DeviceConfiguration.locked(device.pk)
        rows = {row.key: row for row in DeviceParameter.objects.select_for_update().filter(device=device)}
        applier = _Applier(device, configuration, state, rows, "", timezone.now())
        applier._results(change_set, [], reasons, by_device=False)


def storable_value(value) -> bool:
    """What a parameter can hold: JSON null, true/false, a finite number, or text without NUL of bounded length."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) < 1e300
    return isinstance(value, str) and len(value) <= MAX_STRING_LENGTH and "\x00" not in value


def answered_keys(change_set: ChangeSet) -> set[str]:
    """The parameters of the change set the device has answered for, taken or refused."""
    return set(change_set.answer.get("applied", [])) | set(change_set.answer.get("rejected", {}))


def unreadable(device: Device, raw: str, reason: str) -> None:
    ParameterEvent.objects.create(device=device, kind=ParameterEvent.Kind.UNREADABLE, device_answer=storable_text(raw[:4000]), note=storable_text(reason))
    log.warning("unreadable configuration answer from %s: %s", device, reason)

