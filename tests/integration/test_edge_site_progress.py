"""The agent on a generated construction site: four days of frames two hours apart in one H.264 file (its PTS are
the sample times), read keyframes-only by the real reader, through the real pipeline, progress estimator and
activity meter, events delivered to a local HTTP central.

Checks: one ProgressEvent per package and day plus the project figure, at each day's close, tracking the
generated truth and never falling; every figure of a day carries that day's timelapse keyframe, stored in the
evidence store; one SiteActivityEvent per hour with a frame, counting exactly the workers in it; the smoothing
state saved for the next start. (The detector replays the generator's true boxes of workers and trucks, in frame
order: the test is about the agent's wiring, not a detector's recall on rendered stick figures.)
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from devstack.site_scenes import (
    SiteFrame,
    default_scenario,
    progress_config,
    reference_images,
    site_frames,
    true_percent,
    true_project,
)
from devstack.site_video import first_frame_time, write_site_video
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.perception.detectors.label_map import CLASS_NAMES
from edge_agent.perception.types import Detections
from event_contract import Event, ProgressEvent, SiteActivityEvent
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

DAYS = 4
FRAMES_PER_DAY = 12
TRUCK_MIN_WIDTH = 100
"""Pixels: the parked truck's box is far wider than a worker's."""


class ReplayedTruthDetector:
    """Returns, on its n-th call, the generator's boxes of the n-th frame: workers as person, the truck as truck."""

    class_names = CLASS_NAMES

    def __init__(self, frames: list[SiteFrame]) -> None:
        self._boxes = [frame.occluders for frame in frames]
        self.calls = 0

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        boxes = self._boxes[self.calls] if self.calls < len(self._boxes) else np.zeros((0, 4), np.float32)
        self.calls += 1
        names = ["truck" if x1 - x0 >= TRUCK_MIN_WIDTH else "person" for x0, _, x1, _ in boxes.tolist()]
        return Detections(
            xyxy=boxes,
            confidence=np.full(len(boxes), 0.9, np.float32),
            class_id=np.array([CLASS_NAMES.index(name) for name in names], np.int64),
            class_names=CLASS_NAMES,
        )


def workers_in(frame: SiteFrame) -> int:
    return sum(1 for x0, _, x1, _ in frame.occluders.tolist() if x1 - x0 < TRUCK_MIN_WIDTH)


def site_config(url: str, video: Path, start: dt.datetime, state_dir: Path, progress: dict[str, object]) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "agent_id": "site-test",
            "central": {"url": url, "token": "t0k", "flush_interval_s": 0.1},
            "state_dir": str(state_dir),
            "shutdown_timeout_s": 5,
            "preview": {"port": 0},
            "evidence": {"upload": "never"},
            "cameras": [
                {
                    "id": "cam-site",
                    "url": str(video),
                    "realtime": False,
                    "on_end": "stop",
                    "max_reconnects": 0,
                    "queue_policy": "block",
                    "queue_capacity": 4,
                    "decode": "keyframes",
                    "start_time": start.isoformat(),
                    "max_frame_gap_s": 60,
                    "progress": progress,
                }
            ],
        }
    )


def test_a_site_camera_reports_daily_progress_with_a_timelapse_and_hourly_activity(
    central: ScriptedCentral,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = default_scenario(seed=3, days=DAYS)
    frames = list(site_frames(scenario, FRAMES_PER_DAY))
    video = write_site_video(tmp_path / "site.mp4", scenario, FRAMES_PER_DAY, (640, 360))
    # The references sit where the config names them, relative to the agent's working directory.
    monkeypatch.chdir(tmp_path)
    for name, image in reference_images(scenario).items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(name, image)
    progress = progress_config(scenario).model_dump(mode="json")
    config = site_config(central.url, video, first_frame_time(scenario, FRAMES_PER_DAY), tmp_path / "state", progress)
    detector = ReplayedTruthDetector(frames)
    agent = Agent(config, detector_factory=lambda _settings: detector)
    agent.run(handle_signals=False)

    assert detector.calls == len(frames), "every frame of the file was analysed"
    with central.lock:
        events: list[Event] = [event for received in central.received for event in received.batch.events]

    # -- daily progress: every package and the project, each day, at its close, tracking the truth -------
    figures = [e for e in events if isinstance(e, ProgressEvent)]
    packages = [p.id for p in scenario.packages]
    by_day: dict[dt.datetime, list[ProgressEvent]] = defaultdict(list)
    for figure in figures:
        by_day[figure.time].append(figure)
    assert sorted(by_day) == [scenario.close_of(day) for day in range(DAYS)]
    for close, day_figures in by_day.items():
        assert sorted((f.package_id or "") for f in day_figures) == sorted(["", *packages])
        assert {(f.method, f.source_id, f.project_id) for f in day_figures} == {
            ("camera_visual", "cam-site", progress["project_id"])
        }
        for figure in day_figures:
            truth = (
                true_project(scenario, close)
                if figure.package_id is None
                else true_percent(scenario, figure.package_id, close)
            )
            assert abs(figure.percent_complete - truth) <= 15, (figure, truth)
            assert figure.frames_used is not None
            assert figure.frames_used >= 3
            assert figure.frames_rejected is not None
            assert figure.quality is not None
        # One timelapse keyframe per day, on every figure of that day, stored at the edge.
        (ref,) = {ref for f in day_figures for ref in f.evidence}
        assert ref.time is not None
        noon = close - dt.timedelta(hours=5, minutes=30)
        assert abs(ref.time - noon) <= dt.timedelta(hours=2), "the keyframe is the day's noon picture (12:00 +- 2 h)"
        assert (tmp_path / "state" / "evidence" / f"{ref.sha256}.jpg").is_file()
    project = [f.percent_complete for f in sorted(figures, key=lambda f: f.time) if f.package_id is None]
    assert project == sorted(project), "the project figure never falls"

    # -- activity: one window per hour that had a frame, counting exactly its workers -------------------
    activity = sorted((e for e in events if isinstance(e, SiteActivityEvent)), key=lambda e: e.start)
    assert [e.start for e in activity] == [f.time.replace(minute=0) for f in frames]
    assert [e.peak_present["worker"] for e in activity] == [workers_in(f) for f in frames]
    assert {e.zone_id for e in activity} == {"site"}
    assert all(e.activity_index == (1.0 if len(f.occluders) else 0.0) for e, f in zip(activity, frames, strict=True))

    # -- counters and the state the next start restores -------------------------------------------------
    status = agent.progress_status()
    assert status is not None
    camera = status["cam-site"]
    assert isinstance(camera, dict)
    assert camera["days_reported"] == DAYS
    assert camera["progress_events"] == len(figures)
    assert camera["keyframes"] == DAYS
    assert camera["activity_windows"] == len(activity)
    assert camera["rejected"].get("night", 0) > 0
    state = json.loads((tmp_path / "state" / "progress" / "cam-site.json").read_text())
    assert state["project_id"] == progress["project_id"]
    assert state["estimator"]["last_closed"] == (scenario.start + dt.timedelta(days=DAYS - 1)).isoformat()
