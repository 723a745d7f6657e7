"""MLPerf Tiny int8 QDQ models through the ONNX frontend and the golden interpreter, bit-exact
with both references of `shared/benchmarks/mlperf-tiny/*_io.npz`: onnxruntime (`y_int8_ort`,
requantization mode "onnx") and TFLite Micro (`y_int8`, mode "integer"), plus TFLM's per-layer
activations; and one tiny synthetic QDQ graph per integer semantics the importer maps (TFLite
ADD, SOFTMAX, AVERAGE_POOL_2D, FULLY_CONNECTED as MatMul + bias Add)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.frontends.onnx import load
from ircomp.interpreter import Interpreter, run
from ircomp.ir.program import Program, load_program, save_program
from ircomp.numerics import quantize_multiplier

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "mlperf-tiny"
MODELS = ("ad", "kws", "ic", "vww")
REFERENCE = {"onnx": "y_int8_ort", "integer": "y_int8"}


def mlperf_files(model: str) -> tuple[Path, Path]:
    """The QDQ model and its reference npz; skips the test when the shared folder is absent."""
    onnx_path, npz = MLPERF / f"{model}_int8_qdq.onnx", MLPERF / f"{model}_io.npz"
    if not (onnx_path.is_file() and npz.is_file()):
        pytest.skip(f"MLPerf Tiny reference models not found in {MLPERF}")
    return onnx_path, npz


def _op_names(program: Program) -> set[str]:
    return {op.name for op in program.module.walk()}


@pytest.mark.parametrize("mode", sorted(REFERENCE))
@pytest.mark.parametrize("model", MODELS)
def test_interpreter_matches_reference_on_all_inputs(model: str, mode: str) -> None:
    onnx_path, npz = mlperf_files(model)
    io = np.load(npz)
    program = load(onnx_path, requant_mode=mode)
    interpreter = Interpreter(program)
    xs, ys = io["x_int8"], io[REFERENCE[mode]]
    exact = [i for i in range(len(xs)) if np.array_equal(interpreter([xs[i]])[0], ys[i])]
    assert len(exact) == len(xs) == 20, f"{model} {mode}: exact on {exact}"
    requant_modes = {
        op.get("mode") for op in program.module.walk() if isinstance(op, nn.RequantizeOp)
    }
    assert requant_modes == {mode}


def _hint(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_$.-]", "_", name).strip("_") or "v"
    return "v" + text if text[0].isdigit() or text[0] in "$.-" else text


@pytest.mark.parametrize("model", MODELS)
def test_integer_mode_matches_every_tflm_activation(model: str) -> None:
    """Every TFLM layer output of the stored sample (NHWC) equals ours (NCHW): the first
    diverging layer would be named here."""
    onnx_path, npz = mlperf_files(model)
    io = np.load(npz)
    program = load(onnx_path, requant_mode="integer")
    seen: dict[str, np.ndarray] = {}

    def observe(op, results) -> None:  # type: ignore[no-untyped-def]
        for value, array in zip(op.results, results, strict=True):
            if value.name_hint:
                seen[value.name_hint] = array

    run(program, [io["x_int8"][int(io["act_sample"])]], observer=observe)
    checked = 0
    for k, (name, kind) in enumerate(zip(io["act_names"], io["act_ops"], strict=True)):
        ref = io[f"act_{k:02d}"]
        got = seen.get(_hint(str(name)))
        if got is None:  # pooled codes / reshape views carry a derived name
            assert kind in ("AVERAGE_POOL_2D", "RESHAPE"), (k, kind, name)
            continue
        if got.ndim == 4:
            got = got.transpose(0, 2, 3, 1)
        assert np.array_equal(got.reshape(ref.shape), ref), f"layer {k} ({kind}) '{name}'"
        checked += 1
    assert checked >= len(io["act_names"]) - 2


def test_integer_mode_ir_uses_tflite_ops() -> None:
    onnx_path, _ = mlperf_files("ic")
    integer = load(onnx_path, requant_mode="integer")
    names = _op_names(integer)
    assert {"nn.qadd", "nn.qsoftmax", "nn.avgpool2d"} <= names
    assert not names & {"nn.add", "nn.softmax", "nn.quantize", "nn.dequantize"}
    pools = [op for op in integer.module.walk() if isinstance(op, nn.AvgPool2dOp)]
    assert [str(nn.elem(p.input)) for p in pools] == ["i8"]  # the average of the codes
    onnx_mode = _op_names(load(onnx_path))
    assert "nn.qadd" not in onnx_mode and "nn.add" in onnx_mode


def test_integer_program_round_trips_through_mlir(tmp_path: Path) -> None:
    """nn.qadd / nn.qsoftmax print and parse (custom and generic form) and keep their results."""
    onnx_path, npz = mlperf_files("ic")
    io = np.load(npz)
    program = load(onnx_path, requant_mode="integer")
    save_program(program, tmp_path / "ic.mlir")  # (parsing renames SSA names like x__73)
    again = load_program(tmp_path / "ic.mlir")
    save_program(again, tmp_path / "ic2.mlir")
    save_program(load_program(tmp_path / "ic2.mlir"), tmp_path / "ic3.mlir")
    assert (tmp_path / "ic3.mlir").read_text() == (tmp_path / "ic2.mlir").read_text()
    save_program(again, tmp_path / "ic_generic.mlir", generic=True)
    generic = load_program(tmp_path / "ic_generic.mlir")
    assert str(generic.module) == str(again.module)
    for i in (1, 5, 16):
        np.testing.assert_array_equal(run(generic, [io["x_int8"][i]])[0], io["y_int8"][i])


def test_fully_connected_is_fused_with_its_bias_add() -> None:
    onnx_path, _ = mlperf_files("ad")
    for mode in REFERENCE:
        program = load(onnx_path, requant_mode=mode)
        linears = [op for op in program.module.walk() if isinstance(op, nn.LinearOp)]
        assert len(linears) == 10 and all(op.bias is not None for op in linears)
        assert _op_names(program) <= {
            "nn.weight",
            "nn.linear",
            "nn.requantize",
            "func.func",
            "func.return",
            "builtin.module",
        }


def test_unknown_requant_mode_is_an_input_error() -> None:
    with pytest.raises(InputError, match="requant_mode must be one of onnx, integer"):
        load(_add_model(), requant_mode="tflite")


# ---- tiny synthetic QDQ graphs -------------------------------------------------------------


def _onnx_runtime(model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    """onnxruntime without graph optimizations: plain ONNX semantics (float ops between DQ and
    Q). Its optimized QDQ fusions (e.g. QLinearAveragePool) round differently on some inputs."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options)


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _qparams(prefix: str, scale: float, zp: int) -> list[TensorProto]:
    return [
        numpy_helper.from_array(np.array(scale, np.float32), f"{prefix}_s"),
        numpy_helper.from_array(np.array(zp, np.int8), f"{prefix}_z"),
    ]


def _dq(name: str, prefix: str) -> onnx.NodeProto:
    return helper.make_node("DequantizeLinear", [name, f"{prefix}_s", f"{prefix}_z"], [f"{name}_f"])


def _q(name: str, prefix: str, out: str) -> onnx.NodeProto:
    return helper.make_node("QuantizeLinear", [name, f"{prefix}_s", f"{prefix}_z"], [out])


A_S, A_Z, B_S, B_Z, Y_S, Y_Z = 0.0712, 3, 0.0405, -20, 0.0931, -128


def _add_model() -> onnx.ModelProto:
    """int8 DQ(a) + DQ(b) -> Relu -> Q on [64, 256] and [256] (b broadcast)."""
    nodes = [
        _dq("a", "a"),
        _dq("b", "b"),
        helper.make_node("Add", ["a_f", "b_f"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["sum_relu"]),
        _q("sum_relu", "y", "y"),
    ]
    inputs = [
        helper.make_tensor_value_info("a", TensorProto.INT8, [64, 256]),
        helper.make_tensor_value_info("b", TensorProto.INT8, [256]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT8, [64, 256])]
    inits = _qparams("a", A_S, A_Z) + _qparams("b", B_S, B_Z) + _qparams("y", Y_S, Y_Z)
    return _model(nodes, inputs, outputs, inits)


def _scalar_mbqm(x: int, multiplier: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier (double rounding) on one Python int."""
    x <<= max(shift, 0)
    n = x * multiplier + ((1 << 30) if x * multiplier >= 0 else 1 - (1 << 30))
    high = abs(n) >> 31 if n >= 0 else -(abs(n) >> 31)  # C truncating division by 2^31
    exponent = max(-shift, 0)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> exponent) + (1 if (high & mask) > threshold else 0)


def _tflite_add_reference(a: int, b: int) -> int:
    """TFLite `AddFunc` for one element, written out from TFLite's Prepare/Eval."""
    twice_max = 2.0 * max(float(np.float32(A_S)), float(np.float32(B_S)))
    ma, sa = quantize_multiplier(float(np.float32(A_S)) / twice_max)
    mb, sb = quantize_multiplier(float(np.float32(B_S)) / twice_max)
    my, sy = quantize_multiplier(twice_max / ((1 << 20) * float(np.float32(Y_S))))
    raw = _scalar_mbqm((a - A_Z) * (1 << 20), ma, sa) + _scalar_mbqm((b - B_Z) * (1 << 20), mb, sb)
    out = _scalar_mbqm(raw, my, sy) + Y_Z
    return min(127, max(Y_Z, out))  # fused ReLU: [quantize(0), 127]


def test_qdq_add_becomes_tflite_integer_add() -> None:
    codes = np.arange(-128, 128).astype(np.int8)
    a = np.repeat(codes[::4, None], 256, axis=1)  # b broadcast: every 4th code x every code
    b = codes
    program = load(_add_model(), requant_mode="integer")
    (op,) = [op for op in program.module.walk() if isinstance(op, nn.QAddOp)]
    assert op.get("clamp") == [Y_Z, 127] and op.get("lhs_zero_point") == A_Z
    got = run(program, [a, b])[0]
    pairs = zip(*(v.reshape(-1) for v in np.broadcast_arrays(a, b)), strict=True)
    want = np.array([_tflite_add_reference(int(x), int(y)) for x, y in pairs]).reshape(a.shape)
    np.testing.assert_array_equal(got, want)
    # onnx mode keeps ONNX semantics: float add between DQ and Q, as onnxruntime
    onnx_mode = load(_add_model())
    assert "nn.qadd" not in _op_names(onnx_mode)
    session = _onnx_runtime(_add_model())
    np.testing.assert_array_equal(run(onnx_mode, [a, b])[0], session.run(None, {"a": a, "b": b})[0])


def _softmax_model(scale: float, n: int) -> onnx.ModelProto:
    nodes = [
        _dq("x", "x"),
        helper.make_node("Softmax", ["x_f"], ["p"], axis=-1),
        _q("p", "y", "y"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, [1, n])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT8, [1, n])]
    inits = _qparams("x", scale, 5) + _qparams("y", 1.0 / 256.0, -128)
    return _model(nodes, inputs, outputs, inits)


# TFLite Micro's SOFTMAX on real MLPerf Tiny inputs (ic sample 1, vww sample 0):
# (input scale, input codes, TFLM output codes).
TFLM_SOFTMAX = [
    (
        0.17185351,
        [-9, -28, 9, 6, 0, -10, -10, -34, -37, -16],
        [-122, -128, 3, -50, -100, -123, -123, -128, -128, -126],
    ),
    (0.014636219, [-68, 63], [-95, 95]),
    (
        0.14469251,
        [-15, -22, -55, -61, 47, 118, -49, -51, 1, -49, -82, 31],
        [-128, -128, -128, -128, -128, 127, -128, -128, -128, -128, -128, -128],
    ),
]


@pytest.mark.parametrize("case", range(len(TFLM_SOFTMAX)))
def test_qdq_softmax_becomes_tflite_integer_softmax(case: int) -> None:
    scale, codes, want = TFLM_SOFTMAX[case]
    program = load(_softmax_model(scale, len(codes)), requant_mode="integer")
    assert "nn.qsoftmax" in _op_names(program) and "nn.softmax" not in _op_names(program)
    got = run(program, [np.array([codes], np.int8)])[0]
    np.testing.assert_array_equal(got, np.array([want], np.int8))
    # other output parameters than TFLite's (1/256, -128) stay float between DQ and Q
    model = _softmax_model(scale, len(codes))
    model.graph.initializer[-2].CopyFrom(
        numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), "y_s")
    )
    assert "nn.qsoftmax" not in _op_names(load(model, requant_mode="integer"))


def _avgpool_model() -> onnx.ModelProto:
    nodes = [
        _dq("x", "x"),
        helper.make_node("AveragePool", ["x_f"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        _q("p", "x", "y"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 1, 2, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 1, 1, 2])]
    return _model(nodes, inputs, outputs, _qparams("x", 0.1, -3))


def test_qdq_average_pool_averages_codes_in_integer_mode() -> None:
    # windows sum to 2 and -6 codes: averages 0.5 and -1.5 round half away from zero (TFLM)
    x = np.array([[[[1, 0, -1, -2], [0, 1, -1, -2]]]], np.int8)
    program = load(_avgpool_model(), requant_mode="integer")
    assert _op_names(program) >= {"nn.avgpool2d"} and "nn.quantize" not in _op_names(program)
    np.testing.assert_array_equal(run(program, [x])[0], [[[[1, -2]]]])
    onnx_mode = load(_avgpool_model())
    session = _onnx_runtime(_avgpool_model())
    want = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(run(onnx_mode, [x])[0], want)


def _fc_model() -> onnx.ModelProto:
    """tf2onnx's FULLY_CONNECTED: DQ(x) @ DQ(W) + DQ(int32 bias) -> Relu -> Q."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, size=(6, 5)).astype(np.int8)
    bias = rng.integers(-3000, 3000, size=(5,)).astype(np.int32)
    sx, sw, sy = 0.05, 0.0123, 0.021
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array(sw, np.float32), "w_s"),
        numpy_helper.from_array(np.array(0, np.int8), "w_z"),
        numpy_helper.from_array(np.array(np.float32(sx) * np.float32(sw), np.float32), "b_s"),
        numpy_helper.from_array(np.array(0, np.int32), "b_z"),
        *_qparams("x", sx, 7),
        *_qparams("y", sy, -128),
    ]
    nodes = [
        _dq("x", "x"),
        helper.make_node("DequantizeLinear", ["w", "w_s", "w_z"], ["w_f"]),
        helper.make_node("DequantizeLinear", ["bias", "b_s", "b_z"], ["bias_f"]),
        helper.make_node("MatMul", ["x_f", "w_f"], ["mm"]),
        helper.make_node("Add", ["mm", "bias_f"], ["mm_b"]),
        helper.make_node("Relu", ["mm_b"], ["act"]),
        _q("act", "y", "y"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, [4, 6])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT8, [4, 5])]
    return _model(nodes, inputs, outputs, inits)


@pytest.mark.parametrize("mode", sorted(REFERENCE))
def test_qdq_matmul_bias_add_is_one_integer_linear(mode: str) -> None:
    program = load(_fc_model(), requant_mode=mode)
    assert _op_names(program) == {
        "builtin.module",
        "func.func",
        "func.return",
        "nn.weight",
        "nn.linear",
        "nn.requantize",
    }
    (rq,) = [op for op in program.module.walk() if isinstance(op, nn.RequantizeOp)]
    sx, sw, sy = np.float32(0.05), np.float32(0.0123), np.float32(0.021)
    if mode == "integer":  # TFLite: double arithmetic on the float32 scales
        assert rq.get("scale") == [float(sx) * float(sw) / float(sy)]
    else:  # onnxruntime: float32 arithmetic
        assert rq.get("scale") == [float(sx * sw / sy)]
    assert rq.get("clamp") == [-128, 127]
    x = np.random.default_rng(5).integers(-128, 128, size=(4, 6)).astype(np.int8)
    got = run(program, [x])[0]
    if mode == "onnx":
        session = _onnx_runtime(_fc_model())
        np.testing.assert_array_equal(got, session.run(None, {"x": x})[0])
    else:
        w = numpy_helper.to_array(_fc_model().graph.initializer[0]).astype(np.int64)
        b = numpy_helper.to_array(_fc_model().graph.initializer[1]).astype(np.int64)
        acc = (x.astype(np.int64) - 7) @ w + b
        m, s = quantize_multiplier(float(sx) * float(sw) / float(sy))
        want = [max(-128, min(127, _scalar_mbqm(int(v), m, s) - 128)) for v in acc.reshape(-1)]
        np.testing.assert_array_equal(got.reshape(-1), want)
