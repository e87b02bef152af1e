"""Setup-time batch-dynamic copies of ONNX models (models/prepare_models.py), on tiny synthetic graphs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.unit.onnx_models import reshaping_model


def _load_script() -> ModuleType:
    """models/prepare_models.py is a setup script, not a package module: load it from its path."""
    path = Path(__file__).resolve().parents[2] / "models" / "prepare_models.py"
    spec = importlib.util.spec_from_file_location("prepare_models", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("prepare_models", module)
    spec.loader.exec_module(module)
    return module


prepare_models = _load_script()


def test_a_fixed_batch_graph_gets_a_symbolic_batch_and_identical_outputs(tmp_path: Path) -> None:
    fixed = reshaping_model(tmp_path / "fixed.onnx").read_bytes()
    dynamic = prepare_models.batch_dynamic(fixed)
    prepare_models.verify_batch_dynamic(fixed, dynamic)  # raises when outputs differ
    model = onnx.load_from_string(dynamic)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(dynamic, providers=["CPUExecutionProvider"])
    batch = np.arange(3 * 192, dtype=np.float32).reshape(3, 3, 8, 8) - 100
    (out,) = session.run(None, {"images": batch})
    np.testing.assert_array_equal(out, np.maximum(batch.reshape(3, 192), 0))
    assert prepare_models.batch_dynamic(fixed) == dynamic  # deterministic bytes: the manifest can pin them


def test_a_graph_that_pins_its_batch_elsewhere_is_refused(tmp_path: Path) -> None:
    pinned = reshaping_model(tmp_path / "pinned.onnx", with_expand=True).read_bytes()
    with pytest.raises(prepare_models.NotBatchableError, match="Expand"):
        prepare_models.batch_dynamic(pinned)


def test_the_command_makes_a_verified_copy_of_a_users_model_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = reshaping_model(tmp_path / "user.onnx")
    assert prepare_models.main(["--batch-dynamic", str(source), str(tmp_path / "user.batch.onnx")]) == 0
    assert "outputs verified" in capsys.readouterr().out
    assert (tmp_path / "user.batch.onnx").is_file()
    pinned = reshaping_model(tmp_path / "pinned.onnx", with_expand=True)
    assert prepare_models.main(["--batch-dynamic", str(pinned), str(tmp_path / "pinned.batch.onnx")]) == 1
    assert "one by one" in capsys.readouterr().out
    assert not (tmp_path / "pinned.batch.onnx").exists()
