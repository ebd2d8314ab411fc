"""The demo: a year of a real household's meter readings, through MQTT and Celery, into local-day energy.

    python -m iotwatt.demo [--no-serve]

With DATABASE_URL, REDIS_URL and MQTT_URL set it uses those servers; each one
not set is started embedded under .demo/ (PostgreSQL, Redis, an MQTT broker),
so a machine with only Python can run it.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .progress import Progress

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STATE_DIR = BASE_DIR / ".demo"
SERVICE_VARIABLES = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "mqtt": "MQTT_URL"}


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def start_services() -> object | None:
    needed = {name for name, variable in SERVICE_VARIABLES.items() if not os.environ.get(variable)}
    if not needed:
        step("Using the servers named by DATABASE_URL, REDIS_URL and MQTT_URL")
        return None
    from iotwatt.embedded import start_embedded_services

    step(f"Starting embedded {', '.join(sorted(needed))} under {STATE_DIR}")
    services = start_embedded_services(STATE_DIR, needed)
    for name in needed:
        os.environ[SERVICE_VARIABLES[name]] = services.env()[SERVICE_VARIABLES[name]]
    if "mqtt" in needed:
        os.environ["MQTT_PROTOCOL"] = "3.1.1"  # the embedded broker speaks MQTT 3.1.1 only
        os.environ["MQTT_SHARED_GROUP"] = ""  # and delivers nothing on shared subscriptions; the demo runs one bridge
    return services


def start_process(name: str, command: list[str]) -> tuple[subprocess.Popen, Path]:
    log_path = STATE_DIR / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w")
    process = subprocess.Popen(command, cwd=BASE_DIR, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"  {name}: pid {process.pid}, log {log_path.relative_to(BASE_DIR)}")
    return process, log_path


def wait_for_log_line(process: subprocess.Popen, log_path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    sys.exit(f"error: {log_path.name} did not say {text!r}; see {log_path}:\n{log_path.read_text(errors='replace')[-2000:]}")


def wait_for_readings(channel_ids: list[int], expected: int, stall_timeout_s: float, processes) -> None:
    """Wait until every reading is stored; give up when nothing new arrives for `stall_timeout_s`."""
    from telemetry.models import Reading

    bar = Progress("readings stored", expected)
    stored, last_change = -1, time.monotonic()
    while True:
        now_stored = Reading.objects.filter(channel_id__in=channel_ids).count()
        if now_stored != stored:
            stored, last_change = now_stored, time.monotonic()
        bar.show(stored, final=stored >= expected)
        if stored >= expected:
            return
        for name, (process, log_path) in processes.items():
            if process.poll() is not None:
                sys.exit(f"error: the {name} stopped; see {log_path}")
        if time.monotonic() - last_change > stall_timeout_s:
            sys.exit(
                f"error: {stored:,} of {expected:,} readings stored and nothing new for {stall_timeout_s:.0f} s. "
                f"If MQTT_URL names your own Mosquitto, its default max_queued_messages (1000) drops messages: "
                f"use deploy/mosquitto.conf. Logs: {STATE_DIR / 'logs'}"
            )
        time.sleep(0.5)


def wait_until_listening(process: subprocess.Popen, log_path: Path, port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: the admin server did not start; see {log_path}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"error: the admin server did not listen on port {port} within {timeout_s:.0f} s; see {log_path}")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m iotwatt.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--no-serve", action="store_true", help="stop after printing the tables instead of serving the admin")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    args = parser.parse_args()

    os.chdir(BASE_DIR)
    if not args.no_serve and not port_is_free(args.port):
        sys.exit(f"error: port {args.port} is taken; run `DEMO_PORT=8001 make demo` (or python -m iotwatt.demo --port 8001)")
    # A plain `kill` stops the demo like Ctrl-C: the worker, bridge and embedded servers go with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    STATE_DIR.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")
    os.environ.setdefault("DEBUG", "1")  # the development server serves the admin's static files only in debug
    services = start_services()
    processes = {}
    try:
        import django
        from django.core.management import call_command

        django.setup()
        from assets.models import Channel
        from telemetry.models import Reading

        from .household import DEMO_PASSWORD, DEMO_USERNAME, create_demo_household
        from .opsd import DATA_FILE, channel_keys, read_rows, telemetry_messages
        from django.utils import timezone

        from .parameters import CONTROLLER_PREFIX, change_and_wait, create_controller, wait_until_heard
        from .publish import publish_all

        step("Migrating the database")
        call_command("migrate", verbosity=0)
        site = create_demo_household(channel_keys())
        channel_ids = list(Channel.objects.filter(device__site=site).values_list("id", flat=True))
        print(f"  site {site} ({site.timezone}) with {len(channel_ids)} channels")

        step("Starting a Celery worker and the MQTT bridge")
        processes["worker"] = start_process(
            "worker",
            [sys.executable, "-m", "celery", "-A", "iotwatt", "worker", "-Q",
             f"{os.environ.get('INGEST_QUEUE', 'ingest')},{os.environ.get('CONTROL_QUEUE', 'control')}", "--concurrency", "2", "--loglevel", "INFO"],
        )
        processes["bridge"] = start_process("bridge", [sys.executable, "manage.py", "mqtt_bridge", "--client-id", "iotwatt-demo-bridge"])
        wait_for_log_line(*processes["worker"], "ready.", timeout_s=60)
        wait_for_log_line(*processes["bridge"], "subscribed to", timeout_s=60)

        rows = read_rows()
        messages = telemetry_messages(rows)
        expected = sum(len(row.kwh) for row in rows)
        step(f"Replaying {DATA_FILE.name}: {len(messages):,} hourly messages, {expected:,} counter readings")
        already = Reading.objects.filter(channel_id__in=channel_ids).count()
        if already:
            print(f"  {already:,} readings are stored from an earlier run: repeated messages change nothing")
        started = time.monotonic()
        publish_all(os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883"), os.environ.get("MQTT_PROTOCOL", "5"), messages, "iotwatt-demo-meter")
        wait_for_readings(channel_ids, expected, stall_timeout_s=120, processes=processes)
        print(f"  replayed in {time.monotonic() - started:.1f} s")

        call_command("energy_table", str(site.id))

        step("Device parameters: a load controller, simulated over MQTT, takes a change and refuses one")
        controller = create_controller(site)
        processes["config-agent"] = start_process("config-agent", [sys.executable, "manage.py", "config_agent", "--client-id", "iotwatt-demo-config-agent"])
        wait_for_log_line(*processes["config-agent"], "subscribed to", timeout_s=60)
        simulator_started = timezone.now()
        processes["simulator"] = start_process(
            "simulator",
            [sys.executable, "manage.py", "simulate_devices", "--prefix", CONTROLLER_PREFIX, "--count", "1", "--no-telemetry",
             "--mqtt-protocol", "5" if os.environ.get("MQTT_PROTOCOL", "5") == "5" else "3.1.1"],
        )
        wait_until_heard(controller, simulator_started)
        change_and_wait(controller, {"reporting_interval_s": 30, "relay_default": "off"})
        change_and_wait(controller, {"ct_ratio": 400})
        print("  desired, reported, state and the audit of each parameter: the device's admin page, and")
        print(f"  GET /api/devices/{controller.pk}/parameters/")

        if args.no_serve:
            return
        # A child process: runserver leaves with os._exit on errors, which would skip the cleanup below.
        processes["admin"] = start_process("admin", [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{args.port}"])
        server, log_path = processes["admin"]
        wait_until_listening(server, log_path, args.port)
        step(f"Admin at http://127.0.0.1:{args.port}/admin/  login: {DEMO_USERNAME} / {DEMO_PASSWORD}  (Ctrl-C stops the demo)")
        if server.wait() != 0:
            sys.exit(f"error: the admin server stopped; see {log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if services is not None:
            services.stop()


if __name__ == "__main__":
    main()
