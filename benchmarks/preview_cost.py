"""What the live preview and the annotated video cost per frame, on synthetic frames with boxes.

    python -m benchmarks.preview_cost [--width 1920 --height 1080 --boxes 20 --frames 100] [--out FILE.json]

Measures, in milliseconds per frame (median of ``--frames`` runs): ``observe`` (the work the
analytics thread does for the preview), the annotated preview JPEG at the default 640 px width,
the full-size raw snapshot JPEG, and an annotated frame encoded to H.264 (``analyze --annotated``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from edge_agent.analytics.lines import LineConfig
from edge_agent.annotated_video import AnnotatedVideoWriter
from edge_agent.perception.types import Detections, Frame
from edge_agent.pipeline import StepResult
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.feed import CameraFeed
from edge_agent.preview.jpeg import JpegRenderer
from event_contract import VEHICLE_CLASSES

LINES = (
    LineConfig(id="a", start=(0.05, 0.6), end=(0.95, 0.6), in_label="vào"),
    LineConfig(id="b", start=(0.5, 0.1), end=(0.5, 0.9)),
)


def _median_ms(run: Callable[[int], object], frames: int) -> float:
    times = []
    for index in range(frames):
        start = time.perf_counter()
        run(index)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def measure(width: int, height: int, boxes: int, frames: int) -> dict[str, object]:
    rng = np.random.default_rng(1)
    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    # Smooth pictures with a little grain: closer to a street than pure noise, which no encoder compresses.
    images = [
        np.clip(
            cv2.resize(rng.uniform(0, 255, (height // 24, width // 24, 3)), (width, height))
            + rng.normal(0, 4, (height, width, 3)),
            0,
            255,
        ).astype(np.uint8)
        for _ in range(4)
    ]
    x1 = rng.uniform(0, width - 200, boxes)
    y1 = rng.uniform(0, height - 150, boxes)
    tracked = Detections(
        np.stack([x1, y1, x1 + 180, y1 + 120], axis=1).astype(np.float32),
        rng.uniform(0.3, 1, boxes).astype(np.float32),
        rng.integers(0, len(VEHICLE_CLASSES), boxes),
        tuple(VEHICLE_CLASSES),
        tracker_id=np.arange(boxes),
    )
    result = StepResult(tracked=tracked, crossings=(), events=())

    def frame(index: int) -> Frame:
        return Frame(images[index % 4], "cam", index, t0 + dt.timedelta(seconds=index / 25))

    feed = CameraFeed("cam", LINES)
    observe_ms = _median_ms(lambda i: feed.observe(frame(i), result), frames)
    defaults = PreviewConfig()
    renderer = JpegRenderer(max_width=defaults.max_width, quality=defaults.jpeg_quality)

    def preview(index: int) -> bytes:
        feed.observe(frame(index), result)
        sample = feed.latest()
        assert sample is not None
        return renderer.preview("cam", sample)

    preview_ms = _median_ms(preview, frames)
    raw_sample = feed.latest()
    assert raw_sample is not None
    raw_ms = _median_ms(lambda _i: renderer.raw(raw_sample), frames)
    with tempfile.TemporaryDirectory() as tmp:
        writer = AnnotatedVideoWriter(Path(tmp) / "bench.mp4", LINES, frame_rate=Fraction(25))
        video_ms = _median_ms(lambda i: writer.observe(frame(i), result), frames)
        writer.close()
    return {
        "frame": f"{width}x{height}",
        "boxes": boxes,
        "frames": frames,
        "observe_ms": observe_ms,
        "preview_jpeg_ms": preview_ms,
        "preview_width": defaults.max_width,
        "raw_snapshot_jpeg_ms": raw_ms,
        "annotated_h264_ms": video_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    report = measure(args.width, args.height, args.boxes, args.frames)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
