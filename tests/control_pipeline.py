"""Device parameter delivery as real processes: a Celery worker on a control queue of its own and the
configuration agent, against the test's Mosquitto and the test database."""

import os
import sys
import uuid
from pathlib import Path

from django.conf import settings

from .pipeline import ManagedProcess, database_url

# Short pauses so that retries and timeouts happen within a test: sends at 0, 0.4 and 1.2 s, timeout at 2.8 s.
FAST_RETRIES = {"CONTROL_MAX_ATTEMPTS": "3", "CONTROL_RETRY_BASE_S": "0.4", "CONTROL_RETRY_MAX_S": "2"}


class ControlPipeline:
    def __init__(self, workdir: Path, mqtt_url: str, env_overrides: dict | None = None):
        # The test process queues the first send itself (on commit of the change): the worker listens on the
        # broker the test process's settings name, on a queue no other worker takes.
        self.queue = f"control-test-{uuid.uuid4().hex[:12]}"
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="iotwatt.settings",
            DATABASE_URL=database_url(),
            REDIS_URL=settings.CELERY_BROKER_URL,
            MQTT_URL=mqtt_url,
            MQTT_PROTOCOL="5",
            DATABASE_CONN_MAX_AGE="0",
            CONTROL_QUEUE=self.queue,
            **FAST_RETRIES,
        )
        env.update(env_overrides or {})
        self.worker = ManagedProcess(
            "control worker",
            [sys.executable, "-m", "celery", "-A", "iotwatt", "worker", "-Q", self.queue, "-c", "2", "--without-gossip",
             "--without-mingle", "--loglevel", "INFO", "-n", f"{self.queue}@%h"],
            env, workdir / "control-worker.log", "ready.",
        )
        self.agent = ManagedProcess(
            "config agent", [sys.executable, "manage.py", "config_agent", "--client-id", f"agent-{self.queue}"],
            env, workdir / "config-agent.log", "subscribed to",
        )

    def start(self) -> "ControlPipeline":
        self.worker.start()
        self.agent.start()
        return self

    def stop(self) -> None:
        self.agent.stop()
        self.worker.stop()
