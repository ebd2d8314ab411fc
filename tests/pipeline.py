"""The ingest pipeline as real processes: a Celery worker and the MQTT bridge, started and killed by tests."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database the tests use (pytest-django's test database), for child processes."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ManagedProcess:
    def __init__(self, name: str, command: list[str], env: dict, log_path: Path, ready_text: str):
        self.name, self.command, self.env, self.log_path, self.ready_text = name, command, env, log_path, ready_text
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as handle:
                handle.seek(offset)
                if self.ready_text in handle.read():
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready; log {self.log_path}:\n{self.log_path.read_text()[-3000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        """SIGKILL by default: the process and its children die at once, mid-batch, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the process holds what it has and takes nothing more, as a stalled consumer does."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """A clean shutdown, then nothing of the process group left behind."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)  # a paused process would not see the SIGTERM
        self.kill(signal.SIGTERM)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Pipeline:
    """A Celery worker and one MQTT bridge per client id; `bridge` is the first. The bridges share a
    subscription group of this pipeline's own, so they split the telemetry between them."""

    def __init__(
        self,
        workdir: Path,
        mqtt_url: str,
        redis_url: str,
        client_id: str = "iotwatt-test-bridge",
        more_client_ids: tuple[str, ...] = (),
        env_overrides: dict | None = None,
        database: str | None = None,
    ):
        """`env_overrides`: more environment for every process. `database`: a URL, default the test database."""
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="iotwatt.settings",
            DATABASE_URL=database or database_url(),
            REDIS_URL=redis_url,
            MQTT_URL=mqtt_url,
            MQTT_PROTOCOL="5",
            # A batch lost with a killed worker is sent again after this long.
            INGEST_BATCH_TIMEOUT_S="10",
            DATABASE_CONN_MAX_AGE="0",
            # A queue of this pipeline's own: another test run's worker on the same Redis never takes its batches.
            INGEST_QUEUE=f"ingest-test-{uuid.uuid4().hex[:12]}",
            # Several bridges share a group of this pipeline's own: the broker keeps the sessions of earlier
            # tests' bridges (and their share of each group's messages) after they stop, so a common group
            # would lose messages to them. One bridge subscribes plainly, as the default.
            MQTT_SHARED_GROUP=f"test-{uuid.uuid4().hex[:12]}" if more_client_ids else "",
        )
        env.update(env_overrides or {})
        self.mqtt_url = mqtt_url
        self.worker = ManagedProcess(
            "worker",
            [sys.executable, "-m", "celery", "-A", "iotwatt", "worker", "-Q", env["INGEST_QUEUE"], "-c", "2",
             "--without-gossip", "--without-mingle", "--loglevel", "INFO", "-n", f"test-{client_id}@%h"],
            env, workdir / "worker.log", "ready.",
        )
        self.bridges = [
            ManagedProcess(
                "bridge", [sys.executable, "manage.py", "mqtt_bridge", "--client-id", bridge_id], env,
                workdir / ("bridge.log" if bridge_id == client_id else f"bridge-{bridge_id}.log"), "subscribed to",
            )
            for bridge_id in (client_id, *more_client_ids)
        ]
        self.bridge = self.bridges[0]

    def start(self) -> "Pipeline":
        self.worker.start()
        for bridge in self.bridges:
            bridge.start()
        return self

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.stop()
        self.worker.stop()


def wait_until(predicate, timeout_s: float, what, poll_s: float = 0.2) -> None:
    """`what`: a text, or a function giving one, called only on a timeout (to show the state then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}")
