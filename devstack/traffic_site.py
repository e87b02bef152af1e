"""The traffic-police camera of the police-chain e2e test and of the demo, and the police side of both.

One module so the test and ``./run demo`` configure, drive and check the chain the same way:

- ``traffic_camera`` / ``traffic_sections``: the junction camera entry (the plate clip of
  ``devstack.plate_clip``: moving-blob detector, a pass line, plates, a red-light rule whose signal comes
  from the controller feed) and the agent sections it needs (``signal_feed``, ``evidence``, ``plate_worker``).
- ``LampController``: a simulated signal controller publishing ``ioc.signal_state/1`` over MQTT.
- ``ensure_police_user`` / ``CentralApi`` / ``audit_head``: a police account made with the real CLI, sign-in
  with its TOTP code, audited searches and evidence views through the HTTP API, the audit chain's head.
- ``traffic_counts``: what central stored for the camera (violations by type, plate passes, images).

Why the controller reads the lamp: the RTSP server gives every client its own media from the clip's first
frame, at the moment that client connects (and again after a reconnect), so no clock outside the agent knows
where in the clip the agent is. A real controller and the lamp on the pole are one device; the simulated one
takes its state from the lamp drawn in the picture the agent last analysed (the preview server's raw snapshot),
which keeps it in step with the loop whenever the agent (re)connects. The agent itself is configured with the
MQTT signal only: its red-light rule sees the state the controller published, never the picture's lamp.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import psycopg
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from central_ingest.access.totp import STEP_S, totp
from devstack.apps import run_central_cli, write_secret
from devstack.errors import DevstackError
from devstack.plate_clip import ClipVehicle, PlateClip
from ioc_common.secret_files import read_secret_file

PLATE_LINE_ID = "pass"
SIGNAL_ID = "sig-main"
RED_LIGHT_RULE_ID = "red-main"
CONTROLLER_ID = "ctl-junction"
SIGNAL_TOPIC_PREFIX = "ioc/v1/signals"
SIGNAL_SCHEMA = "ioc.signal_state/1"
LAMP_REGION = (0.9, 0.0, 1.0, 0.15)
"""Normalised (x1, y1, x2, y2) of the picture's corner where the plate clip draws its signal lamp."""
MIN_LAMP_PIXELS = 40
"""Lit pixels of one colour needed to read the lamp (the clip's lamp is about 600 pixels at 1280x720)."""
TOTP_SECRET_LINE = re.compile(r"^TOTP secret: ([A-Z2-7]+)$", re.MULTILINE)
AUDIT_HEAD_LINE = re.compile(r"^head (\d+:[0-9a-f]{64})$", re.MULTILINE)

LampState = Literal["red", "green"]


@dataclass(frozen=True)
class BrokerLogin:
    """Where the signal controller publishes and the agent subscribes."""

    host: str
    port: int
    username: str
    password: str


def signal_topic(controller_id: str = CONTROLLER_ID) -> str:
    return f"{SIGNAL_TOPIC_PREFIX}/{controller_id}"


def red_light_runner(clip: PlateClip) -> ClipVehicle:
    """The one vehicle of the clip that crosses the stop line on red."""
    runners = [vehicle for vehicle in clip.vehicles if vehicle.runs_red]
    if len(runners) != 1:
        raise DevstackError(f"the plate clip must have exactly one red-light runner, found {len(runners)}")
    return runners[0]


def traffic_camera(
    clip: PlateClip,
    *,
    camera_id: str,
    camera_url: str,
    on_end: str,
    name: str = "Nút giao mô phỏng (biển số) / simulated junction (plates)",
    controller_id: str = CONTROLLER_ID,
    max_fps: float | None = None,
) -> dict[str, Any]:
    """The junction camera's entry of a site config (docs/edge_traffic.md) for the plate clip.

    The clip is plain asphalt with rendered vehicles, which no trained model was made for: the motion
    backend boxes them (classed ``car``, so their plates are read). Crossing the pass line is a plate pass;
    the red-light rule's stop line is the clip's, its signal the controller feed ``controller_id``.
    """
    stop_y, pass_y = clip.stop_line_y, clip.pass_line_y
    camera: dict[str, Any] = {
        "id": camera_id,
        "name": name,
        "url": camera_url,
        "on_end": on_end,
        "detector": {"backend": "motion", "motion": {"default_class": "car"}},
        "lines": [{"id": PLATE_LINE_ID, "start": [0.0, pass_y], "end": [1.0, pass_y]}],
        "violations": {
            "signals": [{"id": SIGNAL_ID, "mqtt": controller_id, "stale_after_s": 3.0}],
            "rules": [
                {
                    "type": "red_light",
                    "id": RED_LIGHT_RULE_ID,
                    "signal_id": SIGNAL_ID,
                    "stop_line": {"start": [0.0, stop_y], "end": [1.0, stop_y]},
                    "direction": "in",
                    "grace_s": 0.0,
                }
            ],
        },
        "plates": {
            "pass_line_id": PLATE_LINE_ID,
            "plate_wait_s": 1.5,
            "reader": {"providers": ["cpu"], "intra_op_threads": 1, "vote": {"min_interval_s": 0.3}},
        },
    }
    if max_fps is not None:
        camera["max_fps"] = max_fps
    return camera


def traffic_sections(broker: BrokerLogin, *, upload: str = "all", plate_queue_capacity: int = 8) -> dict[str, Any]:
    """The agent-level sections the traffic camera needs: the controller feed, evidence policy, plate worker.

    A small plate queue keeps the plate worker's backlog short on a busy box: when full the oldest crop is
    dropped (counted, ``jobs_dropped``) and the voter offers a vehicle still in view again.
    """
    return {
        "signal_feed": {
            "host": broker.host,
            "port": broker.port,
            "username": broker.username,
            "password": broker.password,
            "topic": f"{SIGNAL_TOPIC_PREFIX}/#",
        },
        "evidence": {"upload": upload},
        "plate_worker": {"queue_capacity": plate_queue_capacity},
    }


def lamp_state(image: npt.NDArray[np.uint8]) -> LampState | None:
    """The colour of the plate clip's signal lamp in a BGR picture; None when neither colour is lit there."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = LAMP_REGION
    corner = image[int(y1 * height) : int(y2 * height), int(x1 * width) : int(x2 * width)].astype(np.int16)
    blue, green, red = corner[..., 0], corner[..., 1], corner[..., 2]
    red_lit = int(np.count_nonzero((red > 150) & (green < 100) & (blue < 100)))
    green_lit = int(np.count_nonzero((green > 130) & (red < 100) & (blue < 100)))
    if max(red_lit, green_lit) < MIN_LAMP_PIXELS:
        return None
    return "red" if red_lit > green_lit else "green"


def signal_message(controller_id: str, state: str, at: dt.datetime) -> bytes:
    """One controller message (``ioc.signal_state/1``, docs/edge_traffic.md)."""
    stamp = at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"schema": SIGNAL_SCHEMA, "signal_id": controller_id, "state": state, "time": stamp}).encode()


class LampController:
    """A simulated junction controller: every ``every_s`` it publishes the state of the lamp the agent sees.

    It polls ``{preview_url}/cameras/{camera_id}/snapshot.jpg?raw=1`` (the agent's last analysed picture) and
    publishes the lamp's colour, stamped now, QoS 1, to ``signal_topic(controller_id)``. While the agent has
    no picture (starting, reconnecting) it publishes nothing, so the agent's signal goes ``unknown`` after
    ``stale_after_s``, as with a dead controller. ``counts`` says what was published and what failed.
    """

    def __init__(
        self,
        broker: BrokerLogin,
        preview_url: str,
        camera_id: str,
        *,
        controller_id: str = CONTROLLER_ID,
        every_s: float = 0.25,
        client_id: str = "devstack-signal-controller",
    ) -> None:
        self._snapshot_url = f"{preview_url.rstrip('/')}/cameras/{camera_id}/snapshot.jpg?raw=1"
        self._controller_id = controller_id
        self._every_s = every_s
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.username_pw_set(broker.username, broker.password)
        self._address = (broker.host, broker.port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signal-controller", daemon=True)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    @property
    def counts(self) -> dict[str, int]:
        """published_red, published_green, no_picture, no_lamp."""
        with self._lock:
            return dict(self._counts)

    def start(self) -> None:
        self._client.connect(*self._address)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.loop_stop()
        self._client.disconnect()

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _picture(self) -> npt.NDArray[np.uint8] | None:
        try:
            with urllib.request.urlopen(self._snapshot_url, timeout=2.0) as response:  # noqa: S310 - local agent
                data = response.read()
        except (urllib.error.URLError, OSError):
            return None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return None if image is None else image.astype(np.uint8, copy=False)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            image = self._picture()
            if image is None:
                self._count("no_picture")
                continue
            state = lamp_state(image)
            if state is None:
                self._count("no_lamp")
                continue
            payload = signal_message(self._controller_id, state, dt.datetime.now(dt.UTC))
            self._client.publish(signal_topic(self._controller_id), payload, qos=1)
            self._count(f"published_{state}")


# ------------------------------------------------------------------------------------------------ police side


def write_password_file(path: Path, password: str | None = None) -> Path:
    """A password file (mode 0600) for ``central-ingest user ... --password-file``; random unless given."""
    return write_secret(path, password or secrets.token_urlsafe(18))


def read_password(path: Path) -> str:
    """The password a ``write_password_file`` file holds, read as the CLI reads it."""
    return read_secret_file(path, "password file")


def totp_secret_from(cli_output: str) -> str:
    """The base32 secret that ``central-ingest user add/reset-totp`` printed once."""
    match = TOTP_SECRET_LINE.search(cli_output)
    if match is None:
        raise DevstackError("central-ingest printed no TOTP secret")
    return match.group(1)


def ensure_police_user(database_url: str, username: str, password_file: Path, role: str = "police") -> str | None:
    """Create ``username`` with ``role`` through the CLI, or (already there) set its password and a new TOTP
    (the old secret is not shown again, so a second run of the demo enrols a fresh one).

    Returns the TOTP secret (base32) the CLI printed, None for a role without a second factor. Each call is
    audited by the CLI itself (``user_created``, or ``user_password_set`` and ``user_totp_reset``).
    """
    listing = run_central_cli(database_url, "user", "list")
    exists = any(line.split("\t")[:1] == [username] for line in listing.splitlines())
    if not exists:
        output = run_central_cli(
            database_url, "user", "add", username, "--role", role, "--password-file", str(password_file)
        )
    else:
        run_central_cli(database_url, "user", "set-password", username, "--password-file", str(password_file))
        output = run_central_cli(database_url, "user", "reset-totp", username)
    return totp_secret_from(output) if "TOTP secret:" in output else None


def audit_head(database_url: str) -> str:
    """``SEQ:HASH`` of the audit chain's head, from ``central-ingest audit verify`` (which fails on a broken chain)."""
    output = run_central_cli(database_url, "audit", "verify")
    match = AUDIT_HEAD_LINE.search(output)
    if "audit chain OK" not in output or match is None:
        raise DevstackError(f"central-ingest audit verify did not report a sound chain:\n{output}")
    return match.group(1)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


class CentralApi:
    """A central service's API as a user's script calls it: sign-in, then the police or project routes (JSON or raw
    bodies such as a plan file)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: object = None,
        raw: tuple[bytes, str] | None = None,
    ) -> ApiAnswer:
        """One request with a JSON ``body`` or ``raw`` (bytes, content type); any HTTP status comes back as an
        answer (only network errors raise)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            data, headers["Content-Type"] = raw
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310 - our service
                return ApiAnswer(response.status, response.read(), response.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as error:
            return ApiAnswer(error.code, error.read(), error.headers.get("Content-Type", ""))

    def login(self, username: str, password: str, totp_secret: str | None = None) -> str:
        """Sign in (with the current TOTP code when a secret is given); returns the session token.

        A TOTP code is accepted once per 30 s step: if this step's code was already used (a person signed in
        with it), the next step's code is used instead.
        """
        secret = base64.b32decode(totp_secret + "=" * (-len(totp_secret) % 8)) if totp_secret else None
        for attempt in range(2):
            body: dict[str, str] = {"username": username, "password": password}
            if secret is not None:
                now = dt.datetime.now(dt.UTC).timestamp()
                if attempt:
                    time.sleep(STEP_S - now % STEP_S + 0.5)  # the next step's code
                    now = dt.datetime.now(dt.UTC).timestamp()
                body["totp"] = totp(secret, now)
            answer = self.call("POST", "/api/v1/auth/login", body=body)
            if answer.status == 200:
                return str(answer.json()["token"])
            if secret is None or answer.status != 401:
                break
        raise DevstackError(f"sign-in of {username} failed: {answer.status} {answer.body[:200]!r}")

    def search(
        self,
        token: str,
        *,
        since: dt.datetime,
        until: dt.datetime,
        case_number: str,
        note: str,
        plate: str | None = None,
        pattern: str | None = None,
        source_ids: tuple[str, ...] = (),
    ) -> ApiAnswer:
        """``POST /api/v1/plates/search`` (exactly one of ``plate`` / ``pattern``)."""
        body: dict[str, Any] = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "source_ids": list(source_ids),
            "reason": {"case_number": case_number, "note": note},
        }
        body.update({"plate": plate} if plate is not None else {"pattern": pattern})
        return self.call("POST", "/api/v1/plates/search", token=token, body=body)


# ------------------------------------------------------------------------------------------------ what is stored


@dataclass(frozen=True)
class TrafficCounts:
    violations: dict[str, int]
    """violation_type -> rows."""
    plate_passes: int
    evidence_referenced: int
    """Distinct images the camera's stored passes and violations reference."""
    evidence_uploaded: int
    """Of those, the images central holds (uploaded now or, the same picture, earlier: images are keyed by digest)."""


_EVIDENCE_COUNTS = """
WITH refs AS (
    SELECT ref ->> 'sha256' AS sha256 FROM plate_passes, jsonb_array_elements(evidence) AS ref
    WHERE agent_id = %(agent)s AND source_id = %(source)s AND time >= %(since)s
    UNION
    SELECT ref ->> 'sha256' FROM violations, jsonb_array_elements(evidence) AS ref
    WHERE agent_id = %(agent)s AND source_id = %(source)s AND time >= %(since)s
)
SELECT count(refs.sha256), count(blobs.sha256)
FROM refs LEFT JOIN evidence_blobs AS blobs ON blobs.sha256 = refs.sha256
WHERE refs.sha256 IS NOT NULL
"""


def traffic_counts(database_url: str, agent_id: str, source_id: str, since: dt.datetime) -> TrafficCounts:
    """What central stored for one camera since ``since``: counts only, never a plate."""
    params = {"agent": agent_id, "source": source_id, "since": since}
    with psycopg.connect(database_url) as conn:
        violations = conn.execute(
            "SELECT violation_type, count(*) FROM violations "
            "WHERE agent_id = %(agent)s AND source_id = %(source)s AND time >= %(since)s "
            "GROUP BY violation_type ORDER BY violation_type",
            params,
        ).fetchall()
        passes = conn.execute(
            "SELECT count(*) FROM plate_passes WHERE agent_id = %(agent)s AND source_id = %(source)s "
            "AND time >= %(since)s",
            params,
        ).fetchone()
        evidence = conn.execute(_EVIDENCE_COUNTS, params).fetchone()
    referenced, uploaded = evidence if evidence else (0, 0)
    return TrafficCounts(
        violations={str(kind): int(count) for kind, count in violations},
        plate_passes=int(passes[0]) if passes else 0,
        evidence_referenced=int(referenced),
        evidence_uploaded=int(uploaded),
    )
