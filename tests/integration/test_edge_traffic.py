"""The agent on a generated junction clip: plates read by the real PP-OCR reader, a red light from a simulated
signal controller over the MQTT test broker, events delivered to a local HTTP central.

Checks: exactly one red-light ViolationEvent, for the car that crossed on red, with its exact plate and a stored
keyframe; one PlatePassEvent per car with its exact plate. (Central is the scripted HTTP server of the uplink
tests: the events are checked as central received them, not as stored by the full central service.)
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from devstack.mosquitto import MosquittoBroker
from devstack.plate_clip import ROAD_GREY, PlateClip, render_plate_clip
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.perception.types import Detections
from event_contract import VEHICLE_CLASSES, Event, PlatePassEvent, ViolationEvent
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

MIN_VEHICLE_AREA = 8000


class VehicleBlobDetector:
    """Boxes what differs from the clip's plain road (lane dashes and the signal lamp are too small)."""

    class_names = tuple(VEHICLE_CLASSES)

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        changed = (np.abs(image.astype(np.int16) - ROAD_GREY).max(axis=2) > 30).astype(np.uint8)
        changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((25, 25), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(changed)
        boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count] if area >= MIN_VEHICLE_AREA and w > 60]
        return Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.full(len(boxes), 0.9, np.float32),
            class_id=np.full(len(boxes), VEHICLE_CLASSES.index("car"), np.int64),
            class_names=self.class_names,
        )


class SignalController:
    """Publishes the clip's signal state every 0.25 s, stamped with the wall clock (the live camera's clock)."""

    def __init__(self, broker: MosquittoBroker, clip: PlateClip) -> None:
        self._clip = clip
        self._client = Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-signal-controller")
        self._client.username_pw_set(broker.username, broker.password)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            state = self._clip.state_at(time.monotonic() - self.started_at)
            payload = {"signal_id": "ctl-1", "state": state, "time": dt.datetime.now(dt.UTC).isoformat()}
            self._client.publish("ioc/v1/signals/ctl-1", json.dumps(payload), qos=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def controller(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[tuple[SignalController, PlateClip]]:
    clip = render_plate_clip(tmp_path / "clip")
    signal = SignalController(mqtt_broker, clip)
    yield signal, clip
    signal.stop()


def agent_config(url: str, broker: MosquittoBroker, clip: PlateClip, state_dir: Path) -> AgentConfig:
    stop_y, pass_y = clip.stop_line_y, clip.pass_line_y
    return AgentConfig.model_validate(
        {
            "agent_id": "junction-test",
            "central": {"url": url, "token": "t0k", "flush_interval_s": 0.1},
            "state_dir": str(state_dir),
            "shutdown_timeout_s": 5,
            "preview": {"port": 0},
            "evidence": {"upload": "never"},
            "signal_feed": {
                "host": broker.host,
                "port": broker.port,
                "username": broker.username,
                "password": broker.password,
                "topic": "ioc/v1/signals/#",
            },
            "cameras": [
                {
                    "id": "cam-junction",
                    "url": str(clip.path),
                    "realtime": True,
                    "on_end": "stop",
                    "queue_policy": "block",
                    "queue_capacity": 4,
                    "lines": [{"id": "pass", "start": [0.0, pass_y], "end": [1.0, pass_y]}],
                    "violations": {
                        "signals": [{"id": "sig-main", "mqtt": "ctl-1", "stale_after_s": 3.0}],
                        "rules": [
                            {
                                "type": "red_light",
                                "id": "red-main",
                                "signal_id": "sig-main",
                                "stop_line": {"start": [0.0, stop_y], "end": [1.0, stop_y]},
                                "direction": "in",
                                "grace_s": 0.0,
                            }
                        ],
                    },
                    "plates": {
                        "pass_line_id": "pass",
                        "plate_wait_s": 1.5,
                        "reader": {"providers": ["cpu"], "vote": {"min_interval_s": 0.3}},
                    },
                }
            ],
        }
    )


def test_a_red_light_runner_and_every_pass_carry_their_exact_plates(
    central: ScriptedCentral,  # noqa: F811
    mqtt_broker: MosquittoBroker,
    controller: tuple[SignalController, PlateClip],
    tmp_path: Path,
) -> None:
    signal, clip = controller
    agent = Agent(
        agent_config(central.url, mqtt_broker, clip, tmp_path / "state"),
        detector_factory=lambda _config: VehicleBlobDetector(),
    )
    assert agent.signal_feed is not None
    runner = threading.Thread(target=agent.run, kwargs={"handle_signals": False}, daemon=True)
    agent.signal_feed.start()  # connect before the clip starts, so the first frames already have a signal
    assert agent.signal_feed.wait_ready(10)
    signal.start()
    runner.start()
    runner.join(clip.duration_s + 40)
    assert not runner.is_alive(), "the agent did not stop at the end of the clip"

    with central.lock:
        events: list[Event] = [event for received in central.received for event in received.batch.events]
    violations = [e for e in events if isinstance(e, ViolationEvent)]
    passes = [e for e in events if isinstance(e, PlatePassEvent)]
    runner_car = next(v for v in clip.vehicles if v.runs_red)
    assert [(v.violation_type, v.signal_state, v.plate) for v in violations] == [("red_light", "red", runner_car.plate)]
    assert violations[0].evidence, "the violation carries its keyframe"
    for ref in violations[0].evidence:
        assert (tmp_path / "state" / "evidence" / f"{ref.sha256}.jpg").is_file()
    assert sorted(p.plate for p in passes) == sorted(v.plate for v in clip.vehicles)
    assert {(p.direction, p.line_id, p.format_valid) for p in passes} == {("in", "pass", True)}
    status = agent.traffic_status()
    assert status is not None
    feed = status["signal_feed"]
    assert isinstance(feed, dict)
    assert feed["applied"] > 0
