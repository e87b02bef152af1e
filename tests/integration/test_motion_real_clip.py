"""The motion backend counts real top-down footage exactly, against crossings labelled by hand.

Footage: ``/work/shared/data/car-detection.mp4`` (Intel IoT DevKit sample, CC BY 4.0; 377 frames,
768x432, 12.5 fps, a fixed camera looking straight down on asphalt). Skipped where it is absent.

How the truth below was labelled (by a person, not by any detector):
every frame was decoded with PyAV and viewed as contact sheets (every 2nd frame), then frame by
frame around each crossing with the line drawn in. A crossing is the frame pair between which
the middle of the car's visible body passes the line. The camera's automatic exposure darkens
the whole picture by up to half while a white car is in view (mean grey 114 -> 57), which is
what makes this clip hard for background subtraction.

Line ``mid``: (0, 0.5) -> (1, 0.5), the full width at half height. With the line drawn left to
right, ``in`` is the downward direction (top -> bottom of the picture), ``out`` upward.
Line ``left``: (0, 0.5) -> (0.4, 0.5), the same row over the left 40 % only (x < 307 px): a
segment, not an infinite line, so only cars whose centre passes x < 307 count.

| car | looks like | in view (frames) | crosses mid (frame) | direction | centre x at the line |
| --- | --- | --- | --- | --- | --- |
| 1 | white hatchback | 54 - 108 (enters bottom, leaves top) | 79-80 | up (out) | ~365 px |
| 2 | silver hatchback | 178 - 232 (enters top, leaves bottom) | 206-207 | down (in) | ~170 px |
| 3 | red saloon | 188 - 238 (enters bottom, leaves top; passes car 2 side by side) | 211-212 | up (out) | ~400 px |
| 4 | white coupe | 314 - 348 (enters top, leaves bottom) | 332-333 | down (in) | ~215 px |

No other vehicle, person or animal appears; frames 0-53, 109-177, 239-313 and 349-376 are empty road.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from edge_agent.analytics.lines import LineConfig
from edge_agent.cli import analyze_video
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.tracker import TrackerConfig
from ioc_common.backoff import BackoffConfig

FOOTAGE = Path("/work/shared/data/car-detection.mp4")
FPS = 12.5
START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

# (car, frame at which it is past the mid line, direction, centre x in pixels) - from the table above.
LABELLED_MID = ((1, 80, "out", 365), (2, 207, "in", 170), (3, 212, "out", 400), (4, 333, "in", 215))
LEFT_SEGMENT_END_PX = 0.4 * 768


def camera_for(detector: DetectorConfig, tracker: TrackerConfig) -> CameraConfig:
    """The clip as an offline camera with the two labelled lines."""
    return CameraConfig(
        id="car-detection",
        url=str(FOOTAGE),
        realtime=False,
        loop=False,
        on_end="stop",
        max_reconnects=0,
        reconnect=BackoffConfig(base_s=0.1, ceiling_s=0.1),
        start_time=START,
        queue_policy="block",  # every frame analysed, as a recorded clip should be
        queue_capacity=8,
        detector=detector,
        tracker=tracker,
        lines=(
            LineConfig(id="mid", start=(0.0, 0.5), end=(1.0, 0.5), anchor="center"),
            LineConfig(id="left", start=(0.0, 0.5), end=(0.4, 0.5), anchor="center"),
        ),
    )


def _second(frame: int) -> int:
    return int(frame / FPS)


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    if not FOOTAGE.is_file():
        pytest.skip(f"{FOOTAGE} is not on this machine")
    # Every motion setting at its default, and the tracker's defaults too: nothing tuned for this test.
    return analyze_video(camera_for(DetectorConfig(backend="motion"), TrackerConfig()), interval_s=1)


def _counted(report: dict[str, object], line_id: str) -> Counter[tuple[int, str]]:
    """(second of the clip, direction) -> vehicles counted in that one-second interval."""
    counted: Counter[tuple[int, str]] = Counter()
    intervals = report["intervals"]
    assert isinstance(intervals, list)
    for interval in intervals:
        if interval["line_id"] != line_id:
            continue
        second = round((dt.datetime.fromisoformat(interval["time"]) - START).total_seconds())
        for bucket in interval["counts"]:
            counted[(second, bucket["direction"])] += bucket["count"]
    return counted


def _assert_matches(counted: Counter[tuple[int, str]], labelled: list[tuple[int, str]]) -> None:
    """Every labelled crossing is counted in its own second (or the next, for a centre-of-box lag), nothing else."""
    remaining = Counter(counted)
    for frame, direction in labelled:
        for second in (_second(frame), _second(frame) + 1, _second(frame) - 1):
            if remaining[(second, direction)] > 0:
                remaining[(second, direction)] -= 1
                break
        else:
            pytest.fail(f"labelled crossing at frame {frame} ({direction}) not counted near it; counted {counted}")
    assert +remaining == Counter(), f"counted crossings that no car made: {+remaining}"


def test_motion_backend_counts_every_labelled_crossing_exactly(report: dict[str, object]) -> None:
    assert report["error"] == ""
    assert report["frames_processed"] == report["frames_decoded"] == 377
    lines = report["lines"]
    assert isinstance(lines, dict)
    mid = lines["mid"]
    expected = Counter(direction for _, _, direction, _ in LABELLED_MID)
    # Total and per direction: the issue's <= 2 % / <= 3 % targets mean exact on four cars.
    assert mid["total"] == sum(expected.values()) == 4
    assert sum(mid["in"].values()) == expected["in"] == 2
    assert sum(mid["out"].values()) == expected["out"] == 2
    assert set(mid["in"]) | set(mid["out"]) == {"other_vehicle"}  # no size classes configured
    _assert_matches(_counted(report, "mid"), [(frame, direction) for _, frame, direction, _ in LABELLED_MID])


def test_a_segment_counts_only_the_cars_that_pass_over_it(report: dict[str, object]) -> None:
    lines = report["lines"]
    assert isinstance(lines, dict)
    on_segment = [(frame, direction) for _, frame, direction, x in LABELLED_MID if x < LEFT_SEGMENT_END_PX]
    assert len(on_segment) == 2  # cars 2 and 4; cars 1 and 3 pass right of the segment's end
    assert lines["left"]["total"] == 2
    _assert_matches(_counted(report, "left"), on_segment)
