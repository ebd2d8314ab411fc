"""Test services: the machine's PostgreSQL and Redis, and a Mosquitto of our own.

The tests start their own Mosquitto from deploy/mosquitto.conf on a free port:
the system broker's default max_queued_messages (1000) silently drops QoS 1
messages to a slow subscriber, which would make the loss tests meaningless.
"""

import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_sessionstart(session):
    """The tests compare with reference files beside the checkout: say so at once when they are missing."""
    missing = [path for path in (SHARED_DATA, ROOT.parent / "shared" / "payloads") if not path.is_dir()]
    if missing:
        pytest.exit(f"the tests need the reference files in {', '.join(map(str, missing))}: clone the project next to shared/", returncode=4)
# Tests use their own Redis database so a developer's running worker never takes a test batch.
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def set_directives(config: str, values: dict[str, str]) -> str:
    """The config with each directive's line replaced (every one must be there, so a renamed line cannot slip by)."""
    for name, value in values.items():
        config, found = re.subn(rf"(?m)^{re.escape(name)}\b.*$", f"{name} {value}", config)
        if not found:
            raise ValueError(f"deploy/mosquitto.conf has no {name!r} line to point at the test's own")
    return config


class Mosquitto:
    """A broker of the test's own from deploy/mosquitto.conf: its port, its persistence directory."""

    def __init__(self, workdir: Path, start: bool = True):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed (apt-get install mosquitto); .ci/run installs it")
        self.binary = binary
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.persistence_dir = workdir / "mosquitto-data"
        self.persistence_dir.mkdir(exist_ok=True)
        config = set_directives(
            (ROOT / "deploy" / "mosquitto.conf").read_text(),
            {"listener": f"{self.port} 127.0.0.1", "persistence_location": f"{self.persistence_dir}/"},
        )
        # Started as root, Mosquitto switches to the user "mosquitto", which cannot write to the
        # test's directory; naming the current user keeps it as it is (and is ignored when not root).
        self.config.write_text(config + f"user {getpass.getuser()}\n")
        self.log = workdir / "mosquitto.log"
        self.process = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages before it exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def restart(self) -> None:
        """A graceful restart on the same port and persistence directory, as `systemctl restart` does."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_url():
    import redis

    url = os.environ["TEST_REDIS_URL"]
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {url}: {exc}")
    return url


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counters live in the cache: each test starts without another test's tries."""
    from django.core.cache import cache

    cache.clear()
    yield
