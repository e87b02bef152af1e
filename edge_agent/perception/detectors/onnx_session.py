"""One place that opens ONNX Runtime sessions: provider choice and thread counts."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def select_providers(available: list[str] | None = None) -> list[str]:
    """The preferred providers this ONNX Runtime build offers, fastest first; CPU is always last."""
    offered = set(ort.get_available_providers() if available is None else available)
    chosen = [p for p in PREFERRED_PROVIDERS if p in offered]
    return chosen or ["CPUExecutionProvider"]


def open_session(model_path: Path, intra_op_threads: int = 0) -> ort.InferenceSession:
    """Load ``model_path``; ``intra_op_threads`` 0 lets ONNX Runtime use every core."""
    if not model_path.is_file():
        raise FileNotFoundError(f"model file {model_path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # Per-frame calls are tiny; one inter-op thread avoids oversubscribing the 2-core edge boxes.
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), sess_options=options, providers=select_providers())
