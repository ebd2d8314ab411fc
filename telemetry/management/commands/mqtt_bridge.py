import logging
import signal
import threading
import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telemetry.bridge import MqttBridge
from telemetry.tasks import ingest_batch

log = logging.getLogger("telemetry.bridge")


# A batch sent again waits this much longer each time, up to the cap: on a loaded database each extra
# copy of a slow batch competes with the first for the same channel locks and makes both slower still.
RESEND_TIMEOUT_CAP_S = 600.0


def commit_through_worker(messages: list[dict], stop: threading.Event) -> dict | None:
    """Send a batch to the ingest queue and wait until a worker has committed it.

    A batch whose worker died, or that took too long, is sent again: storing a
    batch twice changes nothing. The copies sent earlier are still awaited, and the
    first to commit counts, so a batch that was only slow is not waited for again
    behind its own repeat. Until it is committed, nothing is acknowledged; if the
    bridge is stopped first, it returns None and the broker keeps the messages.
    """
    attempt = 0
    while not stop.is_set():
        attempt += 1
        timeout = settings.INGEST_BATCH_TIMEOUT_S
        copies = [ingest_batch.apply_async(args=[messages], queue=settings.INGEST_QUEUE)]
        try:
            while not stop.is_set():
                deadline = time.monotonic() + timeout
                while not stop.is_set() and time.monotonic() < deadline:
                    for earlier in copies[:-1]:
                        if earlier.ready():
                            return earlier.get(disable_sync_subtasks=False)
                    try:
                        # One-second slices, so a stop (and an earlier copy's commit) is seen promptly.
                        return copies[-1].get(timeout=1.0 if len(copies) == 1 else 0.2, disable_sync_subtasks=False)
                    except CeleryTimeout:
                        continue
                if stop.is_set():
                    break
                log.warning("batch of %d messages not committed within %.0f s; sending it again", len(messages), timeout)
                copies.append(ingest_batch.apply_async(args=[messages], queue=settings.INGEST_QUEUE))
                timeout = min(timeout * 2, RESEND_TIMEOUT_CAP_S)
        except Exception as exc:  # a worker reported a failure (database down, ...)
            delay = min(30, 2 ** min(attempt, 5))
            log.warning("batch of %d messages failed (%s); retrying in %d s", len(messages), exc, delay)
            stop.wait(delay)
        finally:
            for sent in copies:
                sent.forget()
    return None


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
            commit_batch=commit_through_worker,
            protocol=settings.MQTT_PROTOCOL,
            batch_max_messages=settings.INGEST_BATCH_MAX_MESSAGES,
            batch_max_wait_s=settings.INGEST_BATCH_MAX_WAIT_S,
        )
        self.stdout.write(f"bridge {options['client_id']} -> {bridge.broker} topics {bridge.topics}")
        bridge.run(stop)
