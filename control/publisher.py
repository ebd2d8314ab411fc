"""One MQTT connection per worker process for what the product sends to devices (QoS 1).

Created on first use, so each Celery child process (forked) opens its own.
"""

import logging
import os
import socket
import threading
import uuid

from django.conf import settings

from telemetry.bridge import BrokerAddress, connect, make_client

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not take the message; nothing was sent."""


class Publisher:
    def __init__(self, broker_url: str, protocol: str, timeout_s: float):
        self.broker = BrokerAddress.from_url(broker_url)
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.client_id = f"iotwatt-control-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.client = None
        self._connected = threading.Event()
        self.published = 0

    def _ensure_connected(self) -> None:
        if self.client is None:
            self.client = make_client(self.broker, self.client_id, self.protocol, persistent=False)
            self.client.on_connect = lambda client, userdata, flags, reason_code, properties: (
                self._connected.set() if not reason_code.is_failure else log.error("MQTT connect refused: %s", reason_code)
            )
            self.client.on_disconnect = lambda *args: self._connected.clear()
            try:
                connect(self.client, self.broker, self.protocol, persistent=False)
            except OSError as exc:
                self.client = None
                raise PublishError(f"broker {self.broker} not reachable: {exc}") from exc
            self.client.loop_start()
        if not self._connected.wait(self.timeout_s):
            raise PublishError(f"not connected to the broker {self.broker} within {self.timeout_s:.0f} s")

    def publish(self, topic: str, payload: str) -> None:
        """Returns once the broker has acknowledged the message (PUBACK)."""
        self._ensure_connected()
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:  # paho: not queued (no connection) or the queue is full
            raise PublishError(f"{topic}: {exc}") from exc
        if not info.is_published():
            raise PublishError(f"{topic}: the broker did not acknowledge within {self.timeout_s:.0f} s")
        self.published += 1


_publisher: Publisher | None = None
_publisher_pid: int | None = None


def publisher() -> Publisher:
    global _publisher, _publisher_pid
    if _publisher is None or _publisher_pid != os.getpid():
        _publisher = Publisher(settings.MQTT_URL, settings.MQTT_PROTOCOL, settings.CONTROL_PUBLISH_TIMEOUT_S)
        _publisher_pid = os.getpid()
    return _publisher
