"""A PostgreSQL server of one test's own, so the test may restart it.

The machine's PostgreSQL serves every engineer's test runs at once: restarting it
would break theirs. This one runs from the machine's own PostgreSQL binaries (the
same major version as the shared server) in a temporary directory, on a free port,
with trust authentication, and is removed afterwards.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_USER = "postgres"  # PostgreSQL refuses to run as root


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


class DedicatedPostgres:
    def __init__(self):
        self.bindir = postgres_bindir()
        self.port = free_port()
        # Not under pytest's tmp_path: its folders are private to root, and the server runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix="iotwatt-pg-"))
        self.datadir = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/iotwatt"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", SYSTEM_USER, "--"] if self.as_root else []
        done = subprocess.run(prefix + list(command), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def start(self) -> "DedicatedPostgres":
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n")
        self._pg_ctl("start")
        wait_for_port(self.port)
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "iotwatt")
        return self

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), action, "-D", str(self.datadir), "-l", str(self.log), "-w", *options)

    def restart(self) -> None:
        """Fast mode: open transactions are rolled back and every client is disconnected, as in a maintenance restart."""
        self._pg_ctl("restart", "-m", "fast")
        wait_for_port(self.port)

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def manage(self, *args: str, timeout_s: float = 600) -> str:
        """Run a manage.py command against this server, in a process of its own (Django here points at the test database)."""
        env = dict(os.environ, DATABASE_URL=self.url, DJANGO_SETTINGS_MODULE="iotwatt.settings")
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout
