"""Write a generated site sequence as an H.264 MP4 whose timestamps are the sample times (hours apart).

The edge agent's file reader stamps a frame ``start_time + (pts - first pts)``, so a file written here and read
with ``start_time = first_frame_time(scenario, frames_per_day)`` replays weeks of site frames in seconds with
their true times: the progress stage then sees days close, nights pass and the weather change as on site.

    python -m devstack.site_video OUT.mp4 [--days 60] [--frames-per-day 12] [--seed 0] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from devstack.site_scenes import SiteScenario, default_scenario, frame_times, site_frames
from devstack.video_files import write_video

TIME_BASE = Fraction(1, 1000)
"""PTS unit: milliseconds (60 days is 5.2e9 ms, far inside int64; the MP4 keeps it as its timescale)."""


def first_frame_time(scenario: SiteScenario, frames_per_day: int) -> dt.datetime:
    """The time of the file's first frame: the ``start_time`` to read it with."""
    return next(frame_times(scenario, frames_per_day))[2]


def sample_pts(scenario: SiteScenario, frames_per_day: int) -> list[int]:
    """Every frame's PTS in ``TIME_BASE`` units from the first frame."""
    origin = first_frame_time(scenario, frames_per_day)
    return [round((t - origin).total_seconds() / TIME_BASE) for _, _, t in frame_times(scenario, frames_per_day)]


def write_site_video(
    path: Path, scenario: SiteScenario, frames_per_day: int = 12, size: tuple[int, int] = (1280, 720)
) -> Path:
    """Render every frame of ``scenario`` at ``size`` and encode it (every frame a keyframe: a site camera
    sampled once in hours has nothing to predict from); returns ``path``."""

    def images() -> Iterator[npt.NDArray[np.uint8]]:
        for frame in site_frames(scenario, frames_per_day, size):
            yield frame.image

    return write_video(
        path,
        images(),
        fps=1,
        options={"g": "1", "crf": "23", "preset": "veryfast"},
        pts=sample_pts(scenario, frames_per_day),
        time_base=TIME_BASE,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--frames-per-day", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    scenario = default_scenario(args.seed, args.days)
    write_site_video(args.out, scenario, args.frames_per_day, (width, height))
    start = first_frame_time(scenario, args.frames_per_day)
    print(f"wrote {args.out}: {args.days} days x {args.frames_per_day} frames; start_time {start.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
