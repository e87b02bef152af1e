"""Tiny ONNX models built with the ``onnx`` helpers, whose outputs are tensors the test chose.

A real ONNX Runtime session runs them, so the decode paths are tested end to end (session,
letterbox, decode, label map) with exactly known raw outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
INPUT = "images"


def fixed_output_model(
    path: Path,
    outputs: dict[str, npt.NDArray[np.float32]],
    *,
    input_size: int = 64,
    names: dict[int, str] | None = None,
    input_type: int = TensorProto.FLOAT,
) -> Path:
    """A model with one image input [1, 3, S, S] whose outputs are the given constants (first axis = batch 1)."""
    nodes = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name + "_v"))
        for name, value in outputs.items()
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_outputs",
        [helper.make_tensor_value_info(INPUT, input_type, [1, 3, input_size, input_size])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)) for name, value in outputs.items()],
    )
    return _save(graph, path, names)


def brightness_shifted_model(
    path: Path,
    base: npt.NDArray[np.float32],
    shift: npt.NDArray[np.float32],
    *,
    input_size: int = 64,
    names: dict[int, str] | None = None,
    batch_dynamic: bool = True,
) -> Path:
    """``output0[n] = base + mean(images[n]) * shift``: each image of a batch gets its own, predictable output.

    ``base`` and ``shift`` have shape [1, R, C]; with ``batch_dynamic`` the batch axis is symbolic.
    """
    batch: int | str = "batch" if batch_dynamic else 1
    nodes = [
        helper.make_node("ReduceMean", [INPUT], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Squeeze", ["mean4", "last_axis"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "shift"], ["moved"]),
        helper.make_node("Add", ["moved", "base"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([3], np.int64), "last_axis"),
        numpy_helper.from_array(shift.astype(np.float32), "shift"),
        numpy_helper.from_array(base.astype(np.float32), "base"),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_shifted",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, 3, input_size, input_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, *base.shape[1:]])],
        initializer=initializers,
    )
    return _save(graph, path, names)


def reshaping_model(path: Path, *, with_expand: bool = False) -> Path:
    """images [1,3,8,8] -> Reshape [1,-1] -> output [1,192] (optionally via an Expand that pins the batch)."""
    nodes = [helper.make_node("Reshape", [INPUT, "flat_shape"], ["flat"])]
    initializers = [numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape")]
    if with_expand:
        nodes.append(helper.make_node("Expand", ["flat", "expand_shape"], ["output0"]))
        initializers.append(numpy_helper.from_array(np.array([1, 192], np.int64), "expand_shape"))
    else:
        nodes.append(helper.make_node("Relu", ["flat"], ["output0"]))
    graph = helper.make_graph(
        nodes,
        "reshaping",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 192])],
        initializer=initializers,
    )
    return _save(graph, path, None)


def _save(graph: onnx.GraphProto, path: Path, names: dict[int, str] | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    if names is not None:
        helper.set_model_props(model, {"names": repr(names)})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
