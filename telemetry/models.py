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
    estimated_wh = models.FloatField(
        default=0.0, help_text="Part of the energy whose place in time is estimated: a stale counter's catch-up spread over the time it covers"
    )
    min_power_w = models.FloatField(null=True, help_text="Lowest power within the bucket's covered part")
    max_power_w = models.FloatField(null=True, help_text="Highest power within the bucket's covered part")

    @property
    def coverage(self) -> float:
        return self.covered_seconds / 900.0

    @property
    def avg_power_w(self) -> float | None:
        """Average power over the covered part of the bucket."""
        return self.energy_wh * 3600.0 / self.covered_seconds if self.covered_seconds > 0 else None


class EnergyDay(models.Model):
    """A channel's energy on one local day of its site: the sum of the day's buckets, kept with them.

    Days, weeks, months, years and billing periods are sums of days, so a year of a site is a few
    thousand rows, not millions of buckets. The day is cut in the site's time zone; changing the
    zone rebuilds them (telemetry/energy_days.py).
    """

    pk = models.CompositePrimaryKey("channel", "day")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="energy_days")
    day = models.DateField()
    energy_wh = models.FloatField()
    covered_seconds = models.FloatField()
    estimated_wh = models.FloatField(default=0.0)


class ReadingFlag(models.Model):
    """What the energy rules concluded about one stored reading: kept with the buckets, from the same readings."""

    class Kind(models.TextChoices):
        RESET = "reset", "Counter reset: the value counts from zero"
        ROLLOVER = "rollover", "Counter wrapped at its declared width"
        JITTER = "jitter", "Small drop: nothing counts until the counter passes its highest value again"
        GLITCH = "glitch", "Invalid: the counter left its course and came straight back"
        SPIKE = "spike", "Invalid: the step implies a power above the channel's plausible maximum"
        JUMP = "jump", "Counter jumped beyond any plausible power and went on from there: the step is not counted"
        STALE = "stale", "Estimated: the step after a repeated stale value is spread over the time it covers"
        OUT_OF_RANGE = "out_of_range", "Invalid: a power above the channel's plausible maximum"

    pk = models.CompositePrimaryKey("channel", "time")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="reading_flags")
    time = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    detail = models.TextField(blank=True)

    @property
    def invalid(self) -> bool:
        return self.kind in (self.Kind.GLITCH, self.Kind.SPIKE, self.Kind.OUT_OF_RANGE)


class DeadLetter(models.Model):
    """A message, or part of one, that could not be stored as readings, kept whole with the reason."""

    topic = models.TextField()  # as it came: a hostile topic of any length is kept, not refused
    payload = models.TextField()
    payload_is_base64 = models.BooleanField(
        default=False, help_text="The payload is base64 of its bytes (not UTF-8 text, or text holding NUL)"
    )
    payload_truncated = models.BooleanField(
        default=False, help_text="Only the payload's first bytes are kept (it was over the size limit): it cannot be replayed"
    )
    reason = models.TextField()
    received_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    replay_count = models.PositiveIntegerField(default=0, help_text="Times an operator replayed it and it failed again")
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.topic}: {self.reason[:80]}"


class PendingDevice(models.Model):
    """A device nobody registered yet, as its messages show it: waiting for an operator to adopt it.

    Messages are grouped by the device identifier the topic patterns of the known device
    models (and the built-in maps) read from their topic; a topic no pattern matches is
    grouped by the whole topic. Like dead letters, a pending device belongs to no organisation.
    """

    OVERFLOW_KEY = "overflow"

    # "device:<identifier>", "topic:<topic>" (no pattern matched), "topic-sha256:<hex>" (a topic too
    # long for the key) or OVERFLOW_KEY: the prefixes keep a guessed identifier and a topic apart.
    key = models.CharField(max_length=255, unique=True)
    identifier = models.CharField(max_length=128, blank=True, help_text="Guessed from the topic; empty when no known pattern matches it")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    message_count = models.PositiveBigIntegerField(default=0, help_text="Messages received, kept or not")
    dropped_count = models.PositiveBigIntegerField(default=0, help_text="Messages counted but not kept: over the per-device or pending-device limit")
    last_topic = models.TextField()
    last_payload = models.TextField()
    last_payload_is_base64 = models.BooleanField(default=False)
    matching_models = models.JSONField(default=list, help_text="Device models and built-in maps whose topic patterns match the last topic")

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self):
        if self.key == self.OVERFLOW_KEY:
            return "Further unknown devices (over the limit of pending devices)"
        return self.identifier or self.last_topic[:120]

    @property
    def is_overflow(self) -> bool:
        return self.key == self.OVERFLOW_KEY


class UnclaimedMessage(models.Model):
    """One message of a pending device, kept whole so adoption can ingest it as if it had just arrived."""

    pending_device = models.ForeignKey(PendingDevice, on_delete=models.CASCADE, related_name="messages")
    topic = models.TextField()
    payload = models.TextField()
    payload_is_base64 = models.BooleanField(default=False)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self):
        return f"{self.topic} at {self.received_at.isoformat()}"
