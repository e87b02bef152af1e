"""Is the agent healthy? One rule for ``GET /healthz`` and for ``edge-agent health``.

The agent is healthy while at least one of its cameras is working (starting or live), or, on a
site with field sensors, while its sensor subscriber is connected to the site broker. A camera
that is connecting, down, stopped or has given up does not count: when nothing works, the
agent produces nothing and a supervisor (Docker's HEALTHCHECK) should hear about it.
``edge-agent health`` asks either the running agent's ``/healthz`` or its status file (which the
agent rewrites every few seconds; a file that stops changing means a hung or dead agent).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKING_STATES = frozenset({"starting", "live"})

DEFAULT_STATUS_MAX_AGE_S = 30.0
"""A status file older than this means the agent stopped updating it (it rewrites it every 2 s)."""


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    state: str
    failed: bool = False

    @property
    def working(self) -> bool:
        return self.state in WORKING_STATES and not self.failed


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reason: str


def judge_cameras(cameras: Sequence[CameraHealth]) -> Verdict:
    """Healthy while at least one camera works; the reason names every camera's state."""
    states = ", ".join(f"{c.camera_id}={c.state}{' (gave up)' if c.failed else ''}" for c in cameras)
    working = sum(c.working for c in cameras)
    if not cameras:
        return Verdict(False, "no cameras")
    if working == 0:
        return Verdict(False, f"every camera is down: {states}")
    return Verdict(True, f"{working}/{len(cameras)} cameras working: {states}")


def judge_agent(cameras: Sequence[CameraHealth], sensors_connected: bool | None) -> Verdict:
    """``judge_cameras``, where a connected sensor subscriber (``sensors_connected`` True) also keeps the agent
    healthy; None means the agent reads no sensors."""
    if sensors_connected is None:
        return judge_cameras(cameras)
    sensors = f"sensors {'connected' if sensors_connected else 'not connected'} to the broker"
    if not cameras:
        return Verdict(sensors_connected, sensors)
    verdict = judge_cameras(cameras)
    return Verdict(verdict.healthy or sensors_connected, f"{verdict.reason}; {sensors}")


def judge_status(status: Mapping[str, Any], now: dt.datetime, max_age_s: float = DEFAULT_STATUS_MAX_AGE_S) -> Verdict:
    """Verdict on the JSON the agent writes with ``run --status-file``."""
    try:
        written = dt.datetime.fromisoformat(str(status["time"]))
        cameras = [
            CameraHealth(str(c["source_id"]), str(c["state"]), bool(c.get("failed", False))) for c in status["cameras"]
        ]
        sensors = status.get("sensors")
        sensors_connected = bool(sensors["connected"]) if isinstance(sensors, Mapping) else None
    except (KeyError, TypeError, ValueError) as error:
        return Verdict(False, f"status file is not an agent status: {type(error).__name__}: {error}")
    if written.tzinfo is None:
        return Verdict(False, f"status time {status['time']!r} has no time zone")
    age_s = (now - written).total_seconds()
    if age_s > max_age_s:
        return Verdict(False, f"status file is {age_s:.0f} s old (more than {max_age_s:.0f} s): agent hung or stopped")
    if status.get("stopping"):
        return Verdict(False, "agent is stopping")
    return judge_agent(cameras, sensors_connected)


def check_status_file(path: Path, now: dt.datetime, max_age_s: float = DEFAULT_STATUS_MAX_AGE_S) -> Verdict:
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Verdict(False, f"no status file {path} (agent not started with --status-file {path}?)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return Verdict(False, f"cannot read status file {path}: {error}")
    if not isinstance(status, dict):
        return Verdict(False, f"status file {path} does not hold a JSON object")
    return judge_status(status, now, max_age_s)


def check_url(url: str, timeout_s: float) -> Verdict:
    """GET the agent's /healthz: 200 is healthy; anything else (or no answer) is not."""
    if not url.startswith(("http://", "https://")):
        return Verdict(False, f"{url}: only http:// and https:// URLs are checked")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
            body = response.read(64_000)
            status = response.status
    except urllib.error.HTTPError as error:
        return Verdict(False, f"{url}: HTTP {error.code}: {_reason(error.read(64_000))}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        return Verdict(False, f"{url}: no answer: {error}")
    if status != 200:
        return Verdict(False, f"{url}: HTTP {status}: {_reason(body)}")
    return Verdict(True, _reason(body))


def _reason(body: bytes) -> str:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body[:300].decode("utf-8", "replace")
    if isinstance(document, dict) and "reason" in document:
        return str(document["reason"])
    return json.dumps(document)[:300]
