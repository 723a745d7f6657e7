"""quantize_linear / dequantize_linear against onnxruntime's QuantizeLinear / DequantizeLinear."""

from __future__ import annotations

import numpy as np
import pytest

from ircomp.numerics import dequantize_linear, quantize_linear

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
helper = onnx.helper


def _run(op: str, x: np.ndarray, scale: np.ndarray, zp: np.ndarray, out_type: int) -> np.ndarray:
    in_type = helper.np_dtype_to_tensor_dtype(x.dtype)
    node = helper.make_node(op, ["x", "s", "z"], ["y"], axis=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", in_type, list(x.shape))],
        [helper.make_tensor_value_info("y", out_type, list(x.shape))],
        [onnx.numpy_helper.from_array(scale, "s"), onnx.numpy_helper.from_array(zp, "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_quantize_linear_matches_onnxruntime() -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((5, 3, 7)) * 40).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -2.5, 1e6, -1e6]
    scale = np.array([0.25, 0.5, 0.37], dtype=np.float32)
    zp = np.array([0, 3, -2], dtype=np.int8)
    theirs = _run("QuantizeLinear", x, scale, zp, onnx.TensorProto.INT8)
    ours = quantize_linear(x, scale, zp, axis=1, qmin=-128, qmax=127)
    assert ours.tolist() == theirs.astype(np.int64).tolist()


def test_dequantize_linear_matches_onnxruntime() -> None:
    q = np.random.default_rng(5).integers(0, 256, (4, 3, 2)).astype(np.uint8)
    scale = np.array([0.1, 0.02, 3.3], dtype=np.float32)
    zp = np.array([128, 0, 7], dtype=np.uint8)
    theirs = _run("DequantizeLinear", q, scale, zp, onnx.TensorProto.FLOAT)
    ours = dequantize_linear(q, scale, zp, axis=1)
    assert np.array_equal(ours, theirs)
