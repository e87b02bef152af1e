"""The real models run as batches: the prepared batch-dynamic copies give exactly the one-by-one detections,
directly and through the shared batching detector fed by several camera threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from devstack.scene import SceneParams, render_scene
from devstack.scene_eval import decode_frames
from edge_agent.perception.detectors import DetectorConfig, build_detector, resolve_model_path
from edge_agent.perception.detectors.batching import BatchingConfig, BatchingDetector
from edge_agent.perception.detectors.config import Backend, batch_model_path
from edge_agent.perception.detectors.ssd_mobilenet import SsdMobilenetDetector
from edge_agent.perception.detectors.yolo import YoloDetector
from edge_agent.perception.types import Detections

Image = npt.NDArray[np.uint8]
BATCHED = BatchingConfig(enabled=True, max_batch=4, max_wait_ms=20)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Image]:
    """Three frames of a rendered clip with a car in view, and one of them shrunk (batches mix sizes)."""
    video, truth_path = render_scene(SceneParams(seed=7, duration_s=8.0), tmp_path_factory.mktemp("scene"))
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    columns = truth["box_columns"]
    # Frames where a vehicle is wholly in view (the truth's own flag), a few frames apart.
    in_view = sorted({row[0] for obj in truth["objects"] for row in obj["boxes"] if row[columns.index("fully_inside")]})
    wanted = set(in_view[len(in_view) // 4 :: 4][:3])
    assert len(wanted) == 3, "the rendered clip must show a whole vehicle in at least 12 frames"
    chosen = [image for index, image in decode_frames(video) if index in wanted]
    small = np.ascontiguousarray(chosen[1][::2, ::2])
    return [*chosen, small]


def _pair(backend: Backend) -> tuple[SsdMobilenetDetector | YoloDetector, SsdMobilenetDetector | YoloDetector]:
    """(batch-dynamic detector, the fixed-batch one) of a backend; skipped where the setup step has not run."""
    config = DetectorConfig(backend=backend)
    try:
        fixed_path = resolve_model_path(config)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    if batch_model_path(fixed_path) is None:
        pytest.skip(f"no batch-dynamic copy of {fixed_path}: run models/prepare_models.py")
    batched = build_detector(config.model_copy(update={"batching": BATCHED}))
    fixed = build_detector(config)
    assert isinstance(batched, SsdMobilenetDetector | YoloDetector)
    assert isinstance(fixed, SsdMobilenetDetector | YoloDetector)
    return batched, fixed


def _assert_same(got: Detections, expected: Detections) -> None:
    assert got.names == expected.names
    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=0.05)
    np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-3)


@pytest.mark.parametrize("backend", ["ssd_mobilenet_oidv4", "yolo"])
def test_one_batched_inference_equals_one_by_one(frames: list[Image], backend: Backend) -> None:
    batched, fixed = _pair(backend)
    assert batched.session.batch_dynamic
    assert batched.session.path.name.endswith(".batch.onnx")
    assert not fixed.session.batch_dynamic
    results = batched.detect_batch(frames)
    assert len(results) == len(frames)
    for image, got in zip(frames, results, strict=True):
        _assert_same(got, fixed.detect(image))
    if backend == "ssd_mobilenet_oidv4":
        assert all(len(dets) >= 1 for dets in results[:3])  # the SSD sees the rendered car in each frame


def test_cameras_sharing_the_real_ssd_get_their_own_frames_detections(frames: list[Image]) -> None:
    batched, fixed = _pair("ssd_mobilenet_oidv4")
    shared = BatchingDetector(batched, BATCHED, name="ssd")
    shared.start()
    results: dict[int, Detections] = {}

    def camera(index: int) -> None:
        client = shared.client(f"cam-{index}")
        for _ in range(3):
            results[index] = client.detect(frames[index])

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(len(frames))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    shared.close()
    for index, image in enumerate(frames):
        _assert_same(results[index], fixed.detect(image))
    stats = shared.stats()
    assert stats.frames_run == stats.requests == 3 * len(frames)
    assert (stats.dropped, stats.timeouts, stats.errors) == (0, 0, 0)


def test_the_factory_keeps_the_fixed_file_without_batching(tmp_path: Path) -> None:
    config = DetectorConfig()
    try:
        fixed_path = resolve_model_path(config)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    detector = build_detector(config)
    assert isinstance(detector, SsdMobilenetDetector)
    assert detector.session.path == fixed_path
