"""Motion gate: skip the detector on still frames, force it every max_skip_s, count what it did; config and wiring."""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from edge_agent.analytics.lines import LineConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.motion_gate import MotionGate, MotionGateConfig, MotionGateStats, build_motion_gate
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Frame
from edge_agent.pipeline import AnalyticsStep
from tests.unit.test_pipeline_step import BrightBlobDetector

Image = npt.NDArray[np.uint8]
START = dt.datetime(2025, 3, 1, 7, 0, 0, tzinfo=dt.UTC)


def road(seed: int = 0, height: int = 1080, width: int = 1920) -> Image:
    """A textured 1080p road with mild sensor noise (different noise for each seed)."""
    rng = np.random.default_rng(seed)
    base = np.kron(np.random.default_rng(99).uniform(60, 160, (27, 48)), np.ones((40, 40)))[:height, :width]
    noisy = base[:, :, None] + rng.normal(0, 3.0, (height, width, 1))
    return np.clip(noisy.repeat(3, axis=2), 0, 255).astype(np.uint8)


def with_car(image: Image, x: int, y: int = 500, size: int = 60) -> Image:
    out = image.copy()
    out[y : y + size, x : x + size] = 240
    return out


def test_still_frames_are_gated_and_a_small_moving_object_is_not() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=100.0))
    assert gate.check(road(0), 0.0)  # no reference yet: run
    for i in range(1, 6):
        assert not gate.check(road(i), 0.1 * i)  # only noise changed
    # A 60x60 car on a 1920x1080 view (0.17 % of it) is enough to run the detector.
    assert gate.check(with_car(road(6), 400), 0.6)
    assert not gate.check(with_car(road(7), 400), 0.7)  # the car stands still: nothing new
    assert gate.check(with_car(road(8), 480), 0.8)  # it moved on
    assert gate.stats() == MotionGateStats(frames_checked=9, frames_gated=6, runs_on_motion=2, runs_forced=1)


def test_slow_motion_accumulates_against_the_last_detected_frame() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=100.0))
    gate.check(with_car(road(0), 400), 0.0)
    decisions = [gate.check(with_car(road(i), 400 + 4 * i), 0.1 * i) for i in range(1, 30)]
    # 4 px per frame is below what one thumbnail pixel (20 px) notices, but the drift adds up.
    assert decisions[0] is False
    assert any(decisions)
    assert gate.stats().runs_on_motion == sum(decisions)


def test_the_detector_is_forced_every_max_skip_s_and_after_clock_or_size_changes() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=1.0))
    image = road(0)
    runs = [gate.check(image, 0.25 * i) for i in range(9)]  # 0 .. 2 s of a still scene
    assert runs == [True, False, False, False, True, False, False, False, True]
    assert gate.check(image, 1.5)  # the clock went back (stream restarted): run
    assert gate.check(road(0, 480, 640), 1.6)  # a new picture shape: run
    assert gate.stats().runs_forced == 5


def test_gate_config_defaults_off_and_refuses_the_motion_backend() -> None:
    assert build_motion_gate(MotionGateConfig()) is None
    assert isinstance(build_motion_gate(MotionGateConfig(enabled=True)), MotionGate)
    line = LineConfig(id="l", start=(0, 0.5), end=(1, 0.5))
    camera = CameraConfig(id="c", url="x.mp4", lines=(line,), motion_gate={"enabled": True})
    assert camera.motion_gate.enabled
    with pytest.raises(ValidationError, match="does not combine"):
        CameraConfig(
            id="c", url="x.mp4", lines=(line,), motion_gate={"enabled": True}, detector=DetectorConfig(backend="motion")
        )
    with pytest.raises(ValidationError, match="min_changed_fraction"):
        MotionGateConfig(min_changed_fraction=0)


def test_analytics_step_reuses_detections_while_the_gate_sees_nothing_move() -> None:
    detector = BrightBlobDetector()
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=100.0))
    step = AnalyticsStep(
        "agent",
        "cam",
        detector,
        ByteTracker(TrackerConfig()),
        lines=[LineConfig(id="l", start=(0, 0.5), end=(1, 0.5))],
        intervals_s=(60,),
        gate=gate,
    )
    parked = np.zeros((120, 160, 3), np.uint8)
    parked[20:40, 70:90] = 255
    ran = []
    for index in range(10):
        result = step.process(Frame(parked, "cam", index, START + dt.timedelta(seconds=0.1 * index)))
        ran.append(result.timings.detector_ran)
        # Confirmed after min_hits matched frames, reused boxes included.
        assert len(result.tracked) == (1 if index >= TrackerConfig().min_hits - 1 else 0)
    # Frame 0 runs without asking; frame 1 is the gate's first look (no reference); then it is all still.
    assert ran == [True, True] + [False] * 8
    assert detector.calls == 2
    assert gate.stats().frames_gated == 8
