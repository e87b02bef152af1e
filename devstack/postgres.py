"""A private PostgreSQL 15 + TimescaleDB cluster on a free local port, for development and tests.

Authentication is `trust` for the `postgres` superuser, on 127.0.0.1 and a private socket directory
only: this is a developer cluster, never a deployment. PostgreSQL refuses to run as root, so when the
caller is root the server runs as the `postgres` user, with its files where that user can reach them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from devstack.errors import SETUP_HINT, DevstackError
from devstack.ports import LOCALHOST, free_port
from devstack.processes import log_tail

SUPERUSER = "postgres"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A Unix socket path must fit in sockaddr_un (108 bytes, with the terminating NUL).
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class PostgresSettings:
    """How the private cluster runs. Defaults suit a developer machine with Debian's PostgreSQL 15."""

    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    """Where initdb, pg_ctl and pg_config live."""
    durable: bool = True
    """False turns off fsync, synchronous_commit and full_page_writes: faster, for throw-away test clusters only."""
    start_timeout_s: int = 60
    """How long pg_ctl waits for the server to accept connections."""
    stop_timeout_s: int = 30
    """How long a fast shutdown may take before an immediate one."""


class PostgresCluster:
    """One cluster under `state_dir/postgres` (or a postgres-reachable directory recorded there)."""

    def __init__(self, state_dir: Path, settings: PostgresSettings | None = None) -> None:
        self._state_dir = state_dir.resolve()
        self._settings = settings or PostgresSettings()
        self._record_path = self._state_dir / "postgres.json"
        self.host = LOCALHOST

    # --- layout ---------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """Directory holding data, socket and log; `state_dir/postgres` unless the server user cannot reach it."""
        if self._record_path.exists():
            return Path(json.loads(self._record_path.read_text())["root"])
        return self._choose_root()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _choose_root(self) -> Path:
        inside = self._state_dir / "postgres"
        socket_fits = len(str(inside / "run" / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH
        if socket_fits and (not _is_root() or self._server_user_can_reach(self._state_dir)):
            return inside
        digest = hashlib.sha256(str(self._state_dir).encode()).hexdigest()[:16]
        # /var/tmp: reachable by the server user; the name is private to this state dir, the directory
        # is checked and made owned by the server user (see _prepare_root).
        return Path("/var/tmp") / f"ioc-devstack-{digest}" / "postgres"  # noqa: S108

    def _server_user_can_reach(self, directory: Path) -> bool:
        directory.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run([*self._as_server_user(), "test", "-x", str(directory)], check=False)
        return probe.returncode == 0

    def _prepare_root(self) -> Path:
        root = self.root
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._record_path.write_text(json.dumps({"root": str(root)}))
        (root / "run").mkdir(parents=True, exist_ok=True)
        owners = {os.geteuid()}
        if _is_root():
            server = pwd.getpwnam(SUPERUSER)
            owners.add(server.pw_uid)
            if root != self._state_dir / "postgres":
                os.chown(root.parent, server.pw_uid, server.pw_gid)
            for path in (root, root / "run"):
                os.chown(path, server.pw_uid, server.pw_gid)
        # A shared directory like /var/tmp could hold a path planted by another user: refuse it.
        for path in (root.parent, root):
            if path.is_symlink() or path.stat().st_uid not in owners:
                raise DevstackError(f"{path} is a symlink or owned by another user: remove it and start again")
        root.chmod(0o700)
        # Keep the log findable from the state dir even when the cluster lives elsewhere.
        link = self._state_dir / "postgres.log"
        if root != self._state_dir / "postgres" and not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(root / "postgres.log")
        return root

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the cluster, creating it on first use; reuses it when already running."""
        self._check_installation()
        if self.is_running():
            return
        root = self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run_tool(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale",
                failure="initdb failed",
            )  # fmt: skip
        options = [
            f"-p {free_port()}",
            f"-k {root / 'run'}",
            f"-c listen_addresses={LOCALHOST}",
            "-c shared_preload_libraries=timescaledb",
            # Nothing may reach the network at run time.
            "-c timescaledb.telemetry_level=off",
        ]
        if not self._settings.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run_tool(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
            "-t", str(self._settings.start_timeout_s), "-o", " ".join(options),
            failure="PostgreSQL did not start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stops the server (fast shutdown, immediate if that times out); keeps its data for the next start."""
        if not self.data_dir.exists() or not self.is_running():
            return
        fast = self._pg_ctl_stop("fast")
        if fast.returncode != 0 and self.is_running():
            immediate = self._pg_ctl_stop("immediate")
            if immediate.returncode != 0 and self.is_running():
                raise DevstackError(f"PostgreSQL did not stop:\n{immediate.stdout}\n{log_tail(self.log_path)}")

    def destroy(self) -> None:
        """Stops the server and removes every file of the cluster."""
        self.stop()
        root = self.root
        shutil.rmtree(root, ignore_errors=True)
        if root != self._state_dir / "postgres":
            shutil.rmtree(root.parent, ignore_errors=True)
            (self._state_dir / "postgres.log").unlink(missing_ok=True)
        self._record_path.unlink(missing_ok=True)

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = subprocess.run(
            [*self._as_server_user(), str(self._settings.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            check=False,
            cwd="/",
        )
        return status.returncode == 0

    @property
    def port(self) -> int:
        """The port of the running server, from its postmaster.pid (4th line)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError) as error:
            raise DevstackError(f"PostgreSQL is not running under {self.data_dir}: start it first") from error

    # --- databases ------------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URI of `dbname` on this cluster."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Creates `name` (if absent) with the timescaledb extension, and returns its DSN."""
        _check_database_name(name)
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(self.dsn(name), autocommit=True) as database:
            database.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drops `name` if it exists, disconnecting its clients."""
        _check_database_name(name)
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # --- helpers --------------------------------------------------------------------------------

    def _check_installation(self) -> None:
        for tool in ("initdb", "pg_ctl", "pg_config"):
            if not (self._settings.bin_dir / tool).exists():
                raise DevstackError(
                    f"PostgreSQL 15 is not installed ({self._settings.bin_dir / tool} missing). {SETUP_HINT}"
                )
        share_dir = subprocess.run(
            [str(self._settings.bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if not (Path(share_dir) / "extension" / "timescaledb.control").exists():
            raise DevstackError(f"TimescaleDB is not installed for PostgreSQL 15. {SETUP_HINT}")
        if _is_root():
            try:
                pwd.getpwnam(SUPERUSER)
            except KeyError as error:
                raise DevstackError(f"user '{SUPERUSER}' is missing: PostgreSQL refuses root. {SETUP_HINT}") from error

    def _as_server_user(self) -> list[str]:
        return ["runuser", "-u", SUPERUSER, "--"] if _is_root() else []

    def _pg_ctl_stop(self, mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_server_user(), str(self._settings.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir),
             "-m", mode, "-w", "-t", str(self._settings.stop_timeout_s)],
            capture_output=True, text=True, check=False, cwd="/",
        )  # fmt: skip

    def _run_tool(self, tool: str, *args: str, failure: str) -> None:
        result = subprocess.run(
            [*self._as_server_user(), str(self._settings.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",  # the server user may not be able to read the caller's working directory
        )
        if result.returncode != 0:
            raise DevstackError(
                f"{failure} (exit {result.returncode}): {result.stdout}{result.stderr}\n"
                f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}\n"
                f"What to do: read the log above; if the port was taken, run start again. {SETUP_HINT}"
            )


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")


def _is_root() -> bool:
    return os.geteuid() == 0
