"""analyze's outputs on a small generated video with a pixel-based detector: JSONL, annotated MP4, table."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edge_agent.analytics.lines import LineConfig
from edge_agent.analyze import format_table, line_totals, run_analysis, summarise, write_events_jsonl
from edge_agent.annotated_video import AnnotatedVideoWriter, probe_frame_rate
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult
from event_contract import CountIntervalEvent, EventBatch, HealthEvent
from tests.unit.test_annotate import cars
from tests.unit.test_pipeline_step import HEIGHT, START, BrightBlobDetector, square_tops, write_square_video

DOWN = LineConfig(id="down", start=(0, 0.5), end=(1, 0.5), in_label="xuống phố")


def file_camera(video: Path) -> CameraConfig:
    return CameraConfig(
        id="video",
        url=str(video),
        realtime=False,
        on_end="stop",
        max_reconnects=0,
        start_time=START,
        queue_policy="block",
        detector=DetectorConfig(),
        lines=(DOWN,),
    )


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_events_jsonl_and_annotated_video_of_a_clip(tmp_path: Path) -> None:
    tops = square_tops() + [HEIGHT] * 3
    video = write_square_video(tmp_path / "square.mp4", tops)
    camera = file_camera(video)
    writer = AnnotatedVideoWriter(
        tmp_path / "out" / "annotated.mp4", camera.lines, frame_rate=probe_frame_rate(str(video))
    )
    result = run_analysis(camera, detector=BrightBlobDetector(), observer=writer.observe)
    writer.close()
    write_events_jsonl(tmp_path / "events.jsonl", result.events)

    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = EventBatch.model_validate({"agent_id": "analyze", "events": [json.loads(line) for line in lines]}).events
    # Health events mark every state change of the source (starting, live, stopped...); one interval holds the count.
    assert [type(e) for e in events if not isinstance(e, HealthEvent)] == [CountIntervalEvent]
    assert isinstance(events[0], HealthEvent)
    assert isinstance(events[-1], HealthEvent)
    assert events[-1].state == "stopped"
    assert [e.event_id for e in events] == [e.event_id for e in result.events]
    totals = line_totals(camera.lines, events)
    assert totals["down"]["in"] == {"car": 1}

    assert writer.error == ""
    assert writer.frames_written == len(tops)
    originals, annotated = decoded_frames(video), decoded_frames(writer.path)
    assert len(annotated) == len(originals) == len(tops)
    with av.open(str(writer.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    # The overlay changes the picture (line, labels, counts panel) but the scene is still there.
    difference = np.abs(annotated[5].astype(int) - originals[5].astype(int)).max(axis=2)
    assert (difference > 60).mean() > 0.01
    assert np.median(difference) < 10
    assert not (tmp_path / "out" / "annotated.partial.mp4").exists()


def test_table_lists_every_line_direction_and_class(tmp_path: Path) -> None:
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    camera = file_camera(video)
    report = summarise(camera, run_analysis(camera, detector=BrightBlobDetector()))
    rows = [line.split() for line in format_table(camera, report).splitlines()]

    assert ["down", "in", "car", "1"] in rows
    assert ["down", "in+out", "all", "1"] in rows
    assert any("xuống phố" in " ".join(row) for row in rows)


def test_writer_keeps_odd_sized_frames_and_leaves_no_file_without_frames(tmp_path: Path) -> None:
    writer = AnnotatedVideoWriter(tmp_path / "odd.mp4", (DOWN,), frame_rate=Fraction(10))
    for index in range(4):
        image = np.full((121, 161, 3), 40 * index, np.uint8)
        frame = Frame(image, "cam", index, START + dt.timedelta(seconds=index / 10))
        writer.observe(frame, StepResult(tracked=cars([(10, 10, 50, 50)], [1]), crossings=(), events=()))
    writer.close()
    assert writer.error == ""
    assert [f.shape for f in decoded_frames(writer.path)] == [(120, 160, 3)] * 4

    empty = AnnotatedVideoWriter(tmp_path / "empty.mp4", (DOWN,))
    empty.close()
    assert "no frame" in empty.error
    assert not (tmp_path / "empty.mp4").exists()


def test_probe_frame_rate_falls_back_for_unreadable_input(tmp_path: Path) -> None:
    (tmp_path / "not-a-video.mp4").write_bytes(b"nothing")
    assert probe_frame_rate(str(tmp_path / "not-a-video.mp4")) == Fraction(25)
