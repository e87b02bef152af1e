"""The project's own processes (central ingest, edge agent) run against a started stack.

The demo and the end-to-end test both go through here, so they start, provision and
stop the services the same way a deployment would: as separate processes talking HTTP.

The central read APIs need a signed-in user: ``CentralService`` makes an operator account of the whole
province (``API_READER``) with the real CLI the first time it reads, signs in once and sends the session
as a bearer token from then on.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import yaml

from central_ingest.plates.keyring import new_keyring, write_keyring_file
from devstack.errors import DevstackError
from devstack.ports import LOCALHOST, free_port, wait_until
from event_contract import Event, EventBatch

CountKey = tuple[str, str, str]
"""(line_id, vehicle_class, direction)."""
API_READER = "devstack.reader"
"""The operator account the devstack reads the central APIs as (whole province, no TOTP)."""


def _cli(module: str) -> list[str]:
    """Run a console script through this interpreter, so the venv's packages are used even when not on PATH."""
    return [sys.executable, "-m", module]


@dataclass
class ManagedProcess:
    """A child process in its own session with its output in a log file; stopped politely, then firmly."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @classmethod
    def start(
        cls, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            # Own session: a Ctrl-C in the terminal reaches the demo only, which then stops its children in order.
            start_new_session=True,
        )
        return cls(name=name, process=process, log_path=log_path, log_file=log_file)

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self, *, first_signal: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Send ``first_signal``, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
        try:
            if self.running():
                self.process.send_signal(first_signal)
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            return self.process.returncode
        finally:
            self.log_file.close()


def _get_json(url: str, timeout_s: float = 5.0, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own local service
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our own local service
        return json.load(response)


def _post_json(url: str, body: object, timeout_s: float = 10.0) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own local service
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our own local service
        return json.load(response)


def run_central_cli(database_url: str, *args: str) -> str:
    """Run ``central-ingest --database-url URL ARGS`` and return its stdout; raise with its stderr on failure."""
    argv = [*_cli("central_ingest"), "--database-url", database_url, *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise DevstackError(f"central-ingest {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def provision_agent(database_url: str, agent_id: str) -> str:
    """Apply migrations and (re)issue the token of ``agent_id``; returns the token."""
    run_central_cli(database_url, "migrate")
    existing = run_central_cli(database_url, "agent", "list")
    rotate = ["--rotate"] if any(line.split()[:1] == [agent_id] for line in existing.splitlines()) else []
    output = run_central_cli(database_url, "agent", "add", agent_id, *rotate).strip().splitlines()
    if not output:
        raise DevstackError(f"central-ingest agent add {agent_id} printed no token")
    return output[-1].strip()


def ensure_cli_user(database_url: str, username: str, role: str, password_file: Path) -> None:
    """Create ``username`` with ``role`` through the CLI, or (already there) give it the file's password."""
    listing = run_central_cli(database_url, "user", "list")
    if any(line.split("\t")[:1] == [username] for line in listing.splitlines()):
        run_central_cli(database_url, "user", "set-password", username, "--password-file", str(password_file))
    else:
        run_central_cli(database_url, "user", "add", username, "--role", role, "--password-file", str(password_file))


@dataclass
class CentralService:
    process: ManagedProcess
    url: str
    database_url: str = ""
    workdir: Path | None = None
    """Where the reader's password file goes (beside the service's log)."""
    _token: str | None = field(default=None, repr=False)

    def reader_token(self) -> str:
        """The bearer session of ``API_READER`` (an operator), made and signed in on first use."""
        if self._token is None:
            if not self.database_url or self.workdir is None:
                raise DevstackError("this CentralService was made without database_url and workdir: cannot sign in")
            password = secrets.token_urlsafe(18)
            ensure_cli_user(
                self.database_url, API_READER, "operator", write_secret(self.workdir / "reader.pw", password)
            )
            answer = _post_json(f"{self.url}/api/v1/auth/login", {"username": API_READER, "password": password})
            self._token = str(answer["token"])
        return self._token

    def totals(self, **filters: str) -> dict[CountKey, int]:
        """Stored crossings per (line, class, direction) over the filters' range (see /api/v1/counts/totals)."""
        rows = _get_json(f"{self.url}/api/v1/counts/totals?{urlencode(filters)}", token=self.reader_token())
        totals: dict[CountKey, int] = {}
        for row in rows:
            if row["vehicle_class"] is None:
                continue  # a line whose intervals hold no crossing: count 0, only its coverage
            key = (str(row["line_id"]), str(row["vehicle_class"]), str(row["direction"]))
            totals[key] = totals.get(key, 0) + int(row["count"])
        return totals

    def post_events(self, agent_token: str, agent_id: str, events: Sequence[Event]) -> dict[str, Any]:
        """Send ``events`` as one batch as agent ``agent_id`` does; central's ack (``DevstackError`` unless 200)."""
        request = urllib.request.Request(  # noqa: S310 - our own local service
            f"{self.url}/api/v1/events",
            data=EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json().encode(),
            headers={"Authorization": f"Bearer {agent_token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own local service
                ack: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            raise DevstackError(f"POST /api/v1/events: {error.code} {error.read().decode(errors='replace')}") from None
        return ack

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Alerts as ``GET /api/v1/alerts`` lists them (first page, newest first)."""
        page = _get_json(f"{self.url}/api/v1/alerts?{urlencode(filters)}", token=self.reader_token())
        return list(page["items"])


def start_central(
    database_url: str,
    log_path: Path,
    port: int | None = None,
    timeout_s: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> CentralService:
    """Start ``central-ingest serve`` on a free port and wait until /readyz answers; ``env``: IOC_CENTRAL_* extras.

    Unless ``env`` names one, the service gets a generated plate keyring beside its log (``ensure_test_keyring``),
    so plate passes are stored (sealed) as in a police deployment.
    """
    port = port or free_port()
    argv = [*_cli("central_ingest"), "--database-url", database_url, "serve", "--host", LOCALHOST, "--port", str(port)]
    env = dict(env or {})
    if "IOC_PLATE_KEYS_FILE" not in env and "IOC_PLATE_KEYS_COMMAND" not in env:
        env["IOC_PLATE_KEYS_FILE"] = str(ensure_test_keyring(log_path.parent / "plate-keys.json"))
    process = ManagedProcess.start("central-ingest", argv, log_path, env=env)
    url = f"http://{LOCALHOST}:{port}"

    def ready() -> bool:
        try:
            _get_json(f"{url}/readyz", timeout_s=1.0)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return True

    if wait_until(ready, timeout_s=timeout_s, still_worth_waiting=process.running):
        return CentralService(process=process, url=url, database_url=database_url, workdir=log_path.parent)
    exited = not process.running()
    code = process.stop()
    reason = f"exited at start ({code})" if exited else f"was not ready in {timeout_s:.0f} s"
    raise DevstackError(f"central-ingest {reason}:\n{process.log_tail()}")


def ensure_test_keyring(path: Path) -> Path:
    """A plate keyring at ``path`` (mode 0600), made with fresh random keys unless one is already there."""
    if not path.exists():
        write_keyring_file(path, new_keyring())
    return path


def edge_config(
    *,
    agent_id: str,
    central_url: str,
    token_file: Path,
    camera_id: str,
    camera_url: str,
    lines: Sequence[Mapping[str, Any]],
    interval_s: int,
    on_end: str,
    detector: Mapping[str, Any] | None = None,
    camera_extra: Mapping[str, Any] | None = None,
    preview_port: int = 0,
    state_dir: Path | None = None,
    sensors: Mapping[str, Any] | None = None,
    extra_cameras: Sequence[Mapping[str, Any]] = (),
    sections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A site config (see configs/edge.example.yaml) for one camera; ``preview_port`` 0 = no preview server.

    ``state_dir``: the agent's spool and dead letters (default: beside the token file); ``sensors``: a
    ``sensors:`` section (broker and stations) to read field sensors too; ``extra_cameras``: whole camera
    entries after the first (e.g. ``devstack.traffic_site.traffic_camera``); ``sections``: more agent-level
    sections (``signal_feed``, ``evidence``, ``plate_worker``).
    """
    camera: dict[str, Any] = {
        "id": camera_id,
        "url": camera_url,
        "on_end": on_end,
        "detector": dict(detector or {"backend": "ssd_mobilenet_oidv4"}),
        "lines": [dict(line) for line in lines],
        **(camera_extra or {}),
    }
    config: dict[str, Any] = {
        "agent_id": agent_id,
        "central": {"url": central_url, "token_file": str(token_file), "flush_interval_s": 1.0},
        "state_dir": str(state_dir or token_file.parent / f"{agent_id}-state"),
        "intervals_s": [interval_s],
        "preview": {"port": preview_port},
        "cameras": [camera, *(dict(extra) for extra in extra_cameras)],
        **dict(sections or {}),
    }
    if sensors is not None:
        config["sensors"] = dict(sensors)
    return config


def write_edge_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_secret(path: Path, secret: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def start_edge(config_path: Path, log_path: Path, status_file: Path | None = None) -> ManagedProcess:
    argv = [*_cli("edge_agent"), "-v", "run", "--config", str(config_path)]
    if status_file is not None:
        argv += ["--status-file", str(status_file)]
    return ManagedProcess.start("edge-agent", argv, log_path)
