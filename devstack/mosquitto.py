"""A private mosquitto broker on a free local port, with a generated username and password.

Optional (``MosquittoSettings``): persistence (sessions and queued messages survive a restart),
a larger per-client queue, and a second TLS listener that can require client certificates.
``restart()`` stops the broker (SIGTERM, so a persistent one saves its database) and starts it
again on the same port, as a broker restarted by its service manager would be.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import processes
from devstack.errors import SETUP_HINT, DevstackError
from devstack.ports import LOCALHOST, accepts_connections, free_port, wait_until

USERNAME = "ioc-dev"
_CONNACK_ACCEPTED = 0


@dataclass(frozen=True)
class MosquittoTls:
    """A second listener with TLS (PEM files); logins still need the generated username and password."""

    ca_file: Path
    """CA that signed the server certificate and, with require_certificate, the clients' certificates."""
    cert_file: Path
    """The broker's certificate (its names must match the host clients connect to)."""
    key_file: Path
    """The broker's private key."""
    require_certificate: bool = True
    """Refuse clients that present no certificate signed by ca_file."""


@dataclass(frozen=True)
class MosquittoSettings:
    """How the broker runs. Defaults suit Debian's mosquitto 2."""

    executable: str = "mosquitto"
    """The broker program (Debian installs it in /usr/sbin)."""
    start_timeout_s: float = 15.0
    """How long to wait for the broker to accept an authenticated connection."""
    stop_timeout_s: float = 10.0
    """SIGTERM grace period before SIGKILL."""
    persistence: bool = False
    """Keep sessions, subscriptions and queued QoS 1/2 messages across restarts (``mosquitto.db`` in the
    broker's dir, written when the broker stops). Off: a restart forgets every session."""
    max_queued_messages: int = 1000
    """Messages mosquitto queues per client beyond its inflight window (offline sessions included) before it
    drops new ones; 1000 is mosquitto's default, 0 means no limit."""
    tls: MosquittoTls | None = None
    """Add a TLS listener on ``tls_port`` beside the plain one; None: plain only."""


class MosquittoBroker:
    """One broker under `state_dir/mosquitto`: config, password file, credentials, pid file and log."""

    def __init__(self, state_dir: Path, settings: MosquittoSettings | None = None) -> None:
        self._dir = state_dir.resolve() / "mosquitto"
        self._settings = settings or MosquittoSettings()
        self._pid_path = self._dir / "mosquitto.pid.json"
        self._record_path = self._dir / "broker.json"
        self.log_path = self._dir / "mosquitto.log"
        self.host = LOCALHOST

    @property
    def port(self) -> int:
        return int(self._record()["port"])

    @property
    def tls_port(self) -> int:
        """Port of the TLS listener (``MosquittoSettings.tls``)."""
        port = self._record().get("tls_port")
        if port is None:
            raise DevstackError(f"the broker under {self._dir} has no TLS listener (MosquittoSettings.tls)")
        return int(port)

    @property
    def username(self) -> str:
        return str(self._record()["username"])

    @property
    def password(self) -> str:
        return str(self._record()["password"])

    def is_running(self) -> bool:
        return processes.running_record(self._pid_path) is not None

    def start(self) -> None:
        """Starts the broker on free ports; reuses it (and its port and credentials) when already running."""
        if self.is_running():
            return
        self._start(port=None, tls_port=None)

    def restart(self) -> None:
        """Stops the broker (SIGTERM: a persistent one saves its database) and starts it on the same ports."""
        record = self._record()
        self.stop()
        tls_port = record.get("tls_port")
        self._start(port=int(record["port"]), tls_port=int(tls_port) if tls_port is not None else None)

    def _start(self, *, port: int | None, tls_port: int | None) -> None:
        executable = shutil.which(self._settings.executable) or shutil.which(f"/usr/sbin/{self._settings.executable}")
        if executable is None or shutil.which("mosquitto_passwd") is None:
            raise DevstackError(f"mosquitto is not installed. {SETUP_HINT}")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dir.chmod(0o700)
        username, password = self._credentials()
        port = port or free_port()
        settings = self._settings
        tls_port = (tls_port or free_port()) if settings.tls is not None else None
        password_file = self._dir / "passwd"
        password_file.unlink(missing_ok=True)
        made = subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(password_file), username, password],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise DevstackError(f"mosquitto_passwd failed: {made.stdout}{made.stderr}")
        password_file.chmod(0o600)
        config = self._dir / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {port} {LOCALHOST}",
                    *self._tls_lines(tls_port),
                    "allow_anonymous false",
                    f"password_file {password_file}",
                    *self._persistence_lines(),
                    f"max_queued_messages {settings.max_queued_messages}",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    # As root, mosquitto would switch to user `mosquitto`, who cannot read files in a
                    # private state dir; staying the calling user keeps every file private to it.
                    f"user {getpass.getuser()}",
                    "",
                ]
            )
        )
        self._save_record({"port": port, "tls_port": tls_port, "username": username, "password": password})
        processes.spawn([executable, "-c", str(config)], pid_path=self._pid_path, log_path=self._dir / "stdout.log")
        if not wait_until(
            lambda: (
                _mqtt_connect_code(LOCALHOST, port, username, password) == _CONNACK_ACCEPTED
                and (tls_port is None or accepts_connections(LOCALHOST, tls_port))
            ),
            timeout_s=self._settings.start_timeout_s,
            still_worth_waiting=self.is_running,
        ):
            processes.stop(self._pid_path, timeout_s=self._settings.stop_timeout_s)
            raise DevstackError(
                f"mosquitto did not accept the generated credentials on {LOCALHOST}:{port}.\n"
                f"--- {self.log_path} ---\n{processes.log_tail(self.log_path)}\n"
                f"--- stdout ---\n{processes.log_tail(self._dir / 'stdout.log')}\n"
                "What to do: read the log above; run start again if the port was taken."
            )

    def stop(self) -> None:
        processes.stop(self._pid_path, timeout_s=self._settings.stop_timeout_s)

    def _tls_lines(self, tls_port: int | None) -> list[str]:
        tls = self._settings.tls
        if tls is None or tls_port is None:
            return []
        return [
            f"listener {tls_port} {LOCALHOST}",
            f"cafile {tls.ca_file.resolve()}",
            f"certfile {tls.cert_file.resolve()}",
            f"keyfile {tls.key_file.resolve()}",
            f"require_certificate {'true' if tls.require_certificate else 'false'}",
        ]

    def _persistence_lines(self) -> list[str]:
        if not self._settings.persistence:
            return ["persistence false"]
        # The trailing slash matters: mosquitto joins location and file name by plain concatenation.
        return ["persistence true", f"persistence_location {self._dir}/", "persistence_file mosquitto.db"]

    def _credentials(self) -> tuple[str, str]:
        """The stored credentials, or new ones: kept across restarts so clients' settings stay valid."""
        if self._record_path.exists():
            return self.username, self.password
        return USERNAME, secrets.token_urlsafe(18)

    def _record(self) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(self._record_path.read_text())
        except OSError as error:
            raise DevstackError(f"the broker under {self._dir} was never started") from error
        return record

    def _save_record(self, record: dict[str, object]) -> None:
        fd = os.open(self._record_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(record, file)


def _mqtt_string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack("!H", len(encoded)) + encoded


def _mqtt_connect_code(host: str, port: int, username: str, password: str, timeout_s: float = 2.0) -> int | None:
    """Sends an MQTT 3.1.1 CONNECT with credentials and returns the CONNACK return code
    (0 accepted, 4 bad credentials, 5 not authorised), or None when no broker answers."""
    variable_header = _mqtt_string("MQTT") + bytes([4, 0b1100_0010]) + struct.pack("!H", 10)
    payload = _mqtt_string(f"devstack-probe-{secrets.token_hex(4)}") + _mqtt_string(username) + _mqtt_string(password)
    body = variable_header + payload
    length = b""
    remaining = len(body)
    while True:
        remaining, digit = divmod(remaining, 128)
        length += bytes([digit | (0x80 if remaining else 0)])
        if not remaining:
            break
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(b"\x10" + length + body)
            connack = connection.recv(4)
            if len(connack) == 4 and connack[0] == 0x20:
                connection.sendall(b"\xe0\x00")  # DISCONNECT
                return connack[3]
    except OSError:
        return None
    return None
