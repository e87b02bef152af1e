"""Detector backends (ONNX Runtime models and background subtraction) that turn a BGR image into
taxonomy-labelled Detections, and the shared batching detector."""

from edge_agent.perception.detectors.batching import BatchingConfig
from edge_agent.perception.detectors.config import DetectorConfig, models_dir, resolve_model_path
from edge_agent.perception.detectors.factory import build_detector
from edge_agent.perception.detectors.label_map import TAXONOMY
from edge_agent.perception.detectors.motion_config import MotionConfig, SizeClass

__all__ = [
    "TAXONOMY",
    "BatchingConfig",
    "DetectorConfig",
    "MotionConfig",
    "SizeClass",
    "build_detector",
    "models_dir",
    "resolve_model_path",
]
