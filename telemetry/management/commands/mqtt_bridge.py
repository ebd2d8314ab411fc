import logging
import signal
import threading
import time
from datetime import datetime, timezone

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telemetry import metrics
from telemetry.bridge import MqttBridge
from telemetry.tasks import ingest_batch

log = logging.getLogger("telemetry.bridge")

# A batch sent again waits this much longer each time, up to the cap: on a loaded database each extra
# copy of a slow batch competes with the first for the same channel locks and makes both slower still.
RESEND_TIMEOUT_CAP_S = 600.0


class WorkerBatch:
    """One batch on its way through the ingest queue until a worker has committed it.

    A batch whose worker died, or that took too long, is sent again: storing a
    batch twice changes nothing. The copies sent earlier are still awaited and the
    first to commit counts, so a batch that was only slow is not waited for again
    behind its own repeat; each resend waits twice as long as the one before. A
    batch a worker failed (database down, ...) is sent again after a growing pause.
    Until it is committed none of its messages is acknowledged; if the bridge
    stops first, the broker keeps them.
    """

    def __init__(self, messages: list[dict]):
        self.messages = messages
        self.failures = 0
        self.first_arrival = min(datetime.fromisoformat(message["received_at"]) for message in messages)
        self.copies = []
        self.timeout = settings.INGEST_BATCH_TIMEOUT_S
        self.deadline: float | None = None
        self.retry_at: float | None = None
        metrics.record({"messages_received": len(messages)})
        self._send()

    def _send(self) -> None:
        if self.copies or self.failures:
            metrics.record({"batches_resent": 1})
        self.copies.append(ingest_batch.apply_async(args=[self.messages], queue=settings.INGEST_QUEUE))
        self.retry_at = None

    def poll(self, wait_s: float) -> dict | None:
        """Called for the oldest batch in flight only: its timeout runs from then, not from when it was sent,
        so batches queued behind others are not sent again merely for waiting their turn."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.timeout
        if self.retry_at is not None:
            if time.monotonic() < self.retry_at:
                time.sleep(min(wait_s, self.retry_at - time.monotonic()))
                return None
            self._send()
            self.deadline = time.monotonic() + self.timeout
        try:
            committed = self._first_commit(wait_s)
        except Exception as exc:  # a worker reported a failure (database down, ...)
            self.failures += 1
            delay = min(30, 2 ** min(self.failures, 5))
            log.warning("batch of %d messages failed (%s); retrying in %d s", len(self.messages), exc, delay)
            self._forget()
            self.retry_at = time.monotonic() + delay
            return None
        if committed is not None:
            self._forget()
            metrics.record({}, {"batch_commit_seconds": [(datetime.now(timezone.utc) - self.first_arrival).total_seconds()]})
            return committed
        if time.monotonic() > self.deadline:
            log.warning("batch of %d messages not committed within %.0f s; sending it again", len(self.messages), self.timeout)
            self._send()
            self.timeout = min(self.timeout * 2, RESEND_TIMEOUT_CAP_S)
            self.deadline = time.monotonic() + self.timeout
        return None

    def _first_commit(self, wait_s: float) -> dict | None:
        for earlier in self.copies[:-1]:
            if earlier.ready():
                return earlier.get(disable_sync_subtasks=False)
        newest = self.copies[-1]
        if wait_s <= 0 and not newest.ready():
            return None
        try:
            return newest.get(timeout=max(wait_s, 0.001), disable_sync_subtasks=False)
        except CeleryTimeout:
            return None

    def _forget(self) -> None:
        for copy in self.copies:
            copy.forget()
        self.copies = []


class Command(BaseCommand):
    help = "Subscribe to device telemetry over MQTT and hand it to the ingest workers (one bridge process)."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", default=settings.MQTT_CLIENT_ID)
        parser.add_argument("--topic", action="append", dest="topics", help="telemetry topic filter, repeatable; default MQTT_TOPICS")
        parser.add_argument("--status-topic", action="append", dest="status_topics", help="status topic filter, repeatable; default MQTT_STATUS_TOPICS")
        parser.add_argument("--shared-group", default=settings.MQTT_SHARED_GROUP, help='default MQTT_SHARED_GROUP; "" subscribes plainly')
        parser.add_argument(
            "--retire", action="store_true",
            help="take over this client id's session once more: unsubscribe, store what it still holds, end the session, exit "
            "(before a bridge is removed for good; see docs/scaling.md)",
        )

    def handle(self, *args, **options):
        if not options["client_id"].strip():
            raise CommandError("--client-id must name this bridge (unique per bridge process)")
        if any(c in options["shared_group"] for c in "/+#"):
            raise CommandError(f"--shared-group must be a plain name without / + #, not {options['shared_group']!r}")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        bridge = MqttBridge(
            broker_url=settings.MQTT_URL,
            client_id=options["client_id"],
            topics=options["topics"] or settings.MQTT_TOPICS,
            status_topics=options["status_topics"] or settings.MQTT_STATUS_TOPICS,
            shared_group=options["shared_group"],
            retire=options["retire"],
            submit_batch=WorkerBatch,
            protocol=settings.MQTT_PROTOCOL,
            batch_max_messages=settings.INGEST_BATCH_MAX_MESSAGES,
            batch_max_wait_s=settings.INGEST_BATCH_MAX_WAIT_S,
            batches_in_flight=settings.INGEST_BATCHES_IN_FLIGHT,
            max_payload_bytes=settings.INGEST_MAX_PAYLOAD_BYTES,
        )
        self.stdout.write(f"bridge {options['client_id']} -> {bridge.broker} topics {bridge.topics}")
        bridge.run(stop)
