"""manage.py simulate_devices: simulated devices against a real broker (see docs/device-parameters.md)."""

import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from control.simulator import BUILT_IN_PROFILES, Fleet, build_devices


class Command(BaseCommand):
    help = (
        "Run simulated devices over MQTT: telemetry from a CSV file or the profile's load shape, "
        "configuration taken or refused by each device's own rules, relay commands, offline periods."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mqtt-url", default=None, help="default: settings.MQTT_URL")
        parser.add_argument("--mqtt-protocol", choices=["3.1.1", "5"], default="3.1.1",
                            help="what the devices speak (device firmware mostly speaks 3.1.1)")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--prefix", default="sim-", help="device ids are the prefix and a number: sim-0001...")
        parser.add_argument("--profile", default="iotwatt-meter",
                            help=f"a built-in profile ({', '.join(BUILT_IN_PROFILES)}) or a JSON file")
        parser.add_argument("--telemetry-csv", default=None,
                            help="CSV with a time column and one power column (W) per channel, replayed; default: the profile's load shape")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between telemetry messages (default: the device's own reporting parameter)")
        parser.add_argument("--no-telemetry", action="store_true", help="no telemetry: configuration, commands and status only")
        parser.add_argument("--speed", type=float, default=1.0, help="device time runs this much faster than real time")
        parser.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
        parser.add_argument("--offline-after", type=float, default=None, help="seconds after start when devices lose their connection")
        parser.add_argument("--offline-for", type=float, default=None, help="seconds they stay offline (default: to the end)")
        parser.add_argument("--offline-devices", type=int, default=None, help="how many go offline, the first ones (default: all)")
        parser.add_argument("--silent", action="store_true", help="online, but configuration messages go unanswered")
        parser.add_argument("--answer-delay", type=float, default=0.0, help="seconds before each answer leaves")
        parser.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines (0: none)")

    def handle(self, *args, **options):
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        try:
            devices = build_devices(
                options["count"], prefix=options["prefix"], profile=options["profile"],
                telemetry_csv=options["telemetry_csv"], interval_s=options["interval"], speed=options["speed"],
                silent=options["silent"], answer_delay_s=options["answer_delay"],
            )
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from error
        url = options["mqtt_url"] or settings.MQTT_URL
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        fleet = Fleet(url, devices, mqtt_protocol=options["mqtt_protocol"], telemetry=not options["no_telemetry"]).start()
        try:
            self._run(fleet, options, stop)
        finally:
            fleet.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stdout.write(f"stopped: {self._counts(fleet)}")

    def _run(self, fleet: Fleet, options: dict, stop: threading.Event) -> None:
        started = time.monotonic()
        if options["offline_after"] is not None:
            offline = fleet.devices[: options["offline_devices"] or len(fleet.devices)]
            fleet.schedule_offline(offline, options["offline_after"], options["offline_for"])
        announced = False
        next_progress = started + options["progress"] if options["progress"] else None
        end = started + options["duration"] if options["duration"] is not None else None
        while not stop.is_set() and (end is None or time.monotonic() < end):
            stop.wait(0.1)
            if not announced and fleet.online_count() == len(fleet.devices):
                announced = True
                self.stdout.write(f"{len(fleet.devices)} devices online ({time.monotonic() - started:.2f} s)")
            if next_progress and time.monotonic() >= next_progress:
                next_progress += options["progress"]
                self.stdout.write(self._counts(fleet))

    @staticmethod
    def _counts(fleet: Fleet) -> str:
        counters = fleet.counters()
        return (
            f"online {fleet.online_count()}/{len(fleet.devices)}, published {counters.published} "
            f"(telemetry {counters.telemetry_sent}), received {counters.received}, "
            f"config answered {counters.config_answered}, commands obeyed {counters.commands_obeyed}"
            f"{f', refused {counters.commands_refused}' if counters.commands_refused else ''}"
        )
