"""A fleet's publisher for fault tests: QoS 1, a persistent session, a steady rate, and a gate the test moves.

It behaves as a device with a send buffer does: it keeps every message until the broker's
PUBACK, and when the broker goes away it reconnects and sends again whatever was not yet
acknowledged. paho does that resending itself: a QoS 1 message stays in the client's
outgoing store until its PUBACK, publish() while disconnected keeps it there, and on
reconnection paho sends every unacknowledged one again (with the DUP flag when it had
been sent). The test checks it rather than trusts it: at the end every message must hold
its PUBACK, and the database must hold every reading.

The gate lets a test say "publish up to message N", so each fault lands while messages
are still being published, however fast or slow the machine is.
"""

import threading
import time

from telemetry.bridge import BrokerAddress, connect, make_client


class PacedPublisher:
    def __init__(self, broker_url: str, messages: list[tuple[str, str | bytes]], client_id: str, per_second: float):
        # Messages are told apart by their MQTT packet id, which wraps after 65,535.
        assert len(messages) < 65_535, "a publisher sends fewer than 65,535 messages"
        self.messages = messages
        self.per_second = per_second
        self.broker = BrokerAddress.from_url(broker_url)
        self.client = make_client(self.broker, client_id, "5", persistent=True)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # unlimited: nothing is refused while the broker is away
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect = self._on_connect
        self._lock = threading.Lock()
        self._gate = threading.Condition(self._lock)
        self._allowed = 0
        self._stopping = False
        self.published = 0  # handed to paho
        self.acknowledged = 0  # PUBACK received
        self.disconnects = 0
        self.unacknowledged_at_disconnect: list[int] = []  # per disconnect: sent, no PUBACK yet: paho must send them again
        self.published_while_disconnected = 0  # kept by paho until it could send them
        self.connects = 0
        self._connected = False
        self._sent_ids: list[int] = []
        self._acknowledged_ids: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="paced-publisher", daemon=True)
        self.error: BaseException | None = None

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self.connects += 1
            self._connected = True

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            self.acknowledged += 1
            self._acknowledged_ids.add(mid)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self._connected = False
            if not self._stopping:
                self.disconnects += 1
                self.unacknowledged_at_disconnect.append(self.published - self.acknowledged)

    def allow(self, count: int) -> None:
        with self._gate:
            self._allowed = min(max(self._allowed, count), len(self.messages))
            self._gate.notify_all()

    def start(self) -> "PacedPublisher":
        connect(self.client, self.broker, "5", persistent=True)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self._connected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the publisher could not connect to {self.broker}")
            time.sleep(0.05)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            started = time.monotonic()
            for index, (topic, payload) in enumerate(self.messages):
                with self._gate:
                    if index >= self._allowed:
                        while index >= self._allowed and not self._stopping:
                            self._gate.wait()
                        started = time.monotonic() - index / self.per_second  # no burst after waiting at the gate
                    if self._stopping:
                        return
                delay = started + index / self.per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # While the broker is away publish() answers "no connection" but keeps the message to send on reconnection.
                # (MQTTMessageInfo.is_published() raises for such a message even after paho has sent it and
                # received its PUBACK, so acknowledgements are counted by packet id instead.)
                mid = self.client.publish(topic, payload, qos=1).mid
                with self._lock:
                    self._sent_ids.append(mid)
                    self.published += 1
                    self.published_while_disconnected += not self._connected
        except BaseException as exc:  # seen by the test through wait_until_acknowledged
            self.error = exc

    def wait_until_acknowledged(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error:
                raise self.error
            if self.published == len(self.messages) and self.unacknowledged() == 0:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"after {timeout_s} s, {self.published} of {len(self.messages)} messages published, "
            f"{self.unacknowledged()} of them without a PUBACK"
        )

    def unacknowledged(self) -> int:
        with self._lock:
            return sum(mid not in self._acknowledged_ids for mid in self._sent_ids)

    def stop(self) -> None:
        with self._gate:
            self._stopping = True
            self._gate.notify_all()
        self._thread.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()
