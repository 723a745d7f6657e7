"""Quantized ONNX through the frontend: onnxruntime QDQ models bit for bit, and QONNX."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import SmallCNN, calibration_batches, export

from ircomp.dialects import nn
from ircomp.frontends import onnx as onnx_frontend
from ircomp.interpreter import Interpreter

SHAPE = (2, 3, 14, 14)


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory) -> tuple[str, str]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("qdq")
    float_path, q_path = folder / "float.onnx", folder / "qdq.onnx"
    onnx.save(export(SmallCNN(), torch.randn(*SHAPE)), float_path)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"x": b} for b in calibration_batches(1, 8, SHAPE))

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.batches, None)

    quantize_static(
        str(float_path), str(q_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True
    )
    return str(q_path), str(folder / "ort_optimized.onnx")


def test_qdq_model_is_bit_identical_to_onnxruntime(qdq_model) -> None:
    """quantize_static QDQ (int8 activations and per-channel int8 weights) vs onnxruntime at
    its default optimization level.

    What onnxruntime runs (checked below from its optimized graph): the QDQ groups
    DQ->Conv->Q become com.microsoft QLinearConv, DQ->Gemm->Q becomes QGemm, and the DQ/Q
    pairs around MaxPool and Flatten are dropped (MaxPool runs on int8 codes). Relu was
    already removed by the quantizer (its output Q has zero point -128 = qmin). ircomp imports
    the same structure: integer nn.conv2d / nn.linear with zero points and the int32 bias, and
    nn.requantize {mode = "onnx"} with scale float32(sx) * float32(sw) / float32(sy), which
    is MLAS's float requantization; so the int8 codes, and the dequantized outputs, are
    identical.
    """
    q_path, optimized = qdq_model
    options = ort.SessionOptions()
    options.optimized_model_filepath = optimized
    session = ort.InferenceSession(q_path, options, providers=["CPUExecutionProvider"])
    fused = {n.op_type for n in onnx.load(optimized).graph.node}
    assert {"QLinearConv", "QGemm"} <= fused and "Conv" not in fused

    program = onnx_frontend.load(q_path)
    ops = [type(op) for op in program.module.walk()]
    assert ops.count(nn.RequantizeOp) == 4 and nn.DivOp not in ops
    convs = [op for op in program.module.walk() if isinstance(op, nn.Conv2dOp)]
    assert all(str(nn.elem(op.results[0])) == "i32" for op in convs)

    interpreter = Interpreter(program)
    for x in calibration_batches(7, 25, SHAPE):
        (expected,) = session.run(None, {"x": x})
        (got,) = interpreter([x])
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_qdq_weights_keep_their_codes(qdq_model) -> None:
    q_path, _ = qdq_model
    program = onnx_frontend.load(q_path)
    weights = {op.weight_name.data: op for op in program.weight_ops()}
    assert str(nn.elem(weights["conv1.weight_quantized"].result)) == "i8"
    assert str(nn.elem(weights["conv1.bias_quantized"].result)) == "i32"


# ---- QONNX ----------------------------------------------------------------------------------


def _quant_ref(x, scale, zp, bits, signed, narrow):  # type: ignore[no-untyped-def]
    """QONNX Quant (ROUND mode) as its reference defines it, in float32 numpy."""
    if signed:
        lo, hi = -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1 - int(narrow)
    y = np.clip(x / scale + zp, lo, hi)
    return ((np.round(y) - zp) * scale).astype(np.float32)


def _qonnx_model(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    f32 = np.float32
    consts = {
        "s_x": f32(0.125),
        "s_w1": f32(0.0625),
        "s_y": f32(0.25),
        "s_w2": f32(0.5),
        "zero": f32(0.0),
        "b8": f32(8),
        "b4": f32(4),
        "b5": f32(5),
    }
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    inits += [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    domain = "qonnx.custom_op.general"
    nodes = [
        helper.make_node(
            "Quant",
            ["x", "s_x", "zero", "b8"],
            ["xq"],
            name="quant_x",
            domain=domain,
            signed=1,
            narrow=0,
            rounding_mode="ROUND",
        ),
        helper.make_node(
            "Quant",
            ["w1", "s_w1", "zero", "b4"],
            ["w1q"],
            name="quant_w1",
            domain=domain,
            signed=1,
            narrow=1,
            rounding_mode="ROUND",
        ),
        helper.make_node("MatMul", ["xq", "w1q"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node(
            "Quant",
            ["hr", "s_y", "zero", "b5"],
            ["hq"],
            name="quant_h",
            domain=domain,
            signed=0,
            narrow=0,
            rounding_mode="ROUND",
        ),
        helper.make_node("BipolarQuant", ["w2", "s_w2"], ["w2q"], name="quant_w2", domain=domain),
        helper.make_node("MatMul", ["hq", "w2q"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "qonnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        initializer=inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)]
    )


def test_qonnx_model_matches_numpy_semantics_bit_exactly() -> None:
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((6, 5)).astype(np.float32) * 0.4
    w2 = rng.standard_normal((5, 3)).astype(np.float32)
    program = onnx_frontend.load(_qonnx_model(w1, w2))
    weights = {op.weight_name.data: str(nn.elem(op.result)) for op in program.weight_ops()}
    assert weights == {"w1#codes": "i4", "w2#codes": "i2"}
    interpreter = Interpreter(program)
    for _ in range(20):
        x = (rng.standard_normal((4, 6)) * 8).astype(np.float32)
        xq = _quant_ref(x, np.float32(0.125), 0, 8, True, False)
        w1q = _quant_ref(w1, np.float32(0.0625), 0, 4, True, True)
        hq = _quant_ref(np.maximum(xq @ w1q, 0), np.float32(0.25), 0, 5, False, False)
        w2q = np.where(w2 >= 0, 1, -1).astype(np.float32) * np.float32(0.5)
        (got,) = interpreter([x])
        np.testing.assert_array_equal(got, hq @ w2q)
