"""The configuration agent: the process that hears devices answer about their configuration.

It subscribes (QoS 1, persistent session, manual acknowledgement) to every protocol's answer topic
and to the device status topics, applies each message in its own transaction, and acknowledges it
to the broker only after the commit: answers that arrive while it is down wait in its session.
A device whose status says online gets what is pending for it (a Celery task on CONTROL_QUEUE).
Messages are handled one at a time in arrival order, which is also the order MQTT wants the
acknowledgements in.
"""

import logging
import queue
import threading
from datetime import datetime, timezone

from django.db import InterfaceError, OperationalError, close_old_connections, transaction

from assets.models import Device, DeviceModel
from telemetry.bridge import BrokerAddress, connect_with_backoff, make_client
from telemetry.decoders import DecodeError, decode_status, device_identifier
from telemetry.device_status import DeviceActivity
from telemetry.parameter_maps import BUILT_IN_MAPS

from .answers import apply_answer, unreadable
from .delivery import wait_for_return
from .definitions import DefinitionError, configuration_of
from .models import ChangeSet
from .protocols import ANSWER_TOPICS, AnswerError, answer_device, read_answer

log = logging.getLogger(__name__)


def status_patterns() -> list[str]:
    """Status topic patterns of every map that takes configuration: the built-in ones and the organisations' own."""
    maps = list(BUILT_IN_MAPS.values()) + list(DeviceModel.objects.filter(parameter_map__has_key="configuration").values_list("parameter_map", flat=True))
    patterns = []
    for parameter_map in maps:
        status = parameter_map.get("status") if isinstance(parameter_map, dict) and "configuration" in parameter_map else None
        pattern = status.get("topic") if isinstance(status, dict) else None
        if isinstance(pattern, str) and pattern not in patterns:
            patterns.append(pattern)
    return patterns


def subscription_filter(pattern: str) -> str:
    return pattern.replace("{device}", "+").replace("{channel}", "+")


class ConfigAgent:
    def __init__(self, broker_url: str, client_id: str, protocol: str = "5"):
        self.broker = BrokerAddress.from_url(broker_url)
        self.protocol = protocol
        self.client_id = client_id
        self.status_patterns = status_patterns()
        self.filters = list(ANSWER_TOPICS.values()) + [subscription_filter(p) for p in self.status_patterns]
        self.client = make_client(self.broker, client_id, protocol, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: log.info("subscribed to %s", ", ".join(self.filters))
        self._inbox: queue.Queue = queue.Queue()
        self._generation = 0
        self.handled = 0
        self.failed = 0

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._generation += 1
        client.subscribe([(topic, 1) for topic in self.filters])

    def _on_message(self, client, userdata, message):
        self._inbox.put((self._generation, message, datetime.now(timezone.utc)))

    def run(self, stop: threading.Event) -> None:
        connect_with_backoff(self.client, self.broker, self.protocol, stop, receive_maximum=100)
        self.client.loop_start()
        try:
            while not stop.is_set():
                try:
                    generation, message, received_at = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not self._handle_until_done(message, received_at, stop):
                    break  # stopped while the database was away: unacknowledged, the broker keeps it for next time
                if generation == self._generation:  # an older connection's message comes again under a new id
                    self.client.ack(message.mid, message.qos)
        finally:
            log.info("stopping: %d messages handled, %d passed over", self.handled, self.failed)
            self.client.disconnect()
            self.client.loop_stop()

    def _handle_until_done(self, message, received_at: datetime, stop: threading.Event) -> bool:
        """True once the message is dealt with. A database outage must not lose it: it is tried again until the
        database is back (False if stopped first). A message that fails for any other reason is recorded and
        passed over: one bad message must never hold up every other device's answers."""
        delay = 1.0
        while not stop.is_set():
            try:
                close_old_connections()
                handle_message(message.topic, message.payload, received_at, self.status_patterns)
                self.handled += 1
                return True
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable on %s (%s); trying again in %.0f s", message.topic, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception:
                log.exception("message on %s could not be handled; passed over", message.topic)
                self.failed += 1
                return True
        return False


def handle_message(topic: str, payload: bytes, received_at: datetime, patterns: list[str]) -> str:
    answered = answer_device(topic)
    if answered is not None:
        return _answer(answered[0], answered[1], payload, received_at)
    return _status(topic, payload, received_at, patterns)


def _answer(protocol: str, identifier: str, payload: bytes, received_at: datetime) -> str:
    device = Device.objects.select_related("device_model", "site").filter(identifier=identifier).first()
    if device is None:
        return "unknown_device"
    try:
        configuration = configuration_of(device.device_model.parameter_map)
    except DefinitionError:
        configuration = None
    if configuration is None or configuration.protocol != protocol:
        return "not_configurable"  # the topic looks like an answer, but this device takes no configuration this way
    raw = payload.decode("utf-8", errors="replace")
    try:
        answer = read_answer(protocol, payload, configuration)
    except AnswerError as exc:
        unreadable(device, raw, str(exc))
        return "unreadable"
    return apply_answer(device, configuration, answer, raw, received_at)


def _status(topic: str, payload: bytes, received_at: datetime, patterns: list[str]) -> str:
    identifiers = {device_identifier(topic, pattern) for pattern in patterns} - {None}
    for device in Device.objects.select_related("device_model").filter(identifier__in=identifiers):
        try:
            online = decode_status(topic, payload, device.device_model.parameter_map)
        except DecodeError as exc:
            log.warning("status of %s not understood: %s", device, exc)
            return "unreadable_status"
        if online is None:
            continue
        with transaction.atomic():
            # Latest-wins and idempotent, so the ingest recording the same status as well is harmless.
            activity = DeviceActivity()
            activity.status(device.pk, online, received_at)
            activity.save()
            newest = _newest_change_set_state(device.pk)
            if online and newest == ChangeSet.State.PENDING:
                from .tasks import deliver_pending, enqueue

                transaction.on_commit(lambda pk=device.pk: enqueue(deliver_pending, pk))
            elif not online and newest == ChangeSet.State.TIMED_OUT:
                wait_for_return(device.pk)
        return "online" if online else "offline"
    return "unknown_device"


def _newest_change_set_state(device_id: int) -> str | None:
    """Only a device with a change set waiting for it gets a delivery task when it comes online: every other
    online status (a retained one replayed at each subscription, a flapping device) starts nothing."""
    return ChangeSet.objects.filter(device_id=device_id).order_by("-version").values_list("state", flat=True).first()
