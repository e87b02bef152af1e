"""Ultralytics YOLO exports of every layout, decoded exactly: tiny ONNX models with known outputs, real sessions.

Image 128x64 into a 64x64 letterbox: scale 0.5, padding 16 rows on top, so a box (x1, y1, x2, y2)
in model pixels is (2 x1, 2 (y1 - 16), 2 x2, 2 (y2 - 16)) in the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from onnx import TensorProto

from edge_agent.perception.detectors.yolo import MASK_COEFFICIENTS, YoloDetector, YoloSettings, output_layout
from tests.unit.onnx_models import brightness_shifted_model, fixed_output_model

NAMES = {0: "car", 1: "motorcycle", 2: "person"}
LABEL_MAP = {"car": "car", "motorcycle": "motorbike"}
SETTINGS = YoloSettings(score_threshold=0.3, nms_iou=0.5, class_agnostic_nms=True, max_detections=100, input_size=64)
IMAGE = np.zeros((64, 128, 3), np.uint8)


def classic_output(with_masks: bool = False) -> npt.NDArray[np.float32]:
    """[1, 4 + 3 (+32), 5]: columns are anchors (cx, cy, w, h, car, motorcycle, person)."""
    anchors = [
        (20, 30, 16, 8, 0.9, 0.0, 0.0),  # a car
        (21, 30, 16, 8, 0.6, 0.0, 0.0),  # the same car, weaker: NMS removes it
        (48, 40, 8, 12, 0.0, 0.5, 0.95),  # person scores higher but is unmapped: motorbike 0.5 wins
        (40, 40, 10, 10, 0.2, 0.0, 0.0),  # below the threshold
        (10, 20, 6, 6, 0.0, 0.0, 0.99),  # only a person: dropped
    ]
    output = np.array(anchors, np.float32).T[None]
    if with_masks:
        output = np.concatenate([output, np.full((1, MASK_COEFFICIENTS, 5), 0.3, np.float32)], axis=1)
    return output


def end_to_end_output(with_masks: bool = False) -> npt.NDArray[np.float32]:
    """[1, 6, 6 (+32)]: rows are detections (x1, y1, x2, y2, score, class id)."""
    rows = [
        (12, 26, 28, 34, 0.9, 0),  # car
        (13, 26, 29, 34, 0.8, 0),  # an overlapping car: kept, the model already did its NMS
        (44, 34, 52, 46, 0.7, 1),  # motorcycle -> motorbike
        (0, 16, 10, 20, 0.95, 2),  # person: unmapped, dropped
        (30, 30, 40, 40, 0.1, 0),  # below the threshold
        (30, 30, 40, 40, 0.9, 7),  # a class id the model does not have: dropped
    ]
    output = np.array(rows, np.float32)[None]
    if with_masks:
        output = np.concatenate([output, np.full((1, 6, MASK_COEFFICIENTS), 0.3, np.float32)], axis=2)
    return output


PROTOS = np.zeros((1, MASK_COEFFICIENTS, 16, 16), np.float32)


def detector(path: Path, class_names: list[str] | None = None) -> YoloDetector:
    return YoloDetector(path, LABEL_MAP, SETTINGS, class_names)


@pytest.mark.parametrize("with_masks", [False, True], ids=["detect", "seg"])
def test_classic_layout_decodes_with_threshold_label_map_and_nms(tmp_path: Path, with_masks: bool) -> None:
    outputs = {"output0": classic_output(with_masks)}
    if with_masks:
        outputs["output1"] = PROTOS
    yolo = detector(fixed_output_model(tmp_path / "m.onnx", outputs, names=NAMES))
    assert yolo.layout == "classic"
    assert yolo.model_labels == ("car", "motorcycle", "person")  # from the 'names' metadata
    dets = yolo.detect(IMAGE)
    assert dets.names == ["car", "motorbike"]
    np.testing.assert_allclose(dets.confidence, [0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy, [[24, 20, 56, 36], [88, 36, 104, 60]], atol=1e-4)


@pytest.mark.parametrize("with_masks", [False, True], ids=["detect", "seg"])
def test_end_to_end_layout_decodes_without_nms(tmp_path: Path, with_masks: bool) -> None:
    outputs = {"output0": end_to_end_output(with_masks)}
    if with_masks:
        outputs["output1"] = PROTOS
    yolo = detector(fixed_output_model(tmp_path / "m.onnx", outputs, names=NAMES))
    assert yolo.layout == "end_to_end"
    dets = yolo.detect(IMAGE)
    assert dets.names == ["car", "car", "motorbike"]
    np.testing.assert_allclose(dets.confidence, [0.9, 0.8, 0.7], rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy, [[24, 20, 56, 36], [26, 20, 58, 36], [88, 36, 104, 60]], atol=1e-4)


def test_class_names_from_config_override_the_metadata(tmp_path: Path) -> None:
    path = fixed_output_model(tmp_path / "m.onnx", {"output0": end_to_end_output()})  # no 'names' metadata
    with pytest.raises(ValueError, match="set class_names"):
        detector(path)
    yolo = detector(path, class_names=["motorcycle", "car", "person"])  # ids 0 and 1 swap meaning
    assert yolo.detect(IMAGE).names == ["motorbike", "motorbike", "car"]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"output0": np.zeros((1, 10, 5), np.float32)}, r"fits no Ultralytics layout for 3 classes"),
        ({"output0": np.zeros((1, 8400), np.float32)}, r"fits no Ultralytics layout"),
        ({"output1": PROTOS}, r"no 3-D output among \[\[1, 32, 16, 16\]\]"),
    ],
    ids=["wrong-channels", "wrong-rank", "protos-only"],
)
def test_outputs_of_no_known_layout_are_refused_with_the_expected_shapes(
    tmp_path: Path, outputs: dict[str, npt.NDArray[np.float32]], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        detector(fixed_output_model(tmp_path / "m.onnx", outputs, names=NAMES))
    if "layout for 3" in message:
        assert "[1, 7 (detect) or 39 (seg), anchors]" in str(error.value)
        assert "[1, detections, 6 (detect) or 38 (seg)]" in str(error.value)


def test_layout_is_read_from_the_shape_and_waits_for_symbolic_dimensions() -> None:
    assert output_layout([1, 84, 8400], 80) == "classic"
    assert output_layout([1, 116, 8400], 80) == "classic"
    assert output_layout([1, 300, 6], 80) == "end_to_end"
    assert output_layout([1, 300, 38], 80) == "end_to_end"
    assert output_layout(["batch", 84, "anchors"], 80) == "classic"
    assert output_layout(["batch", "rows", "columns"], 80) is None
    with pytest.raises(ValueError, match="fits no"):
        output_layout([1, 6, 6], 2)  # 4 + 2 channels and 6 fields at once: ambiguous, refused


def test_fp16_input_models_are_fed_half_precision(tmp_path: Path) -> None:
    path = fixed_output_model(tmp_path / "m.onnx", {"output0": end_to_end_output()}, names=NAMES,
                              input_type=TensorProto.FLOAT16)  # fmt: skip
    yolo = detector(path)
    assert yolo.session.input_dtype == np.float16
    assert len(yolo.detect(IMAGE)) == 3


@pytest.mark.parametrize("batch_dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_a_batch_gives_each_image_its_own_detections_in_order(tmp_path: Path, batch_dynamic: bool) -> None:
    shift = np.zeros_like(classic_output())
    shift[0, 0, 0] = 40.0  # the car's cx moves with the mean brightness of its image
    path = brightness_shifted_model(tmp_path / "m.onnx", classic_output(), shift, names=NAMES,
                                    batch_dynamic=batch_dynamic)  # fmt: skip
    yolo = detector(path)
    assert yolo.session.batch_dynamic is batch_dynamic
    images = [np.full((64, 128, 3), value, np.uint8) for value in (0, 128, 255)]
    batched = yolo.detect_batch(images)
    one_by_one = [yolo.detect(image) for image in images]
    for image, got, alone in zip(images, batched, one_by_one, strict=True):
        blob, _ = yolo.preprocess(image)
        car_cx = 20 + 40 * float(blob.mean())
        np.testing.assert_allclose(got.xyxy[0, [0, 2]], [2 * (car_cx - 8), 2 * (car_cx + 8)], atol=1e-3)
        np.testing.assert_array_equal(got.xyxy, alone.xyxy)
    assert len({float(d.xyxy[0, 0]) for d in batched}) == 3
    assert yolo.detect_batch([]) == []
