"""The MQTT bridge: subscribe with QoS 1, hand batches to the ingest workers, acknowledge after commit.

paho-mqtt 2 with manual acknowledgement: a message is acknowledged to the broker
only once the worker has committed the batch that holds it. If the bridge, a
worker or the database dies first, the broker keeps the message in the bridge's
persistent session and delivers it again; storage keyed by (channel, time)
makes the repeat harmless.

Several bridges split the telemetry through a shared subscription
(`$share/<group>/<filter>`): the broker gives each message to one of them.
Status topics are subscribed plainly by every bridge, because a broker does not
send retained messages on a shared subscription (MQTT 5, 4.8.2) and the retained
status is what a starting bridge needs; recording a status is latest-wins, so
several bridges recording the same one is harmless. See docs/scaling.md.

Several batches are on their way at once, so the workers are never idle while
the bridge waits for one commit; the acknowledgements still go out in the order
the messages came (MQTT asks for that), a batch's only after every earlier one's.
"""

import base64
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue a week while the bridge is down
# MQTT 5 subscription identifiers: the broker tells which of our subscriptions delivered a message.
TELEMETRY_SUBSCRIPTION = 1
STATUS_SUBSCRIPTION = 2
# Retiring: the session is drained once nothing has arrived for this long after the unsubscription.
# The broker sends queued messages as fast as we acknowledge them, so a pause this long means none are left.
RETIRE_IDLE_S = 5.0


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)

    def __str__(self) -> str:
        """For logs: never the password."""
        return f"mqtt://{self.username + '@' if self.username else ''}{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> "BrokerAddress":
        parsed = urlparse(url)
        if parsed.scheme not in {"mqtt", "tcp"}:
            raise ValueError(f"MQTT_URL must look like mqtt://[user:password@]host:port, not {url!r}")
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 1883,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
        )


def make_client(broker: BrokerAddress, client_id: str, protocol: str, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    """`persistent`: the broker keeps the session (subscriptions, unacknowledged messages) across disconnects."""
    mqtt_protocol = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    kwargs = {} if mqtt_protocol == mqtt.MQTTv5 else {"clean_session": not persistent}
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt_protocol, manual_ack=manual_ack, **kwargs
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect(client: mqtt.Client, broker: BrokerAddress, protocol: str, persistent: bool, receive_maximum: int = 1000) -> None:
    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        properties.ReceiveMaximum = min(receive_maximum, 65_535)
        client.connect(broker.host, broker.port, keepalive=30, clean_start=not persistent, properties=properties)
    else:
        client.connect(broker.host, broker.port, keepalive=30)


def connect_with_backoff(client: mqtt.Client, broker: BrokerAddress, protocol: str, stop: threading.Event, receive_maximum: int) -> None:
    """A persistent session's first connect, waiting for the broker at start-up too (paho's own reconnect only
    covers a lost connection); gives up only when `stop` is set."""
    delay = 1.0
    while not stop.is_set():
        try:
            connect(client, broker, protocol, persistent=True, receive_maximum=receive_maximum)
            return
        except OSError as exc:
            log.warning("broker %s not reachable (%s); trying again in %.0f s", broker, exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)


def message_record(message: mqtt.MQTTMessage, received_at: datetime, max_payload_bytes: int | None = None) -> dict:
    """The JSON-safe form of a message that travels to the worker.

    A payload over `max_payload_bytes` travels cut to that size with its real size beside it: the
    worker makes it a dead letter anyway, and a huge one must not fill the bridge's memory or Redis.
    """
    record = {"topic": message.topic, "received_at": received_at.isoformat()}
    payload = message.payload
    if max_payload_bytes is not None and len(payload) > max_payload_bytes:
        record["payload_bytes"] = len(payload)
        payload = payload[:max_payload_bytes]
    if message.dup:
        record["redelivered"] = True  # the broker sent it before: see telemetry/redelivery.py
    if message.retain:
        # Set only on a retained message replayed to a new subscription: the broker's memory, not the device now.
        record["retained"] = True
    try:
        record["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_b64"] = base64.b64encode(payload).decode("ascii")
    return record


class PendingBatch(Protocol):
    def poll(self, wait_s: float) -> dict | None:
        """The worker's result once the batch is committed; None while it is not (yet)."""


class MqttBridge:
    def __init__(
        self,
        broker_url: str,
        client_id: str,
        topics: list[str],
        submit_batch: Callable[[list[dict]], PendingBatch],
        protocol: str = "5",
        batch_max_messages: int = 500,
        batch_max_wait_s: float = 0.5,
        batches_in_flight: int = 4,
        status_topics: list[str] = (),
        shared_group: str = "",
        retire: bool = False,
        max_payload_bytes: int | None = None,
    ):
        """`retire`: take over the session of `client_id` one last time to end it (see `run`)."""
        self.broker = BrokerAddress.from_url(broker_url)
        self.client_id = client_id
        self.status_topics = list(status_topics)
        self.telemetry_subscriptions = [f"$share/{shared_group}/{topic}" if shared_group else topic for topic in topics]
        # Every subscription filter, for logs; status filters stay plain on purpose (see the module's docstring).
        self.topics = self.telemetry_subscriptions + self.status_topics
        self.protocol = protocol
        self.submit_batch = submit_batch
        self.batch_max_messages = batch_max_messages
        self.batch_max_wait_s = batch_max_wait_s
        self.batches_in_flight = batches_in_flight
        self.max_payload_bytes = max_payload_bytes
        # Each item: (connection generation, message, arrival time).
        self._inbox: queue.Queue = queue.Queue()
        self._generation = 0
        self._connected = threading.Event()
        self.client = make_client(self.broker, client_id, protocol, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._pending_subscriptions: set[int] = set()
        self.retire = retire
        self._unsubscribed = threading.Event()
        self._last_arrival = time.monotonic()
        self.client.on_unsubscribe = self._on_unsubscribe
        self.committed_messages = 0
        self.duplicates_dropped = 0

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._generation += 1
        log.info("connected to %s:%s as %s (session present: %s)", self.broker.host, self.broker.port, self.client_id, flags.session_present)
        if self.retire:
            # No new messages for this session from now on; what it holds already still comes.
            self._last_arrival = time.monotonic()
            client.unsubscribe(self.topics)
            return
        # Subscribing again on every connect also makes the broker send the retained statuses again.
        self._pending_subscriptions = {
            self._subscribe(self.telemetry_subscriptions, TELEMETRY_SUBSCRIPTION),
            self._subscribe(self.status_topics, STATUS_SUBSCRIPTION),
        } - {None}
        self._connected.set()

    def _subscribe(self, filters: list[str], subscription_id: int) -> int | None:
        if not filters:
            return None
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = subscription_id
        _, mid = self.client.subscribe([(topic, 1) for topic in filters], properties=properties)
        return mid

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.error("subscription to %s refused: %s", self.topics, refused)
            return
        self._pending_subscriptions.discard(mid)
        if not self._pending_subscriptions:
            log.info("subscribed to %s", ", ".join(self.topics))

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        log.info("retiring: unsubscribed from %s; storing what the session still holds", ", ".join(self.topics))
        self._unsubscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message):
        if self._is_second_copy_of_status(message):
            # Its copy from the status subscription is processed; this one is acknowledged and dropped,
            # so the message is neither stored nor counted twice.
            client.ack(message.mid, message.qos)
            self.duplicates_dropped += 1
            return
        self._last_arrival = time.monotonic()
        self._inbox.put((self._generation, message, datetime.now(timezone.utc)))

    def _is_second_copy_of_status(self, message: mqtt.MQTTMessage) -> bool:
        """A status topic also matched by a telemetry filter reaches us once per subscription (MQTT 5 tells
        them apart by subscription identifier; with 3.1.1 both copies are processed, which is harmless)."""
        identifiers = getattr(message.properties, "SubscriptionIdentifier", None) if message.properties else None
        return (
            bool(identifiers)
            and STATUS_SUBSCRIPTION not in identifiers
            and any(mqtt.topic_matches_sub(status_filter, message.topic) for status_filter in self.status_topics)
        )

    def _next_batch(self, stop: threading.Event, idle_s: float | None = None) -> list[tuple]:
        """Up to batch_max_messages, waiting batch_max_wait_s from the first; empty after `idle_s` without one."""
        batch = []
        deadline = None
        idle_until = None if idle_s is None else time.monotonic() + idle_s
        while len(batch) < self.batch_max_messages and not stop.is_set():
            timeout = 0.2 if deadline is None else max(0.0, deadline - time.monotonic())
            if idle_until is not None and deadline is None:
                timeout = max(0.0, idle_until - time.monotonic())
            try:
                batch.append(self._inbox.get(timeout=timeout))
            except queue.Empty:
                if batch or self.retire or (idle_until is not None and time.monotonic() >= idle_until):
                    break  # a retiring bridge looks up between polls to see whether it is done
                continue
            if deadline is None:
                deadline = time.monotonic() + self.batch_max_wait_s
        return batch

    def _connect_with_backoff(self, stop: threading.Event) -> None:
        # Room for every batch in flight plus the one filling: with less, the broker holds
        # messages back until a commit, and batches fill only by their wait time.
        receive_maximum = self.batch_max_messages * (self.batches_in_flight + 1)
        connect_with_backoff(self.client, self.broker, self.protocol, stop, receive_maximum)

    def _drained(self) -> bool:
        return self._unsubscribed.is_set() and self._inbox.empty() and time.monotonic() - self._last_arrival > RETIRE_IDLE_S

    def run(self, stop: threading.Event) -> None:
        """Until `stop`. A retiring bridge instead unsubscribes, stores what its session holds (a shared
        subscription keeps giving an offline member its share, which waits in its session), and then
        ends the session, so the broker no longer gives it a share of the group's messages."""
        self._connect_with_backoff(stop)
        if stop.is_set():
            return
        self.client.loop_start()
        in_flight: deque[tuple[list[tuple], PendingBatch]] = deque()
        try:
            while not stop.is_set():
                if len(in_flight) < self.batches_in_flight:
                    # With batches on their way, look at them between messages; without, just wait for messages.
                    batch = self._next_batch(stop, idle_s=0.02 if in_flight else None)
                    if batch:
                        records = [message_record(message, at, self.max_payload_bytes) for _, message, at in batch]
                        in_flight.append((batch, self.submit_batch(records)))
                if not in_flight:
                    if self.retire and self._drained():
                        break
                    continue
                oldest, pending = in_flight[0]
                room = len(in_flight) < self.batches_in_flight
                if pending.poll(wait_s=0.0 if room else 0.5) is None:
                    continue
                in_flight.popleft()
                self._acknowledge(oldest)
            # Stopped: what is not committed is not acknowledged, and the broker keeps it.
        finally:
            log.info("stopping: %d messages committed, %d duplicate status copies dropped", self.committed_messages, self.duplicates_dropped)
            if self.retire and self._drained():
                self._end_session()
            else:
                self.client.disconnect()
            self.client.loop_stop()

    def _end_session(self) -> None:
        if self.protocol == "5":
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0  # the broker discards the session on this disconnect
            self.client.disconnect(properties=properties)
        else:
            # MQTT 3.1.1 ends a session only by connecting with a clean session.
            self.client.disconnect()
            self.client.loop_stop()
            clean = make_client(self.broker, self.client_id, self.protocol, persistent=False)
            accepted = threading.Event()
            clean.on_connect = lambda *_: accepted.set()
            connect(clean, self.broker, self.protocol, persistent=False)
            clean.loop_start()
            if not accepted.wait(30):  # CONNACK: the broker has dropped the old session
                log.error("the broker did not answer the clean connect; the session of %s may remain", self.client_id)
            clean.disconnect()
            clean.loop_stop()
        log.info("retired: the broker no longer keeps a session for %s", self.client_id)

    def _acknowledge(self, batch: list[tuple]) -> None:
        for generation, message, _ in batch:
            # A message received on an earlier connection is delivered again on
            # this one under its own id; acknowledging the old id could hit another message.
            if generation == self._generation:
                self.client.ack(message.mid, message.qos)
        self.committed_messages += len(batch)
