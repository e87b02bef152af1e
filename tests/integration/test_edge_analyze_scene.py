"""`edge-agent analyze VIDEO --config FILE --events --annotated` on a rendered clip with the real SSD.

The printed table, the JSONL events and the scene's ground truth must agree, and the annotated MP4
must decode with as many frames as the clip.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import pytest
import yaml

from devstack.demo import SceneTruth, truth_totals
from devstack.scene import SceneParams, render_scene
from edge_agent.cli import main
from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from event_contract import CountIntervalEvent, EventBatch

"""The SSD scores the rendered cars 0.3-0.6 (as in tests/e2e)."""


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_analyze_prints_writes_events_and_an_annotated_video_that_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        resolve_model_path(DetectorConfig())
    except FileNotFoundError as error:
        pytest.skip(str(error))
    truth = SceneTruth.load(*render_scene(SceneParams(duration_s=12.0), tmp_path / "scene"))
    assert truth.crossings, "the clip must contain crossings"
    site = {
        "agent_id": "site-box-01",
        "central": {"url": "http://127.0.0.1:9", "token": "unused"},
        "intervals_s": [5, 15],
        "cameras": [
            {"id": "cam-other", "url": "rtsp://192.0.2.1/1", "lines": [{"id": "x", "start": [0, 0], "end": [1, 1]}]},
            {
                "id": "cam-scene",
                "url": "rtsp://192.0.2.2/1",
                "lines": [{**truth.line, "in_label": "vào phố", "out_label": "ra phố"}],
            },
        ],
    }
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    events_path, video_path = tmp_path / "out" / "events.jsonl", tmp_path / "out" / "annotated.mp4"

    code = main(
        [
            "analyze",
            str(truth.video),
            "--config",
            str(config),
            "--camera",
            "cam-scene",
            "--events",
            str(events_path),
            "--annotated",
            str(video_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed

    table: dict[tuple[str, str, str], int] = {}
    for row in (line.split() for line in printed.splitlines()):
        if len(row) == 4 and row[1] in ("in", "out") and row[2] != "all" and row[3].isdigit():
            table[(row[0], row[2], row[1])] = int(row[3])
    lines = events_path.read_text(encoding="utf-8").splitlines()
    events = EventBatch.model_validate({"agent_id": "site-box-01", "events": [json.loads(x) for x in lines]}).events
    from_events: Counter[tuple[int, str, str, str]] = Counter()
    for event in events:
        assert event.source_id == "cam-scene"
        if isinstance(event, CountIntervalEvent):
            assert event.interval_s in (5, 15)
            for bucket in event.counts:
                from_events[(event.interval_s, event.line_id, bucket.vehicle_class, bucket.direction)] += bucket.count
    # Both lengths hold every crossing once; the table shows them once.
    per_length = {length: {key[1:]: n for key, n in from_events.items() if key[0] == length} for length in (5, 15)}
    assert per_length[5] == per_length[15]
    assert table == per_length[5]
    assert table == truth_totals(truth, truth.line_id)  # the clean clip is counted exactly
    assert f"{len(events)} events -> {events_path}" in printed

    assert frame_count(video_path) == frame_count(truth.video)
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 960, 540)


def test_analyze_reports_an_unknown_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "site.yaml"
    site = {
        "agent_id": "a",
        "central": {"url": "http://127.0.0.1:9", "token": "t"},
        "cameras": [{"id": "cam-1", "url": "x.mp4", "lines": [{"id": "l", "start": [0, 0.5], "end": [1, 0.5]}]}],
    }
    config.write_text(yaml.safe_dump(site), encoding="utf-8")
    assert main(["analyze", "clip.mp4", "--config", str(config), "--camera", "cam-9"]) == 2
    assert "--camera 'cam-9' is not in" in capsys.readouterr().err
