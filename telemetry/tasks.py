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
