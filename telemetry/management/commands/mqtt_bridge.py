import logging
import signal
import threading
import time
from datetime import datetime, timezone

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.management.base import BaseCommand

from telemetry import metrics
from telemetry.bridge import MqttBridge
from telemetry.tasks import ingest_batch

log = logging.getLogger("telemetry.bridge")


class WorkerBatch:
    """One batch on its way through the ingest queue until a worker has committed it.

    A batch whose worker died, or that took too long, is sent again: storing a
    batch twice changes nothing. A batch the worker failed (database down, ...)
    is sent again after a growing pause. Until it is committed, none of its
    messages is acknowledged; if the bridge stops first, the broker keeps them.
    """

    def __init__(self, messages: list[dict]):
        self.messages = messages
        self.attempt = 0
        self.first_arrival = min(datetime.fromisoformat(message["received_at"]) for message in messages)
        self.retry_at: float | None = None
        metrics.record({"messages_received": len(messages)})
        self._send()

    def _send(self) -> None:
        self.attempt += 1
        if self.attempt > 1:
            metrics.record({"batches_resent": 1})
        self.retry_at = None
        self.result = ingest_batch.apply_async(args=[self.messages], queue=settings.INGEST_QUEUE)
        self.deadline: float | None = None

    def poll(self, wait_s: float) -> dict | None:
        """Called for the oldest batch in flight only: its timeout runs from then, not from when it was sent,
        so batches queued behind others are not sent again merely for waiting their turn."""
        if self.deadline is None:
            self.deadline = time.monotonic() + settings.INGEST_BATCH_TIMEOUT_S
        if self.retry_at is not None:
            if time.monotonic() < self.retry_at:
                time.sleep(min(wait_s, self.retry_at - time.monotonic()))
                return None
            self._send()
        try:
            if wait_s <= 0 and not self.result.ready():
                raise CeleryTimeout()
            committed = self.result.get(timeout=max(wait_s, 0.001), disable_sync_subtasks=False)
        except CeleryTimeout:
            if time.monotonic() > self.deadline:
                log.warning("batch of %d messages not committed within %.0f s; sending it again",
                            len(self.messages), settings.INGEST_BATCH_TIMEOUT_S)
                self.result.forget()
                self._send()
            return None
        except Exception as exc:  # the worker reported a failure (database down, ...)
            delay = min(30, 2 ** min(self.attempt, 5))
            log.warning("batch of %d messages failed (%s); retrying in %d s", len(self.messages), exc, delay)
            self.result.forget()
            self.retry_at = time.monotonic() + delay
            return None
        self.result.forget()
        metrics.record({}, {"batch_commit_seconds": [(datetime.now(timezone.utc) - self.first_arrival).total_seconds()]})
        return committed


class Command(BaseCommand):
    help = "Subscribe to device telemetry over MQTT and hand it to the ingest workers (one bridge process)."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", default=settings.MQTT_CLIENT_ID)
        parser.add_argument("--topic", action="append", dest="topics", help="repeatable; default MQTT_TOPICS")

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        bridge = MqttBridge(
            broker_url=settings.MQTT_URL,
            client_id=options["client_id"],
            topics=options["topics"] or settings.MQTT_TOPICS,
            submit_batch=WorkerBatch,
            protocol=settings.MQTT_PROTOCOL,
            batch_max_messages=settings.INGEST_BATCH_MAX_MESSAGES,
            batch_max_wait_s=settings.INGEST_BATCH_MAX_WAIT_S,
            batches_in_flight=settings.INGEST_BATCHES_IN_FLIGHT,
        )
        self.stdout.write(f"bridge {options['client_id']} -> {bridge.broker} topics {bridge.topics}")
        bridge.run(stop)
