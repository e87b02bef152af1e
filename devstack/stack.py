"""The whole local stack under one state directory: PostgreSQL+TimescaleDB, mosquitto and (when videos
are given) an RTSP server. `stack.json` in the state dir records how to reach each of them."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devstack.errors import DevstackError
from devstack.mosquitto import MosquittoBroker
from devstack.postgres import PostgresCluster, PostgresSettings
from devstack.rtsp import RtspServer

DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".state" / "stack"
DEFAULT_DATABASE = "ioc"
RTSP_SERVER_NAME = "rtsp"


@dataclass(frozen=True)
class StackInfo:
    """How to reach the running services; written to `stack.json` (mode 600: it holds credentials)."""

    state_dir: str
    postgres_dsn: str
    postgres_port: int
    postgres_log: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    rtsp_urls: dict[str, str] = field(default_factory=dict)
    rtsp_loop: bool = False


class Stack:
    """Starts, stops and reports the services of one state directory."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR, *, durable_postgres: bool = True) -> None:
        self.state_dir = state_dir.resolve()
        self.postgres = PostgresCluster(self.state_dir, PostgresSettings(durable=durable_postgres))
        self.mqtt = MosquittoBroker(self.state_dir)
        self.info_path = self.state_dir / "stack.json"

    def start(self, videos: Sequence[Path] = (), *, loop: bool = False, database: str = DEFAULT_DATABASE) -> StackInfo:
        """Starts every service (reusing running ones), creates `database` with TimescaleDB, writes stack.json."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        dsn = self.postgres.create_database(database)
        self.mqtt.start()
        rtsp_urls: dict[str, str] = {}
        rtsp = self._rtsp_server()
        if videos:
            streams = {Path(video).stem: Path(video) for video in videos}
            if len(streams) != len(videos):
                raise DevstackError(f"video file names must have distinct stems: {[str(v) for v in videos]}")
            rtsp = RtspServer(self.state_dir, streams, loop=loop, name=RTSP_SERVER_NAME)
            rtsp.start()
            rtsp_urls = rtsp.urls
        elif rtsp is not None:
            rtsp.stop()  # a start without videos leaves no stale stream behind
        info = StackInfo(
            state_dir=str(self.state_dir),
            postgres_dsn=dsn,
            postgres_port=self.postgres.port,
            postgres_log=str(self.postgres.log_path),
            mqtt_host=self.mqtt.host,
            mqtt_port=self.mqtt.port,
            mqtt_username=self.mqtt.username,
            mqtt_password=self.mqtt.password,
            rtsp_urls=rtsp_urls,
            rtsp_loop=loop and bool(videos),
        )
        fd = os.open(self.info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(asdict(info), file, indent=2)
        return info

    def stop(self, *, purge: bool = False) -> None:
        """Stops everything started from this state dir (by pid files, so also after a crash).
        `purge` also deletes the database cluster and every state file."""
        errors: list[str] = []
        rtsp = self._rtsp_server()
        for stop in (
            rtsp.stop if rtsp else None,
            self.mqtt.stop,
            self.postgres.destroy if purge else self.postgres.stop,
        ):
            if stop is None:
                continue
            try:
                stop()
            except DevstackError as error:  # keep stopping the others
                errors.append(str(error))
        self.info_path.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if errors:
            raise DevstackError("\n".join(errors))

    def status(self) -> dict[str, object]:
        """Which services run, and the last stack.json (None when the stack is not started)."""
        rtsp = self._rtsp_server()
        info = json.loads(self.info_path.read_text()) if self.info_path.exists() else None
        return {
            "state_dir": str(self.state_dir),
            "postgres": self.postgres.is_running(),
            "mqtt": self.mqtt.is_running(),
            "rtsp": rtsp is not None and rtsp.is_running(),
            "info": info,
        }

    def _rtsp_server(self) -> RtspServer | None:
        """The RTSP server of an earlier start, found by its state files."""
        if not (self.state_dir / RTSP_SERVER_NAME).exists():
            return None
        return RtspServer(self.state_dir, name=RTSP_SERVER_NAME)
