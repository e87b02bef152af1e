"""ONNX Runtime providers: order, options, FP16 files, and the logged fall-back to CPU (no GPU on this box)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.detectors.config import runtime_settings
from edge_agent.perception.detectors.onnx_session import (
    CPU,
    OnnxSession,
    RuntimeSettings,
    plan_session,
    session_options,
)
from tests.unit.onnx_models import fixed_output_model

TRT, CUDA = "TensorrtExecutionProvider", "CUDAExecutionProvider"
GPU_BUILD = [TRT, CUDA, CPU]


def test_a_gpu_build_gets_tensorrt_with_fp16_then_cuda_then_cpu_with_their_options(tmp_path: Path) -> None:
    settings = RuntimeSettings(device_id=1, fp16=True, tensorrt_cache_dir=tmp_path / "engines")
    plan = plan_session(Path("m.onnx"), settings, GPU_BUILD)
    assert plan.providers == (
        (
            TRT,
            {
                "device_id": 1,
                "trt_fp16_enable": True,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(tmp_path / "engines"),
            },
        ),
        (CUDA, {"device_id": 1}),
        (CPU, {}),
    )
    assert plan.notes == ()
    no_fp16 = plan_session(Path("m.onnx"), RuntimeSettings(fp16=False), GPU_BUILD)
    assert no_fp16.providers[0] == (TRT, {"device_id": 0, "trt_fp16_enable": False})


def test_providers_follow_the_configured_order_and_cpu_is_always_the_last_resort() -> None:
    plan = plan_session(Path("m.onnx"), RuntimeSettings(providers=("cuda",)), GPU_BUILD)
    assert plan.provider_names == [CUDA, CPU]
    assert plan_session(Path("m.onnx"), RuntimeSettings(providers=("cpu",)), GPU_BUILD).provider_names == [CPU]


def test_missing_providers_are_skipped_with_a_reason() -> None:
    plan = plan_session(Path("m.onnx"), RuntimeSettings(), ["AzureExecutionProvider", CPU])
    assert plan.provider_names == [CPU]
    assert len(plan.notes) == 2
    assert plan.notes[0].startswith(f"{TRT} requested but this onnxruntime build offers only")
    assert CUDA in plan.notes[1]


def test_the_fp16_model_file_is_loaded_only_when_cuda_runs_it() -> None:
    settings = RuntimeSettings(fp16_model_path=Path("m.fp16.onnx"))
    assert plan_session(Path("m.onnx"), settings, [CUDA, CPU]).model_path == Path("m.fp16.onnx")
    on_trt = plan_session(Path("m.onnx"), settings, GPU_BUILD)
    assert on_trt.model_path == Path("m.onnx")  # TensorRT makes its own FP16 engine from the FP32 file
    assert "fp16_model_path is for the CUDA provider" in on_trt.notes[-1]
    assert plan_session(Path("m.onnx"), settings, [CPU]).model_path == Path("m.onnx")
    off = RuntimeSettings(fp16=False, fp16_model_path=Path("m.fp16.onnx"))
    assert plan_session(Path("m.onnx"), off, [CUDA, CPU]).model_path == Path("m.onnx")


def _model(tmp_path: Path) -> Path:
    return fixed_output_model(tmp_path / "m.onnx", {"output0": np.ones((1, 2, 6), np.float32)})


def test_on_this_cpu_only_box_a_real_session_runs_on_cpu_and_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.perception.detectors.onnx_session")
    session = OnnxSession(_model(tmp_path), RuntimeSettings())
    assert session.providers == [CPU]
    assert f"{TRT} requested but this onnxruntime build offers only" in caplog.text
    assert f"{CUDA} requested" in caplog.text
    (out,) = session.run(["output0"], np.zeros((1, 3, 64, 64), np.float32))
    np.testing.assert_array_equal(out, np.ones((1, 2, 6)))


def test_a_provider_that_fails_to_start_falls_back_to_cpu_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge_agent.perception.detectors.onnx_session")
    # Pretend this build offers CUDA: onnxruntime then fails to start it (it raises, or warns and runs CPU).
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # onnxruntime's warning becomes an error: the session refuses to open
        failed = OnnxSession(_model(tmp_path), RuntimeSettings(providers=("cuda",)), available=[CUDA, CPU])
    assert failed.providers == [CPU]
    assert failed.plan.provider_names == [CPU]
    assert "could not start m.onnx on ['CUDAExecutionProvider', 'CPUExecutionProvider']" in caplog.text
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime warns and quietly runs CPU instead
        quiet = OnnxSession(_model(tmp_path), RuntimeSettings(providers=("cuda",)), available=[CUDA, CPU])
    assert quiet.providers == [CPU]
    assert "asked for CUDAExecutionProvider but onnxruntime runs CPUExecutionProvider" in caplog.text


def test_detector_config_carries_provider_settings_and_refuses_bad_orders(tmp_path: Path) -> None:
    config = DetectorConfig(providers=("cuda", "cpu"), device_id=2, fp16=False, tensorrt_cache_dir=tmp_path)
    assert runtime_settings(config) == RuntimeSettings(
        providers=("cuda", "cpu"), device_id=2, fp16=False, tensorrt_cache_dir=tmp_path
    )
    assert DetectorConfig().providers == ("tensorrt", "cuda", "cpu")
    with pytest.raises(ValidationError, match="must come last"):
        DetectorConfig(providers=("cpu", "cuda"))
    with pytest.raises(ValidationError, match="twice"):
        DetectorConfig(providers=("cuda", "cuda"))
    with pytest.raises(ValidationError, match="providers"):
        DetectorConfig.model_validate({"providers": ["rocm"]})


def test_worker_threads_sleep_between_runs_unless_spinning_is_asked_for() -> None:
    quiet = session_options(runtime_settings(DetectorConfig()))
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert quiet.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spinning = session_options(runtime_settings(DetectorConfig(thread_spinning=True, intra_op_threads=1)))
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert spinning.intra_op_num_threads == 1
