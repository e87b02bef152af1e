"""Starts and stops `rtsp_server.py` under Debian's /usr/bin/python3 (where GStreamer's `gi` bindings are)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import processes
from devstack.errors import SETUP_HINT, DevstackError
from devstack.ports import LOCALHOST, accepts_connections, wait_until

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class RtspSettings:
    """How the RTSP server process runs."""

    python: Path = Path("/usr/bin/python3")
    """The interpreter that has the `gi` bindings (Debian's python3-gi), not the project's venv."""
    start_timeout_s: float = 30.0
    """How long to wait until every stream answers DESCRIBE (a looping server first reads its files)."""
    stop_timeout_s: float = 10.0
    """SIGTERM grace period before SIGKILL."""


class RtspServer:
    """One server process serving `videos` (stream name -> .mp4 file) at rtsp://127.0.0.1:PORT/<name>, and
    `clocks` (stream names) as live clock cameras (`devstack/clock_source.py`: frames made in real time with
    the wall clock burned in, for latency measurements).

    The port is chosen by the server itself on the first start and kept for restarts, so URLs stay
    valid across `kill()` + `start()` (a source-loss fault). State lives in `state_dir/<name>/`.
    Without `videos` and `clocks`, the configuration saved by an earlier start is used (e.g. to stop or
    restart it).
    """

    def __init__(
        self,
        state_dir: Path,
        videos: Mapping[str, Path] | None = None,
        *,
        loop: bool = False,
        name: str = "rtsp",
        settings: RtspSettings | None = None,
        clocks: Sequence[str] = (),
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"server name {name!r} must match {_NAME.pattern}")
        self._dir = state_dir.resolve() / name
        self._settings = settings or RtspSettings()
        self._pid_path = self._dir / "server.pid.json"
        self._record_path = self._dir / "server.json"
        self.log_path = self._dir / "server.log"
        self.host = LOCALHOST
        self._videos: dict[str, Path] | None = None
        self._loop = loop
        self._clocks: tuple[str, ...] = tuple(clocks)
        for stream in self._clocks:
            if not _NAME.fullmatch(stream):
                raise ValueError(f"stream name {stream!r} must match {_NAME.pattern}")
        if self._clocks and videos is None:
            videos = {}
        if videos is not None:
            for stream, path in videos.items():
                if not _NAME.fullmatch(stream):
                    raise ValueError(f"stream name {stream!r} must match {_NAME.pattern}")
                if not Path(path).is_file():
                    raise DevstackError(f"video file not found: {path}")
            self._videos = {stream: Path(path).resolve() for stream, path in videos.items()}
            if len({*self._videos, *self._clocks}) != len(self._videos) + len(self._clocks):
                raise ValueError(f"stream names must be unique: {[*self._videos, *self._clocks]}")

    @property
    def port(self) -> int:
        return int(self._record()["port"])

    @property
    def urls(self) -> dict[str, str]:
        """Stream name -> rtsp:// URL."""
        videos, _loop, clocks = self._configuration()
        return {stream: self.url(stream) for stream in [*videos, *clocks]}

    def url(self, stream: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{stream}"

    def is_running(self) -> bool:
        return processes.running_record(self._pid_path) is not None

    def start(self) -> None:
        """Starts the server (same port as before, when it ran before); reuses it when already running
        with the same files."""
        videos, loop, clocks = self._configuration()
        if self.is_running():
            record = self._record()
            if (
                record.get("videos") == {k: str(v) for k, v in videos.items()}
                and record.get("loop") == loop
                and record.get("clocks", []) == list(clocks)
            ):
                return
            self.stop()
        if not self._settings.python.exists():
            raise DevstackError(f"{self._settings.python} is missing. {SETUP_HINT}")
        self._dir.mkdir(parents=True, exist_ok=True)
        previous_port = int(self._record().get("port", 0)) if self._record_path.exists() else 0
        if previous_port and accepts_connections(self.host, previous_port):
            previous_port = 0  # another program took the port meanwhile: URLs change, but the server starts
        port_file = self._dir / "port"
        port_file.unlink(missing_ok=True)
        argv = [str(self._settings.python), "-I", str(SERVER_SCRIPT), "--host", self.host]
        argv += ["--port", str(previous_port), "--port-file", str(port_file)]
        argv += ["--loop"] if loop else []
        argv += [f"--clock={stream}" for stream in clocks]
        argv += [f"{stream}={path}" for stream, path in videos.items()]
        processes.spawn(argv, pid_path=self._pid_path, log_path=self.log_path)

        if not wait_until(
            port_file.exists, timeout_s=self._settings.start_timeout_s, still_worth_waiting=self.is_running
        ):
            processes.stop(self._pid_path, timeout_s=self._settings.stop_timeout_s)
            raise DevstackError(
                f"the RTSP server did not start.\n--- {self.log_path} ---\n{processes.log_tail(self.log_path)}\n"
                f"What to do: check the video files are H.264 or H.265 .mp4; if 'gi' or an element is missing: "
                f"{SETUP_HINT}"
            )
        port = int(port_file.read_text())
        self._record_path.write_text(
            json.dumps(
                {"port": port, "videos": {k: str(v) for k, v in videos.items()}, "loop": loop, "clocks": list(clocks)}
            )
        )
        for stream in [*videos, *clocks]:
            if not wait_until(
                lambda stream=stream: _describe_ok(self.host, port, stream),  # type: ignore[misc]
                timeout_s=self._settings.start_timeout_s,
                still_worth_waiting=self.is_running,
            ):
                processes.stop(self._pid_path, timeout_s=self._settings.stop_timeout_s)
                raise DevstackError(
                    f"the RTSP server does not serve {self.url(stream)} (DESCRIBE failed).\n"
                    f"--- {self.log_path} ---\n{processes.log_tail(self.log_path)}"
                )

    def stop(self) -> None:
        processes.stop(self._pid_path, timeout_s=self._settings.stop_timeout_s)

    def pause(self) -> None:
        """SIGSTOP, as a frozen camera: connections stay open, nothing is sent or answered. `resume()` undoes it."""
        self._signal_running(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        self._signal_running(signal.SIGCONT)

    def _signal_running(self, signum: signal.Signals) -> None:
        record = processes.running_record(self._pid_path)
        if record is None:
            raise DevstackError(f"the RTSP server under {self._dir} is not running")
        os.kill(record.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a crash: clients lose the stream. `start()` brings it back on the same port."""
        processes.kill(self._pid_path)
        wait_until(
            lambda: not accepts_connections(self.host, self.port), timeout_s=5.0, still_worth_waiting=lambda: True
        )

    def _configuration(self) -> tuple[dict[str, Path], bool, tuple[str, ...]]:
        """(videos, loop, clocks): as given, else as saved by the last start."""
        if self._videos is not None:
            return self._videos, self._loop, self._clocks
        record = self._record()
        if "videos" not in record:
            raise DevstackError(f"no videos configured for the RTSP server under {self._dir}")
        videos = record["videos"]
        assert isinstance(videos, dict)
        clocks = tuple(str(stream) for stream in record.get("clocks", []))
        return {str(k): Path(v) for k, v in videos.items()}, bool(record.get("loop", False)), clocks

    def _record(self) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(self._record_path.read_text())
        except OSError as error:
            raise DevstackError(f"the RTSP server under {self._dir} was never started") from error
        return record


def _describe_ok(host: str, port: int, stream: str, timeout_s: float = 5.0) -> bool:
    """True when an RTSP DESCRIBE of the stream answers 200 (the file opened and its pipeline prerolled)."""
    request = (
        f"DESCRIBE rtsp://{host}:{port}/{stream} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"
        "User-Agent: ioc-devstack\r\n\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(request.encode())
            status_line = connection.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.startswith(b"RTSP/1.0 200")
