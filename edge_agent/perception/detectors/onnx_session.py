"""One place that opens ONNX Runtime sessions: providers in order, their options, FP16, threads, batches.

Providers are tried in the configured order (default TensorRT, CUDA, CPU). A provider this
ONNX Runtime build does not offer is skipped with a logged reason; CPU is always the last
resort, so a box without a GPU (or with a GPU whose libraries are missing) still runs, and
says why it is slower. FP16: TensorRT builds FP16 engines itself (``trt_fp16_enable``); the
CUDA provider runs whatever the model file holds, so an FP16 copy of the model can be named
(``fp16_model_path``) for it. CPU always runs the FP32 file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

log = logging.getLogger(__name__)

ProviderName = Literal["tensorrt", "cuda", "cpu"]
ORT_PROVIDER: dict[ProviderName, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEFAULT_PROVIDERS: tuple[ProviderName, ...] = ("tensorrt", "cuda", "cpu")
PREFERRED_PROVIDERS = tuple(ORT_PROVIDER[name] for name in DEFAULT_PROVIDERS)
CPU = ORT_PROVIDER["cpu"]

ProviderOptions = dict[str, str | int | bool]


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """How to run a model; built from ``DetectorConfig`` (see its field descriptions)."""

    providers: tuple[ProviderName, ...] = DEFAULT_PROVIDERS
    device_id: int = 0
    fp16: bool = True
    fp16_model_path: Path | None = None
    tensorrt_cache_dir: Path | None = None
    intra_op_threads: int = 0
    thread_spinning: bool = False


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What will be asked of ONNX Runtime, decided before any session exists (so it is testable without a GPU)."""

    model_path: Path
    providers: tuple[tuple[str, ProviderOptions], ...]
    notes: tuple[str, ...]
    """Why a requested provider or the FP16 file is not used."""

    @property
    def provider_names(self) -> list[str]:
        return [name for name, _ in self.providers]


def session_options(settings: RuntimeSettings) -> ort.SessionOptions:
    """Threads and graph optimisation of a session."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    # Per-frame calls are tiny; one inter-op thread avoids oversubscribing the 2-core edge boxes.
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if settings.thread_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def provider_options(name: ProviderName, settings: RuntimeSettings) -> ProviderOptions:
    """ONNX Runtime options of one provider."""
    if name == "tensorrt":
        options: ProviderOptions = {"device_id": settings.device_id, "trt_fp16_enable": settings.fp16}
        if settings.tensorrt_cache_dir is not None:
            # Engine builds take minutes; a cache makes restarts fast.
            options["trt_engine_cache_enable"] = True
            options["trt_engine_cache_path"] = str(settings.tensorrt_cache_dir)
        return options
    if name == "cuda":
        return {"device_id": settings.device_id}
    return {}


def plan_session(model_path: Path, settings: RuntimeSettings, available: Sequence[str]) -> SessionPlan:
    """Providers (with options) in the requested order that ``available`` offers, CPU last; which file to load."""
    notes: list[str] = []
    chosen: list[tuple[str, ProviderOptions]] = []
    for name in settings.providers:
        ort_name = ORT_PROVIDER[name]
        if ort_name in available:
            chosen.append((ort_name, provider_options(name, settings)))
        else:
            notes.append(f"{ort_name} requested but this onnxruntime build offers only {list(available)}")
    if CPU not in [name for name, _ in chosen]:
        chosen.append((CPU, {}))
    path = model_path
    if settings.fp16 and settings.fp16_model_path is not None:
        if chosen[0][0] == ORT_PROVIDER["cuda"]:
            path = settings.fp16_model_path
        else:
            notes.append(f"fp16_model_path is for the CUDA provider; {chosen[0][0]} runs {model_path.name}")
    return SessionPlan(model_path=path, providers=tuple(chosen), notes=tuple(notes))


def select_providers(available: list[str] | None = None) -> list[str]:
    """The default provider order this ONNX Runtime build offers, fastest first; CPU is always last."""
    offered = ort.get_available_providers() if available is None else available
    return plan_session(Path("model.onnx"), RuntimeSettings(), offered).provider_names


NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxSession:
    """A loaded model: ``run(outputs, batch)`` feeds a whole batch at once when the model's batch is dynamic,
    else item by item (same results either way), casting to the model's input type (FP16 files)."""

    def __init__(self, model_path: Path, settings: RuntimeSettings, available: Sequence[str] | None = None) -> None:
        if not model_path.is_file():
            raise FileNotFoundError(f"model file {model_path} does not exist")
        offered = ort.get_available_providers() if available is None else available
        self._fp32_path = model_path
        self.plan = plan_session(model_path, settings, offered)
        for note in self.plan.notes:
            log.info("%s: %s", model_path.name, note)
        self.session = self._open(settings)
        self.providers: list[str] = list(self.session.get_providers())
        wanted = self.plan.provider_names[0]
        if self.providers[0] != wanted:
            log.warning(
                "%s: asked for %s but onnxruntime runs %s (its own log above says why: usually CUDA, cuDNN or "
                "TensorRT libraries missing or not matching this onnxruntime build)",
                model_path.name,
                wanted,
                self.providers[0],
            )
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.plan.model_path}: expected one image input, got {[i.name for i in inputs]}")
        self.input_name: str = inputs[0].name
        self.input_shape: list[int | str | None] = list(inputs[0].shape)
        if inputs[0].type not in NUMPY_TYPES:
            raise ValueError(f"{self.plan.model_path}: input type {inputs[0].type} is not float or float16")
        self.input_dtype = NUMPY_TYPES[inputs[0].type]
        self.batch_dynamic = bool(self.input_shape) and not isinstance(self.input_shape[0], int)
        """True when the first input dimension is symbolic: one run serves a whole batch."""

    @property
    def path(self) -> Path:
        return self.plan.model_path

    def _open(self, settings: RuntimeSettings) -> ort.InferenceSession:
        options = session_options(settings)
        names = self.plan.provider_names
        try:
            return ort.InferenceSession(
                str(self.plan.model_path),
                sess_options=options,
                providers=names,
                provider_options=[opts for _, opts in self.plan.providers],
            )
        except Exception as error:  # onnxruntime raises plain RuntimeError/Fail subclasses from C++
            if names == [CPU]:
                raise
            log.warning("could not start %s on %s (%s); falling back to CPU", self.plan.model_path.name, names, error)
            self.plan = SessionPlan(
                self._fp32_path,  # CPU always runs the FP32 file
                ((CPU, {}),),
                (*self.plan.notes, f"{names} failed to start: {error}"),
            )
            return ort.InferenceSession(str(self.plan.model_path), sess_options=options, providers=[CPU])

    def run(self, output_names: Sequence[str], batch: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Outputs for a batch (N, ...) of preprocessed inputs, each output with N rows, as float32."""
        feed = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if self.batch_dynamic or len(feed) == 1:
            results = self.session.run(list(output_names), {self.input_name: feed})
        else:
            names = list(output_names)
            per_item = [self.session.run(names, {self.input_name: feed[i : i + 1]}) for i in range(len(feed))]
            results = [np.concatenate([item[k] for item in per_item]) for k in range(len(output_names))]
        return [np.asarray(result, dtype=np.float32) for result in results]
