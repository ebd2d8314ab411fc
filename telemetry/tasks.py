from celery import shared_task

from .ingest import ingest_messages


@shared_task(name="telemetry.tasks.ingest_batch")
def ingest_batch(messages: list[dict]) -> dict:
    """One batch from the MQTT bridge; the bridge acknowledges it to the broker once this has returned."""
    return ingest_messages(messages).as_dict()


@shared_task(name="telemetry.tasks.maintain_reading_storage")
def maintain_reading_storage() -> dict:
    """Scheduled by Celery beat (settings.CELERY_BEAT_SCHEDULE): partitions ahead, retention, TimescaleDB policies."""
    from .partitions import maintain_reading_storage as upkeep

    return upkeep()
