"""The synthetic scene: real H.264/H.265 clips whose ground truth keeps its promises, for every scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from devstack.scene import SceneParams, counting_line, render_scene
from devstack.scene_presets import PRESETS, preset
from devstack.scene_truth import AT_LINE_PX, END_MARGIN_PX
from edge_agent.analytics.geometry import side_of_line

SHORT = SceneParams(seed=3, duration_s=14.0, fps=8)
Clip = tuple[Path, Path, dict[str, Any]]


def _render(params: SceneParams, folder: Path, name: str) -> Clip:
    video, truth = render_scene(params, folder, name)
    return video, truth, json.loads(truth.read_text())


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return _render(SHORT, tmp_path_factory.mktemp("scene"), "short")


@pytest.fixture(scope="module")
def stop_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    # The first red phase (6-16 s) lets queues form at the line; at 22 s the leaders have driven off.
    return _render(preset("stop_on_line", duration_s=22.0, fps=8), tmp_path_factory.mktemp("stop"), "stop")


@pytest.fixture(scope="module")
def extension_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return _render(preset("line_extension", duration_s=16.0, fps=8), tmp_path_factory.mktemp("ext"), "ext")


def _centre(box: list[int]) -> tuple[float, float]:
    _, x1, y1, x2, y2, *_ = box
    return ((x1 + x2) / 2, (y1 + y2) / 2)


def _line(truth: dict[str, Any]) -> tuple[tuple[float, float], tuple[float, float]]:
    (x1, y1), (x2, y2) = truth["line"]["start"], truth["line"]["end"]
    return (x1, y1), (x2, y2)


def test_clip_is_h264_yuv420p_with_one_keyframe_a_second(short_clip: Clip) -> None:
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


def _assert_crossings_are_real(truth: dict[str, Any]) -> None:
    start, end = _line(truth)
    objects = {o["id"]: o for o in truth["objects"]}
    fps = truth["fps"]
    for crossing in truth["crossings"]:
        boxes = {b[0]: b for b in objects[crossing["object_id"]]["boxes"]}
        before, after = boxes[crossing["frame"] - 1], boxes[crossing["frame"]]
        sides = side_of_line(np.array([_centre(before), _centre(after)], np.float32), start, end)
        assert sides[0] * sides[1] < 0, "the centre must change side of the line at the crossing frame"
        assert crossing["direction"] == ("in" if sides[0] < 0 else "out")
        assert crossing["class"] == objects[crossing["object_id"]]["class"]
        assert crossing["time_s"] == pytest.approx(crossing["frame"] / fps)
        assert crossing["time_s"] >= truth["params"]["first_crossing_after_s"]
        heading = objects[crossing["object_id"]]["heading"]
        assert (heading == "towards_camera") == (crossing["direction"] == "in")
    counts = truth["counts"]
    assert sum(counts["in"].values()) + sum(counts["out"].values()) == len(truth["crossings"])


def test_every_crossing_is_real_and_every_object_crosses_exactly_once(short_clip: Clip) -> None:
    _, _, truth = short_clip
    assert _line(truth) == counting_line(SHORT)
    assert len(truth["crossings"]) == len(truth["objects"]) >= 2
    assert len({c["object_id"] for c in truth["crossings"]}) == len(truth["crossings"])
    assert {c["direction"] for c in truth["crossings"]} == {"in", "out"}
    _assert_crossings_are_real(truth)


def test_objects_enter_and_leave_inside_the_clip_and_never_hide_each_other(short_clip: Clip) -> None:
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
    # Nothing hides anything in the clean two-lane clip: every box is wholly visible.
    assert {b[6] for o in truth["objects"] for b in o["boxes"]} == {100}


def test_same_parameters_reuse_the_cached_clip_and_new_ones_render_again(short_clip: Clip) -> None:
    video, truth_path, truth = short_clip
    stamp = (video.stat().st_mtime_ns, truth_path.stat().st_mtime_ns)
    again = render_scene(SHORT, video.parent, "short")
    assert again == (video, truth_path)
    assert (video.stat().st_mtime_ns, truth_path.stat().st_mtime_ns) == stamp
    assert truth["param_hash"] == SHORT.param_hash() != SceneParams(seed=4, duration_s=14.0, fps=8).param_hash()
    assert SHORT.param_hash() != SHORT.model_copy(update={"codec": "h265"}).param_hash()


def test_rendering_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    params = SceneParams(seed=11, duration_s=5.0, fps=6)
    _, truth_a = render_scene(params, tmp_path / "a")
    _, truth_b = render_scene(params, tmp_path / "b")
    assert truth_a.read_text() == truth_b.read_text()
    other = SceneParams(seed=12, duration_s=5.0, fps=6)
    _, truth_c = render_scene(other, tmp_path / "c")
    assert json.loads(truth_c.read_text())["objects"] != json.loads(truth_a.read_text())["objects"]


def test_stopping_vehicles_stand_with_their_anchor_right_before_the_line_and_cross_once(stop_clip: Clip) -> None:
    _, _, truth = stop_clip
    _assert_crossings_are_real(truth)
    row = truth["line"]["start"][1]
    stood = [o for o in truth["objects"] if o["seconds_at_line"] >= 3.0]
    assert len(stood) >= 2, "queues must form at the line during the red phase"
    for obj in stood:
        before = obj["heading"] == "towards_camera"
        still = [_centre(a) for a, b in zip(obj["boxes"], obj["boxes"][1:], strict=False) if _centre(a) == _centre(b)]
        at_line = [c for c in still if abs(c[1] - row) <= AT_LINE_PX]
        assert at_line, f"object {obj['id']} stands somewhere else"
        # Standing right AT the line, on the side it came from: a detector box a few pixels off crosses it.
        assert all((c[1] < row) == before for c in at_line)
        assert sum(1 for c in truth["crossings"] if c["object_id"] == obj["id"]) == 1


def test_traffic_beyond_the_segment_ends_is_recorded_and_never_a_crossing(extension_clip: Clip) -> None:
    _, _, truth = extension_clip
    _assert_crossings_are_real(truth)
    (x_start, _row), (x_end, _) = _line(truth)
    assert 0 < x_start < x_end < truth["width"], "the line covers only the inner lanes"
    assert truth["beyond_end"], "outer-lane traffic passes the line's extension"
    crossing_ids = {c["object_id"] for c in truth["crossings"]}
    objects = {o["id"]: o for o in truth["objects"]}
    for passing in truth["beyond_end"]:
        assert passing["object_id"] not in crossing_ids
        assert passing["px_beyond_end"] >= END_MARGIN_PX
        boxes = {b[0]: b for b in objects[passing["object_id"]]["boxes"]}
        x, _ = _centre(boxes[passing["frame"]])
        assert x < x_start or x > x_end
    assert len(crossing_ids) + len({p["object_id"] for p in truth["beyond_end"]}) == len(truth["objects"])


def test_occlusion_is_measured_per_box(tmp_path: Path) -> None:
    _, _, truth = _render(preset("occlusion", duration_s=16.0, fps=8), tmp_path, "occ")
    _assert_crossings_are_real(truth)
    shares = [b[6] for o in truth["objects"] for b in o["boxes"]]
    assert all(0 <= s <= 100 for s in shares)
    assert min(shares) < 70, "vehicles must hide each other in the occlusion clip"
    assert truth["box_columns"][-1] == "visible_percent"


def test_mixed_traffic_at_720p_in_h265(tmp_path: Path) -> None:
    params = preset("mixed_traffic", duration_s=10.0, fps=6, width=1280, height=720, codec="h265")
    video, _, truth = _render(params, tmp_path, "mixed")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "hevc"
        assert (stream.width, stream.height) == (1280, 720)
        assert sum(1 for _ in container.decode(video=0)) == truth["frame_count"] == 60
    assert "motorbike" in {o["class"] for o in truth["objects"]}
    _assert_crossings_are_real(truth)


def test_presets_are_valid_named_and_overridable() -> None:
    assert {"dense", "occlusion", "stop_on_line", "line_extension", "both_directions"} <= set(PRESETS)
    for name, (description, params) in PRESETS.items():
        assert description
        assert params == preset(name)
        assert {lane.heading for lane in params.lanes} == {"towards", "away"}
    short = preset("dense", duration_s=5.0, width=1920, height=1080, fps=25)
    assert (short.duration_s, short.width, short.fps) == (5.0, 1920, 25)
    assert short.lanes == PRESETS["dense"][1].lanes
    with pytest.raises(KeyError, match="no scene preset"):
        preset("fog")


def test_scene_params_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        SceneParams(colour="red")  # type: ignore[call-arg]
