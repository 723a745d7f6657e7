"""Whole graphs against onnxruntime: a float CNN+MLP, and quantized graphs bit for bit.

The ONNX models are written by hand with `onnx.helper`; the IR is built to mean the same.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import Float32Type, IntegerType, Signedness

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder

ort = pytest.importorskip("onnxruntime")

I8, I32, U8 = IntegerType(8), IntegerType(32), IntegerType(8, Signedness.UNSIGNED)
f32 = Float32Type()


def ort_run(nodes, inputs: dict[str, np.ndarray], init: dict[str, np.ndarray], outputs, opset=21):
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info(name, elem, None) for name, elem in outputs],
        [numpy_helper.from_array(v, k) for k, v in init.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, inputs)


def test_float_cnn_mlp_matches_onnxruntime() -> None:
    rng = np.random.default_rng(7)
    f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    x = rng.standard_normal((3, 2, 12, 12)).astype(np.float32)
    params = {
        "cw": f(6, 2, 3, 3),
        "cb": f(6),
        "w1": f(16, 6 * 6 * 6),
        "b1": f(16),
        "w2": f(5, 16),
        "b2": f(5),
    }
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["fl"], axis=1),
        helper.make_node("Gemm", ["fl", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"], transB=1),
    ]
    (theirs,) = ort_run(nodes, {"x": x}, params, [("y", TensorProto.FLOAT)])

    b = GraphBuilder()
    w = {k: b.weight(k, v) for k, v in params.items()}
    h = b.op(nn.Conv2dOp, [b.input(x.shape), w["cw"], w["cb"]], padding=[1, 1, 1, 1])
    h = b.op(nn.ReluOp, [h])
    h = b.op(nn.MaxPool2dOp, [h], kernel=[2, 2], strides=[2, 2])
    h = b.op(nn.FlattenOp, [h])
    h = b.op(nn.ReluOp, [b.op(nn.LinearOp, [h, w["w1"], w["b1"]])])
    y = b.op(nn.LinearOp, [h, w["w2"], w["b2"]])
    (ours,) = run(b.finish([y]), [x])
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def _f32(x: float | np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qlinearconv_codes_match_onnxruntime(seed: int) -> None:
    """QuantizeLinear -> QLinearConv (per-channel weights, int32 bias) -> DequantizeLinear."""
    rng = np.random.default_rng(seed)
    n, cin, cout, hw, k = 2, 4, 6, 9, 3
    x = rng.uniform(-2.0, 3.0, (n, cin, hw, hw)).astype(np.float32)
    sx, zx = _f32(0.021), np.int8(-7)
    sw = rng.uniform(0.004, 0.02, cout).astype(np.float32)
    w = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
    bias = rng.integers(-3000, 3000, cout).astype(np.int32)
    sy, zy = _f32(0.09), np.int8(5)
    init = {
        "sx": sx, "zx": np.asarray(zx), "w": w, "sw": sw, "zw": np.zeros(cout, np.int8),
        "bias": bias, "sy": sy, "zy": np.asarray(zy),
    }  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node(
            "QLinearConv",
            ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"],
            ["yq"],
            pads=[1, 0, 1, 2],
            strides=[2, 1],
        ),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
    ]
    theirs_q, theirs_y = ort_run(
        nodes, {"x": x}, init, [("yq", TensorProto.INT8), ("y", TensorProto.FLOAT)]
    )

    # onnxruntime computes the requantization scale in float32: x_scale * w_scale / y_scale.
    requant_scale = (sx * sw) / sy
    b = GraphBuilder()
    xq = b.op(nn.QuantizeOp, [b.input(x.shape)], I8, scale=[float(sx)], zero_point=[int(zx)])
    acc = b.op(
        nn.Conv2dOp,
        [xq, b.weight("w", w, I8), b.weight("bias", bias, I32)],
        input_zero_point=int(zx),
        padding=[1, 0, 1, 2],
        strides=[2, 1],
    )
    yq = b.op(
        nn.RequantizeOp,
        [acc],
        I8,
        scale=[float(s) for s in requant_scale],
        zero_point=[int(zy)],
        axis=1,
        mode="onnx",
    )
    y = b.op(nn.DequantizeOp, [yq], f32, scale=[float(sy)], zero_point=[int(zy)])
    ours_q, ours_y = run(b.finish([yq, y]), [x])
    assert ours_q.dtype == np.int8
    assert np.array_equal(ours_q, theirs_q)
    assert np.array_equal(ours_y, theirs_y)
    assert len(np.unique(ours_q)) > 20  # not saturated


def test_qlinearmatmul_codes_match_onnxruntime() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (3, 5, 40)).astype(np.uint8)
    bw = rng.integers(-128, 128, (40, 7)).astype(np.int8)
    sa, sb, sy = _f32(0.03), _f32(0.011), _f32(0.2)
    za, zb, zy = np.uint8(131), np.int8(3), np.uint8(120)
    init = {"sa": sa, "za": np.asarray(za), "b": bw, "sb": sb, "zb": np.asarray(zb), "sy": sy,
            "zy": np.asarray(zy)}  # fmt: skip
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    (theirs,) = ort_run([node], {"a": a}, init, [("y", TensorProto.UINT8)])

    b = GraphBuilder()
    acc = b.op(
        nn.MatMulOp,
        [b.input(a.shape, U8), b.weight("b", bw, I8)],
        input_zero_point=int(za),
        weight_zero_point=int(zb),
    )
    y = b.op(nn.RequantizeOp, [acc], U8, scale=[float(sa * sb / sy)], zero_point=[int(zy)],
             mode="onnx")  # fmt: skip
    (ours,) = run(b.finish([y]), [a])
    assert ours.dtype == np.uint8
    assert np.array_equal(ours, theirs)
