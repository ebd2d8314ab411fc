from datetime import datetime, timezone

from celery import shared_task

from . import metrics
from .ingest import ingest_messages


@shared_task(name="telemetry.tasks.ingest_batch")
def ingest_batch(messages: list[dict]) -> dict:
    """One batch from the MQTT bridge; the bridge acknowledges it to the broker once this has returned."""
    result = ingest_messages(messages)
    committed_at = datetime.now(timezone.utc)
    metrics.record(
        {
            "messages_ingested": result.messages,
            "readings_valid": result.readings,
            "readings_stored": result.new_readings,
            "dead_letters": result.dead_letters,
            "batches_committed": 1,
        },
        {"reading_age_seconds": [(committed_at - measured).total_seconds() for measured in result.measured_at]},
    )
    return result.as_dict()


@shared_task(name="telemetry.tasks.maintain_reading_storage")
def maintain_reading_storage() -> dict:
    """Scheduled by Celery beat (settings.CELERY_BEAT_SCHEDULE): partitions ahead, retention, TimescaleDB policies."""
    from .partitions import maintain_reading_storage as upkeep

    return upkeep()


@shared_task(name="telemetry.tasks.rebuild_channel_energy")
def rebuild_channel_energy(channel_id: int) -> int:
    """Buckets, days and flags of one channel from its readings, under its lock (telemetry/signals.py)."""
    from django.db import transaction

    from .channel_rules import channel_rules
    from .rollup import lock_channels, recompute_channel

    rules = channel_rules([channel_id])
    if channel_id not in rules:  # deleted, or no longer a channel that makes energy
        return 0
    with transaction.atomic():
        lock_channels([channel_id])
        return recompute_channel(channel_id, rules[channel_id])
