"""Stored telemetry: raw readings, 15-minute energy buckets, and the messages we could not use."""

from django.db import models

from assets.models import Channel


class Reading(models.Model):
    """One measurement. Keyed by (channel, time): a repeated message can never be stored twice."""

    pk = models.CompositePrimaryKey("channel", "time")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="readings")
    time = models.DateTimeField(help_text="Measurement time (UTC)")
    value = models.FloatField(help_text="In the channel's base unit (Wh, W)")  # double precision

    def __str__(self):
        return f"{self.channel_id} {self.time.isoformat()} {self.value}"


class EnergyBucket(models.Model):
    """Energy of one channel in one 15-minute UTC bucket: the atom every local view is built from."""

    pk = models.CompositePrimaryKey("channel", "start")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="energy_buckets")
    start = models.DateTimeField()
    energy_wh = models.FloatField()
    covered_seconds = models.FloatField(help_text="Seconds of the bucket lying between two known samples")

    @property
    def coverage(self) -> float:
        return self.covered_seconds / 900.0


class DeadLetter(models.Model):
    """A message, or part of one, that could not be stored as readings, kept whole with the reason."""

    topic = models.TextField()  # as it came: a hostile topic of any length is kept, not refused
    payload = models.TextField()
    reason = models.TextField()
    received_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.topic}: {self.reason[:80]}"
