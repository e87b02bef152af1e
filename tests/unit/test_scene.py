"""The synthetic scene: a real H.264 clip whose ground truth keeps its promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from devstack.scene import SceneParams, counting_line, render_scene
from edge_agent.analytics.geometry import side_of_line

SHORT = SceneParams(seed=3, duration_s=14.0, fps=8)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    video, truth = render_scene(SHORT, tmp_path_factory.mktemp("scene"), "short")
    return video, truth, json.loads(truth.read_text())


def _centre(box: list[int]) -> tuple[float, float]:
    _, x1, y1, x2, y2, _ = box
    return ((x1 + x2) / 2, (y1 + y2) / 2)


def test_clip_is_h264_yuv420p_with_one_keyframe_a_second(short_clip: tuple[Path, Path, dict[str, Any]]) -> None:
    video, _, truth = short_clip
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (truth["width"], truth["height"])
        keyframes = []
        count = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_keyframe:
                keyframes.append(count)
            count += 1
    assert count == truth["frame_count"] == round(SHORT.duration_s * SHORT.fps)
    assert keyframes == list(range(0, count, SHORT.fps))
    with av.open(str(video)) as container:
        first = next(container.decode(video=0))
        assert first.format.name == "yuv420p"


def test_every_crossing_is_real_and_every_object_crosses_exactly_once(
    short_clip: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, _, truth = short_clip
    start, end = (tuple(truth["line"]["start"]), tuple(truth["line"]["end"]))
    assert (start, end) == counting_line(SHORT)
    objects = {o["id"]: o for o in truth["objects"]}
    assert len(truth["crossings"]) == len(objects) >= 2
    assert {c["direction"] for c in truth["crossings"]} == {"in", "out"}
    for crossing in truth["crossings"]:
        boxes = {b[0]: b for b in objects[crossing["object_id"]]["boxes"]}
        before, after = boxes[crossing["frame"] - 1], boxes[crossing["frame"]]
        sides = side_of_line(np.array([_centre(before), _centre(after)], np.float32), start, end)
        assert sides[0] * sides[1] < 0, "the centre must change side of the line at the crossing frame"
        assert crossing["direction"] == ("in" if sides[0] < 0 else "out")
        assert crossing["time_s"] == pytest.approx(crossing["frame"] / SHORT.fps)
        assert crossing["time_s"] >= SHORT.first_crossing_after_s
        # Both the entry and the exit are in the clip: the object crosses fully.
        heading = objects[crossing["object_id"]]["heading"]
        assert (heading == "towards_camera") == (crossing["direction"] == "in")
    counts = truth["counts"]
    assert sum(counts["in"].values()) + sum(counts["out"].values()) == len(truth["crossings"])


def test_objects_enter_and_leave_inside_the_clip_and_never_hide_each_other(
    short_clip: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, _, truth = short_clip
    last = truth["frame_count"] - 1
    per_frame: dict[int, list[list[int]]] = {}
    for obj in truth["objects"]:
        frames = [b[0] for b in obj["boxes"]]
        assert frames == list(range(frames[0], frames[-1] + 1)), "an object is visible in one unbroken run"
        assert frames[0] > 0
        assert frames[-1] < last
        assert any(b[5] for b in obj["boxes"]), "each object is fully inside the view for a while"
        for b in obj["boxes"]:
            assert 0 <= b[1] < b[3] <= truth["width"]
            assert 0 <= b[2] < b[4] <= truth["height"]
            per_frame.setdefault(b[0], []).append(b)
    for boxes in per_frame.values():
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                ix = max(0, min(a[3], b[3]) - max(a[1], b[1]))
                iy = max(0, min(a[4], b[4]) - max(a[2], b[2]))
                inter = ix * iy
                union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
                assert inter / union <= 0.3


def test_same_parameters_reuse_the_cached_clip_and_new_ones_render_again(
    short_clip: tuple[Path, Path, dict[str, Any]],
) -> None:
    video, truth_path, truth = short_clip
    stamp = (video.stat().st_mtime_ns, truth_path.stat().st_mtime_ns)
    again = render_scene(SHORT, video.parent, "short")
    assert again == (video, truth_path)
    assert (video.stat().st_mtime_ns, truth_path.stat().st_mtime_ns) == stamp
    assert truth["param_hash"] == SHORT.param_hash() != SceneParams(seed=4, duration_s=14.0, fps=8).param_hash()


def test_rendering_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    params = SceneParams(seed=11, duration_s=5.0, fps=6)
    _, truth_a = render_scene(params, tmp_path / "a")
    _, truth_b = render_scene(params, tmp_path / "b")
    assert truth_a.read_text() == truth_b.read_text()
    other = SceneParams(seed=12, duration_s=5.0, fps=6)
    _, truth_c = render_scene(other, tmp_path / "c")
    assert json.loads(truth_c.read_text())["objects"] != json.loads(truth_a.read_text())["objects"]


def test_scene_params_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        SceneParams(colour="red")  # type: ignore[call-arg]
