"""Many simulated devices in one process: one MQTT client each, one network thread for them all.

Each device has its own client because each has its own last will, as a real device does. A
thread per client (paho's loop_start) would be 500 threads for 500 devices on 2 cores, so one
thread drives every socket through paho's external-loop API instead: the selector waits on all the
clients' sockets, loop_read() when one is readable, loop_write() while the client wants to write
(paho says so through on_socket_register_write), loop_misc() once a second for the keepalives.
The same thread runs the timers (telemetry, delayed answers, offline schedules), so device state
is only ever touched by that thread; other threads hand it work through NetworkLoop.run().
"""

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import paho.mqtt.client as mqtt

from telemetry.bridge import BrokerAddress, connect, make_client

from .device import Counters, SimulatedDevice
from .profiles import Profile, load_profile
from .protocols import Outgoing, protocol_for
from .telemetry import CsvReplay

log = logging.getLogger(__name__)

MISC_EVERY_S = 1.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0
# Devices connected per turn of the loop: the broker's CONNACKs are read between the batches
# instead of piling up behind 500 blocking connects.
CONNECT_BATCH = 25


class NetworkLoop:
    """One thread: a selector over sockets, timers, and work handed in from other threads."""

    def __init__(self):
        # selectors (epoll) rather than select.select: select cannot watch a descriptor above 1023,
        # and 500 clients in a process that has other files open get there.
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._inbox: deque = deque()
        self._timers: list = []
        self._order = itertools.count()
        self._every_second: list = []
        self._thread: threading.Thread | None = None
        self._running = False

    # Thread handling

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="simulator-network", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, action) -> Future:
        """Run `action()` in the loop thread; its result or exception comes back in the Future."""
        future: Future = Future()
        self._inbox.append((action, future))
        try:
            self._wake_writer.send(b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: the loop is awake
        return future

    def run(self, action, timeout_s: float = 30.0):
        """Run `action()` in the loop thread and wait for it (at once when already there)."""
        if self.in_loop_thread() or not self.running:
            return action()
        return self.submit(action).result(timeout_s)

    def halt(self) -> None:
        self._running = False

    def join(self, timeout_s: float) -> None:
        if self._thread:
            self._thread.join(timeout_s)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    # Loop thread only

    def call_later(self, delay_s: float, action) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay_s), next(self._order), action))

    def every_second(self, action) -> None:
        self._every_second.append(action)

    def watch(self, sock, handler) -> None:
        self._selector.register(sock, selectors.EVENT_READ, handler)

    def want_write(self, sock, wanted: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wanted else 0)
        try:
            key = self._selector.get_key(sock)
        except (KeyError, ValueError):
            return
        self._selector.modify(sock, events, key.data)

    def unwatch(self, sock) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def watched(self) -> int:
        return len(self._selector.get_map()) - 1  # without the wake-up socket

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_EVERY_S
        while self._running:
            due = min(self._timers[0][0] if self._timers else next_misc, next_misc)
            for key, mask in self._selector.select(max(0.0, due - time.monotonic())):
                if key.data is None:
                    self._drain_wake_ups()
                    continue
                if mask & selectors.EVENT_READ:
                    self._safely(key.data.readable)
                if mask & selectors.EVENT_WRITE:
                    self._safely(key.data.writable)
            while self._inbox:
                action, future = self._inbox.popleft()
                try:
                    future.set_result(action())
                except BaseException as error:  # the caller gets it; the loop goes on for the other devices
                    future.set_exception(error)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                self._safely(heapq.heappop(self._timers)[2])
            if now >= next_misc:
                next_misc = now + MISC_EVERY_S
                for action in list(self._every_second):
                    self._safely(action)

    def _drain_wake_ups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    @staticmethod
    def _safely(action) -> None:
        try:
            action()
        except Exception:
            log.exception("simulator: %r failed", action)


class DeviceLink:
    """One device's MQTT connection, driven by the NetworkLoop (every paho call happens in its thread)."""

    def __init__(self, device: SimulatedDevice, broker: BrokerAddress, loop: NetworkLoop, mqtt_protocol: str):
        self.device = device
        self.protocol = protocol_for(device)
        self.broker = broker
        self.loop = loop
        self.mqtt_protocol = mqtt_protocol
        self.connected = threading.Event()
        self.stopping = False
        self._offline = False  # asked to stay offline: no reconnecting on its own
        self._ever_connected = False
        self._retry_s = RECONNECT_MIN_S
        self._telemetry_running = False
        will = self.protocol.status(device, online=False)
        # A device keeps no session: like real firmware, it subscribes again on each connect.
        self.client = make_client(broker, device.device_id, mqtt_protocol, persistent=False)
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda client, userdata, sock: loop.watch(sock, self)
        self.client.on_socket_close = lambda client, userdata, sock: loop.unwatch(sock)
        self.client.on_socket_register_write = lambda client, userdata, sock: loop.want_write(sock, True)
        self.client.on_socket_unregister_write = lambda client, userdata, sock: loop.want_write(sock, False)
        device.link = self

    # The Link of device.py (any thread)

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    def run(self, action):
        return self.loop.run(action)

    def drop(self) -> None:
        self.loop.run(self._drop)

    def restore(self) -> None:
        self.loop.run(self._restore)

    def configuration_changed(self) -> None:
        self.loop.run(lambda: self._publish_all(self.protocol.on_configuration_changed(self.device)))

    def relays_changed(self) -> None:
        self.loop.run(lambda: self._publish_all(self.protocol.relay_changed(self.device)))

    # Socket events from the loop

    def readable(self) -> None:
        self.client.loop_read()

    def writable(self) -> None:
        self.client.loop_write()

    def misc(self) -> None:
        self.client.loop_misc()

    # Loop thread

    def open(self) -> None:
        self._offline = False
        try:
            if self._ever_connected:
                self.client.reconnect()
            else:
                self._ever_connected = True
                connect(self.client, self.broker, self.mqtt_protocol, persistent=False)
        except OSError as error:
            log.warning("%s: cannot reach %s (%s); trying again in %.0f s", self.device.device_id, self.broker, error, self._retry_s)
            self._reconnect_later()

    def _reconnect_later(self) -> None:
        delay, self._retry_s = self._retry_s, min(self._retry_s * 2, RECONNECT_MAX_S)
        self.loop.call_later(delay, lambda: None if (self._offline or self.stopping or self.connected.is_set()) else self.open())

    def _drop(self) -> None:
        """Cut the TCP connection without DISCONNECT, so the broker publishes the last will."""
        self._offline = True
        sock = self.client.socket()
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # paho finds the end of the stream and closes its side (on_socket_close, on_disconnect).
        for _ in range(100):
            if self.client.socket() is None:
                break
            self.client.loop_read()

    def _restore(self) -> None:
        if not self.connected.is_set():
            self._retry_s = RECONNECT_MIN_S
            self.open()

    def publish(self, out: Outgoing) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set() and out.qos == 0:
            return None  # nowhere to go; a QoS 1 message waits in paho for the next connection
        info = self.client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
        self.device.counters.published += 1
        return info

    def _publish_all(self, messages: list[Outgoing]) -> None:
        for out in messages:
            if out.answer and self.device.answer_delay_s > 0:
                self.loop.call_later(self.device.answer_delay_s, lambda out=out: self.publish(out))
            else:
                self.publish(out)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("%s: connection refused by the broker: %s", self.device.device_id, reason_code)
            return
        self._retry_s = RECONNECT_MIN_S
        self.device.counters.connects += 1
        client.subscribe([(topic, 1) for topic in self.protocol.subscriptions(self.device)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        # Online only once subscribed: a broker may act on a SUBSCRIBE after later packets (amqtt does), and a
        # change sent on hearing "online" would then find no subscriber.
        self.connected.set()
        self._publish_all(self.protocol.on_connected(self.device))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not (self._offline or self.stopping):
            log.warning("%s: connection lost (%s); reconnecting", self.device.device_id, reason_code)
            self._reconnect_later()

    def _on_message(self, client, userdata, message):
        self.device.counters.received += 1
        self._publish_all(self.protocol.handle(self.device, message.topic, message.payload))

    def start_telemetry(self, first_in_s: float) -> None:
        if not self._telemetry_running:
            self._telemetry_running = True
            self.loop.call_later(first_in_s, self._telemetry_tick)

    def _telemetry_tick(self) -> None:
        if self.stopping:
            return
        # The meter keeps measuring while offline, as a real one does; only the sending waits.
        sample = self.device.take_sample()
        if sample is None:
            self._telemetry_running = False  # the replayed file is over
            return
        if self.connected.is_set():
            self.publish(self.protocol.telemetry(self.device, sample))
            self.device.counters.telemetry_sent += 1
        self.loop.call_later(self.device.telemetry_interval_s(), self._telemetry_tick)


class Fleet:
    """Devices connected to one broker, all driven by one network thread.

    `telemetry`: False leaves the devices quiet but for their answers (tests that count messages).
    """

    def __init__(self, broker_url: str, devices: list[SimulatedDevice], mqtt_protocol: str = "3.1.1", telemetry: bool = True):
        self.broker = BrokerAddress.from_url(broker_url)
        self.devices = list(devices)
        self.telemetry = telemetry
        self.loop = NetworkLoop()
        self.links = [DeviceLink(device, self.broker, self.loop, mqtt_protocol) for device in self.devices]
        self._by_id = {device.device_id: device for device in self.devices}
        self.started_at: float | None = None

    def __enter__(self) -> "Fleet":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def device(self, device_id: str) -> SimulatedDevice:
        return self._by_id[device_id]

    def start(self) -> "Fleet":
        if self.started_at is not None:
            return self  # simulate() starts it; `with simulate(...)` must not start it twice
        self.started_at = time.monotonic()
        self.loop.start()
        self.loop.run(self._open_all)
        return self

    def _open_all(self) -> None:
        for link in self.links:
            self.loop.every_second(link.misc)
        for index, link in enumerate(self.links):
            self.loop.call_later(0.005 * (index // CONNECT_BATCH), link.open)
            if self.telemetry:
                # Spread over one interval, so 500 devices do not all send in the same millisecond.
                link.start_telemetry(link.device.telemetry_interval_s() * (index + 1) / len(self.links))

    def wait_online(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(link.connected.wait(max(0.0, deadline - time.monotonic())) for link in self.links)

    def online_count(self) -> int:
        return sum(link.is_connected for link in self.links)

    def counters(self) -> Counters:
        total = Counters()
        for device in self.devices:
            total.add(device.counters)
        return total

    def schedule_offline(self, devices: list[SimulatedDevice], after_s: float, for_s: float | None) -> None:
        """Drop `devices` after `after_s` (the broker sends their last wills), back `for_s` later (None: never)."""

        def drop():
            for device in devices:
                device.link._drop()
            log.info("%d devices offline", len(devices))
            if for_s is not None:
                self.loop.call_later(for_s, restore)

        def restore():
            for device in devices:
                device.link._restore()
            log.info("%d devices back online", len(devices))

        self.loop.run(lambda: self.loop.call_later(after_s, drop))

    def stop(self, timeout_s: float = 10.0) -> None:
        """A clean shutdown: "offline" published retained by each device, then DISCONNECT.

        A DISCONNECT tells the broker to discard the last will, so the device says it itself first.
        """
        if not self.loop.running:
            return
        deadline = time.monotonic() + timeout_s
        self.loop.run(lambda: self._stop_step(self._say_offline(), deadline, disconnected=False))
        self.loop.join(timeout_s + 1)

    def _say_offline(self) -> list:
        goodbyes = []
        for link in self.links:
            link.stopping = True
            if link.is_connected:
                goodbyes.append(link.publish(link.protocol.status(link.device, online=False)))
        return [info for info in goodbyes if info is not None]

    def _stop_step(self, goodbyes: list, deadline: float, disconnected: bool) -> None:
        """Step by step in the loop thread, so the sockets keep being served while it waits."""
        now = time.monotonic()
        if not disconnected and (now >= deadline or all(info.is_published() for info in goodbyes)):
            for link in self.links:
                link.client.disconnect()
            disconnected = True
        if disconnected and (now >= deadline or self.loop.watched() == 0):
            self.loop.halt()
            return
        self.loop.call_later(0.02, lambda: self._stop_step(goodbyes, deadline, disconnected))


def device_ids(count: int, prefix: str = "sim-", first: int = 1) -> list[str]:
    width = max(4, len(str(first + count - 1)))
    return [f"{prefix}{index:0{width}d}" for index in range(first, first + count)]


def build_devices(
    count: int,
    prefix: str = "sim-",
    profile: str | Path | Profile = "iotwatt-meter",
    telemetry_csv: str | Path | None = None,
    interval_s: float | None = None,
    speed: float = 1.0,
    silent: bool = False,
    answer_delay_s: float = 0.0,
) -> list[SimulatedDevice]:
    """`count` devices named prefix0001... of one profile, fed by one CSV file or the profile's loads."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    replay = CsvReplay(telemetry_csv) if telemetry_csv else None
    return [
        SimulatedDevice(device_id, profile, source=replay, interval_s=interval_s, speed=speed, silent=silent, answer_delay_s=answer_delay_s)
        for device_id in device_ids(count, prefix)
    ]


def simulate(broker_url: str, count: int = 1, mqtt_protocol: str = "3.1.1", telemetry: bool = True, **device_options) -> Fleet:
    """A started Fleet of `count` devices (build_devices' options); use it as a context manager."""
    return Fleet(broker_url, build_devices(count, **device_options), mqtt_protocol=mqtt_protocol, telemetry=telemetry).start()
