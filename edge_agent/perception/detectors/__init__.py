"""Detector backends (ONNX Runtime) that turn a BGR image into taxonomy-labelled Detections."""

from edge_agent.perception.detectors.config import DetectorConfig, models_dir, resolve_model_path
from edge_agent.perception.detectors.factory import build_detector
from edge_agent.perception.detectors.label_map import TAXONOMY

__all__ = ["TAXONOMY", "DetectorConfig", "build_detector", "models_dir", "resolve_model_path"]
