"""Publish device messages with QoS 1 and wait until the broker has taken every one."""

import threading
import time

from telemetry.bridge import BrokerAddress, connect, make_client

from .progress import Progress


def publish_all(broker_url: str, protocol: str, messages: list[tuple[str, str]], client_id: str, progress=True) -> float:
    """Returns the seconds it took. Prints progress on one line when asked."""
    broker = BrokerAddress.from_url(broker_url)
    client = make_client(broker, client_id, protocol, persistent=False)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    confirmed = 0
    lock = threading.Lock()
    done = threading.Event()

    def on_publish(client, userdata, mid, reason_code, properties):
        nonlocal confirmed
        with lock:
            confirmed += 1
            if confirmed == len(messages):
                done.set()

    client.on_publish = on_publish
    connect(client, broker, protocol, persistent=False)
    client.loop_start()
    started = time.monotonic()
    try:
        if not messages:
            return 0.0
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        bar = Progress("messages published", len(messages)) if progress else None
        while not done.wait(0.5):
            if bar:
                bar.show(confirmed)
        if bar:
            bar.show(confirmed, final=True)
        return time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()
