"""Device parameters: what operators want (desired), what devices say they have (reported), the change
sets that carry the difference to a device, and the audit of both sides.

The rules of the life cycle live in control/changes.py (requests), control/delivery.py (sending,
retries, timeouts) and control/answers.py (what devices answer); see docs/device-parameters.md.
"""

from django.conf import settings
from django.db import models

from assets.models import Device, Organisation


class DeviceConfiguration(models.Model):
    """A device's change set numbering and the newest configuration it reported. Its row is the lock that
    orders every change and answer of one device."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, primary_key=True, related_name="configuration")
    last_version = models.PositiveIntegerField(default=0, help_text="Version of the device's newest change set")
    reported_version = models.PositiveIntegerField(
        default=0, help_text="The change set version the device's newest accepted report or answer said it had"
    )
    reported_at = models.DateTimeField(null=True, blank=True)
    awaiting = models.JSONField(
        default=list, blank=True,
        help_text="Protocols whose answers carry no version (Tasmota): [version, parameter, value] of each command sent "
                  "and not answered yet, oldest first",
    )

    def __str__(self):
        return f"configuration of {self.device}"

    @classmethod
    def locked(cls, device_id: int) -> "DeviceConfiguration":
        """The device's row, locked to the end of the transaction. Every change, send and answer of a device
        takes this lock first, so they run one at a time per device and always lock in the same order."""
        row = cls.objects.select_for_update().filter(device_id=device_id).first()
        if row is None:
            cls.objects.get_or_create(device_id=device_id)  # two first changes at once: one creates, both then lock
            row = cls.objects.select_for_update().get(device_id=device_id)
        return row


class BulkChange(models.Model):
    """One change applied to many devices chosen by device model, site or tag."""

    class State(models.TextChoices):
        PREPARING = "preparing", "preparing change sets"
        DELIVERING = "delivering", "delivering"
        DONE = "done", "every device answered or gave up"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="bulk_parameter_changes")
    values = models.JSONField(help_text="The parameters and values asked for")
    selection = models.JSONField(help_text="How the devices were chosen: device model, site, tag, or a list")
    device_ids = models.JSONField(default=list, help_text="The devices chosen when the change was made")
    skipped = models.JSONField(default=dict, help_text="Devices left out, by identifier, with the reason")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREPARING)
    prepared = models.PositiveIntegerField(default=0, help_text="Devices whose change set is made")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last progress while the change sets are made")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"bulk change {self.pk}: {', '.join(f'{k}={v!r}' for k, v in self.values.items())}"


class ChangeSet(models.Model):
    """The parameters one message (or one burst of commands) carries to a device, under a version."""

    class State(models.TextChoices):
        PENDING = "pending", "pending (not sent yet)"
        SENT = "sent", "sent, waiting for the answer"
        APPLIED = "applied", "applied"
        PARTIAL = "partial", "partly applied"
        REJECTED = "rejected", "rejected by the device"
        TIMED_OUT = "timed_out", "timed out"
        SUPERSEDED = "superseded", "superseded by a newer change set"

    OPEN = (State.PENDING, State.SENT)

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="change_sets")
    version = models.PositiveIntegerField()
    values = models.JSONField(help_text="Every parameter this change set carries, with its value")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True, help_text="Why it waits, or what the device said")
    answer = models.JSONField(default=dict, blank=True, help_text="The device's answers so far: applied keys and refusals")
    attempts = models.PositiveIntegerField(default=0, help_text="Sends in the current delivery round")
    delivery_round = models.PositiveIntegerField(
        default=0, help_text="Grows each time delivery starts over (the device came back): older scheduled retries then do nothing"
    )
    messages_sent = models.PositiveIntegerField(default=0, help_text="MQTT messages published for it, all rounds")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    bulk_change = models.ForeignKey(BulkChange, null=True, blank=True, on_delete=models.SET_NULL, related_name="change_sets")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["device", "-version"]
        constraints = [models.UniqueConstraint(fields=["device", "version"], name="one_change_set_version_per_device")]
        indexes = [models.Index(fields=["state"], name="change_set_state")]

    def __str__(self):
        return f"{self.device} v{self.version} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN


class DeviceParameter(models.Model):
    class State(models.TextChoices):
        IN_SYNC = "in_sync", "in sync"
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        APPLIED = "applied", "applied"
        REJECTED = "rejected", "rejected"
        TIMED_OUT = "timed_out", "timed out"
        DRIFTED = "drifted", "drifted (device differs, nothing pending)"

    IN_FLIGHT = (State.PENDING, State.SENT)

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="parameters")
    key = models.CharField(max_length=100)
    desired = models.JSONField(null=True, blank=True, help_text="What the operator wants; empty: no wish")
    reported = models.JSONField(null=True, blank=True, help_text="What the device last said it has")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_SYNC)
    reason = models.TextField(blank=True, help_text="The device's reason for a refusal, or why it waits")
    change_set = models.ForeignKey(
        ChangeSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The newest change set that carried the desired value",
    )
    desired_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device", "key"]
        constraints = [models.UniqueConstraint(fields=["device", "key"], name="one_parameter_row_per_device_key")]
        indexes = [models.Index(fields=["state"], name="device_parameter_state")]

    def __str__(self):
        return f"{self.device} {self.key}"


class ParameterEvent(models.Model):
    """The audit: who changed what and when, from which value to which, and what the device answered."""

    class Kind(models.TextChoices):
        REQUESTED = "requested", "change requested"
        SENT = "sent", "sent"
        APPLIED = "applied", "applied by the device"
        REJECTED = "rejected", "rejected by the device"
        TIMED_OUT = "timed_out", "timed out"
        SUPERSEDED = "superseded", "superseded"
        WAITING = "waiting", "waiting for the device"
        REPORTED = "reported", "reported by the device"
        DRIFT = "drift", "drift"
        LATE_ANSWER = "late_answer", "answer for an older change set"
        UNREADABLE = "unreadable", "unreadable answer"
        NOT_SENT = "not_sent", "refused before sending"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="parameter_events")
    key = models.CharField(max_length=100, blank=True, help_text="Empty for an event of the whole change set")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    change_set = models.ForeignKey(ChangeSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    device_answer = models.TextField(blank=True, help_text="What the device said, as it said it")
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["device", "-at"], name="parameter_event_device_time")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.device} {self.key} {self.kind}"

