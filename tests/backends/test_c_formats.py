"""C backend, number formats beyond 8-bit integers: fixed point (`fixp<w,f>` / `ufixp<w,f>`
codes, int16 storage above 8 bits, power-of-two requantization by shifts), posit weights
(posit<4,es> two codes per byte, posit<8,es> one, decoded by a table), and f16 storage of
float graphs. Codes bit-exact with the golden interpreter through the generated harness, on
the host and (slow tests) on the Cortex-M4 under QEMU."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from op_helpers import In, W, one_op
from strategies import FLOAT_OPS, build_program, fixp_graphs, float_graphs
from test_c_backend import check_c, run_tool
from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType
from xdsl.ir import SSAValue

from ircomp.backends.c import arena_plan, build, generate, measure_cortex_m4
from ircomp.backends.c.cortex_m4 import ARM_CC, QEMU
from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType, UFixPType
from ircomp.errors import InputError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program

I8, I16, I32 = IntegerType(8), IntegerType(16), IntegerType(32)
F16 = Float16Type()
C_FLOAT_OPS = tuple(op for op in FLOAT_OPS if op not in ("batchnorm", "split"))  # no C kernels
needs_arm = pytest.mark.skipif(
    shutil.which(ARM_CC) is None or shutil.which(QEMU) is None,
    reason="needs Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm",
)


# ---- fixed point --------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=fixp_graphs())
def test_random_fixp_graphs(tmp_path_factory, spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    check_c(program, tmp_path_factory.mktemp("fx") / "m", inputs=inputs, cc=["gcc"])


def fixp_program(mode: str) -> tuple[Program, list[np.ndarray]]:
    """float -> fixp<12,5> (per channel) and ufixp<10,3>; add (alignment shift), mul, sub on
    codes with wraps; relu / clip / maxpool / avgpool on fixp codes; requantize fixp<16,6>
    -> fixp<8,2> (a power-of-two scale: shifts) and by 0.3 (the general path), int16
    elementwise; dequantize per channel; linear fixp x fixp into fixp<32,8>."""
    rng = np.random.default_rng(61)
    g = GraphBuilder()
    x = g.input([1, 3, 4, 6])
    a = g.op(nn.QuantizeOp, [x], FixPType(12, 5), scale=[0.5, 1.0, 0.25], axis=1)
    b = g.op(nn.QuantizeOp, [x], UFixPType(10, 3), scale=[0.75])
    s = g.op(nn.AddOp, [a, b], FixPType(14, 5))
    m = g.op(nn.MulOp, [a, g.weight("m", rng.integers(-40, 40, (6,)), FixPType(7, 2))],
             FixPType(16, 7))  # fmt: skip
    d = g.op(nn.SubOp, [s, a], FixPType(9, 5))  # wraps to 9 bits
    r = g.op(nn.ReluOp, [d])
    c = g.op(nn.ClipOp, [m], min=-3000.0, max=2500.0)
    p = g.op(nn.MaxPool2dOp, [c], kernel=[2, 2], strides=[2, 2])
    q = g.op(nn.AvgPool2dOp, [s], kernel=[2, 3], strides=[1, 2], padding=[1, 1, 0, 1])
    req = g.op(nn.RequantizeOp, [c], FixPType(8, 2), scale=[2.0**-5], mode=mode)
    req2 = g.op(nn.RequantizeOp, [c], FixPType(8, 2), scale=[0.3], mode=mode)
    wide = g.op(nn.RequantizeOp, [req], I16, scale=[1.0], mode=mode)
    i16 = g.op(nn.AddOp, [wide, g.weight("o", rng.integers(-9, 9, (6,)), I8)], I16)
    deq = g.op(nn.DequantizeOp, [s], Float32Type(), scale=[0.5, 2.0, 0.125], axis=1)
    flat = g.op(nn.ReshapeOp, [q], shape=[12, -1])
    k = flat.type.get_shape()[1]  # type: ignore[attr-defined]
    lin = g.op(
        nn.LinearOp,
        [flat, g.weight("fc.w", rng.integers(-128, 128, (5, k)), FixPType(8, 3)),
         g.weight("fc.b", rng.integers(-5000, 5000, (5,)), FixPType(32, 8))],
    )  # fmt: skip
    program = g.finish([r, p, req, req2, i16, deq, lin])
    inputs = [(rng.normal(size=(1, 3, 4, 6)) * 20).astype(np.float32)]
    inputs[0].reshape(-1)[:4] = [0.3125, -0.15625, 1e9, -1e9]  # ties and saturation
    return program, inputs


@pytest.mark.parametrize("mode", ["integer", "onnx"])
def test_fixp_ops_match_interpreter(tmp_path: Path, mode: str) -> None:
    program, inputs = fixp_program(mode)
    check_c(program, tmp_path / "m", inputs, cc=["gcc"])
    text = (tmp_path / "m" / "model.c").read_text()
    assert "int16_t* y" in text  # fixp<12,5> / fixp<16,7> codes in int16
    assert "ircomp_encode_d(" in text
    shift = "ircomp_half_up(" if mode == "integer" else "ircomp_rhe_shift("
    assert shift in text  # the power-of-two requantize by shifts


@pytest.mark.parametrize("mode", ["integer", "onnx"])
@pytest.mark.parametrize(("width", "scale"), [(32, 2.0**-10), (16, 2.0**-3), (24, 2.0**-30)])
def test_shift_requantize_on_extreme_codes(
    tmp_path: Path, mode: str, width: int, scale: float
) -> None:
    """Power-of-two requantization by shifts equals the interpreter's MBQM / float rounding at
    the ends of the range and on every kind of tie."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    edges = [lo, lo + 1, hi, hi - 1, 0, 1, -1, 2, -2, 3, -3]
    step = round(1 / scale)
    ties = [t * step // 2 + d for t in range(-7, 8) for d in (-1, 0, 1)]
    codes = np.array(edges + [c for c in ties if lo <= c <= hi], dtype=np.int64)
    codes = np.concatenate([codes, np.random.default_rng(3).integers(lo, hi, 200)])
    storage = np.int32 if width > 16 else np.int16
    program, inputs = one_op(
        nn.RequantizeOp,
        [In(codes.astype(storage), FixPType(width, 10))],
        FixPType(16, 0),
        scale=[scale],
        mode=mode,
    )
    check_c(program, tmp_path / "m", inputs, cc=["gcc"])


# ---- posit weights --------------------------------------------------------------------------


def posit_program() -> tuple[Program, list[np.ndarray]]:
    """fixp activations with posit weights: linear with posit<4,1> (all 15 real codes, an
    odd count: the last byte half used), conv2d with posit<4,0>, matmul with posit<8,0> (one
    code per byte), then requantized to fixp<8,*>."""
    rng = np.random.default_rng(71)
    real4 = np.array([c for c in range(16) if c != 8])
    g = GraphBuilder()
    x = g.input([3, 5], FixPType(8, 3))
    w1 = rng.choice(real4, size=(3, 5))
    w1.reshape(-1)[:15] = real4
    lin = g.op(nn.LinearOp, [x, g.weight("fc.w", w1, PositType(4, 1))])
    y1 = g.op(nn.RequantizeOp, [lin], FixPType(8, 2), scale=[2.0**-5], mode="integer")
    img = g.input([1, 2, 5, 5], FixPType(8, 4))
    wc = rng.choice(real4, size=(3, 2, 3, 3))
    conv = g.op(nn.Conv2dOp, [img, g.weight("c.w", wc, PositType(4, 0))], padding=[1, 1, 1, 1])
    y2 = g.op(nn.RequantizeOp, [conv], FixPType(8, 3), scale=[0.37], mode="onnx")
    real8 = np.array([c for c in range(256) if c != 128])
    wm = rng.choice(real8, size=(5, 4))
    mm = g.op(nn.MatMulOp, [x, g.weight("m.w", wm, PositType(8, 0))])
    y3 = g.op(nn.RequantizeOp, [mm], FixPType(16, 4), scale=[2.0**-5], mode="integer")
    program = g.finish([y1, y2, y3])
    inputs = [
        rng.integers(-128, 128, size=(3, 5)).astype(np.int8),
        rng.integers(-128, 128, size=(1, 2, 5, 5)).astype(np.int8),
    ]
    return program, inputs


def test_posit_weights_match_interpreter(tmp_path: Path) -> None:
    program, inputs = posit_program()
    check_c(program, tmp_path / "m", inputs, cc=["gcc"])
    text = (tmp_path / "m" / "model.c").read_text()
    assert text.count("codes packed two per byte, low nibble first") == 2
    assert text.count("one code per byte") == 1
    assert "static const uint8_t w_fc_w[9]" in text  # 3 rows of 5 codes, 3 bytes a row
    assert "static const uint8_t w_c_w[27]" in text  # 54 codes in 27 bytes
    assert text.count("_posit[16]") == 2 and text.count("_posit[256]") == 1


def test_posit_weights_refused_where_unsupported() -> None:
    x = In(np.zeros((2, 3), np.int8), FixPType(8, 3))
    program, _ = one_op(nn.LinearOp, [x, W(np.full((2, 3), 5), PositType(16, 1))])
    with pytest.raises(InputError, match=r"nn.weight 'layer.w1'.*posit<16,1>.*up to 8 bits"):
        generate(program)
    nar = np.array([[1, 2, 8], [3, 4, 5]])
    program, _ = one_op(nn.LinearOp, [x, W(nar, PositType(4, 0))])
    with pytest.raises(InputError, match=r"'layer.w1'.*posit<4,0> weights hold NaR"):
        generate(program)
    g = GraphBuilder()
    w = g.weight("p", np.array([1, 2, 3]), PositType(4, 1))
    d = g.op(nn.DequantizeOp, [w], Float32Type(), scale=[1.0], name="to_float")
    with pytest.raises(InputError, match=r"nn.dequantize 'to_float'.*only as a linear"):
        generate(g.finish([d]))


# ---- f16 storage ---------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=float_graphs(formats=("f16",), ops=C_FLOAT_OPS, max_nodes=6))
def test_random_f16_graphs(tmp_path_factory, spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    line = check_c(program, tmp_path_factory.mktemp("h") / "m", inputs=inputs, cc=["gcc"])
    assert "PASS" in line


def f16_program(ftype=F16) -> tuple[Program, list[np.ndarray]]:  # type: ignore[no-untyped-def]
    """An f16 graph through every float kernel: conv (groups, bias), hardtanh, tanh, sigmoid,
    mul, div, sub, max / average pools (ceil mode, padding), global average pool, concat,
    reshape, transpose, matmul, linear, softmax; and the f16 <-> codes casts (int8 quantize /
    dequantize per channel, fixp quantize / dequantize)."""
    rng = np.random.default_rng(81)
    g = GraphBuilder()
    dtype = np.float16 if ftype == F16 else np.float32

    def h(name: str, shape: tuple[int, ...], scale: float = 1.0) -> SSAValue:
        return g.weight(name, (rng.normal(size=shape) * scale).astype(dtype), ftype)

    x = g.input([2, 4, 9, 9], ftype)
    y = g.op(nn.Conv2dOp, [x, h("c.w", (4, 2, 3, 3)), h("c.b", (4,))], strides=[2, 1],
             padding=[1, 2, 0, 1], dilations=[1, 2], groups=2, name="conv")  # fmt: skip
    y = g.op(nn.HardTanhOp, [y], min=-2.0, max=2.0)
    t = g.op(nn.TanhOp, [y])
    s = g.op(nn.SigmoidOp, [y])
    y = g.op(nn.MulOp, [t, s])
    y = g.op(nn.DivOp, [y, g.weight("d", (rng.normal(size=(4, 1, 1)) + 2).astype(dtype), ftype)])
    y = g.op(nn.SubOp, [y, g.weight("sh", np.array([0.25], dtype), ftype)])
    m = g.op(nn.MaxPool2dOp, [y], kernel=[2, 2], strides=[1, 2], padding=[1, 0, 0, 1],
             ceil_mode=True)  # fmt: skip
    a = g.op(nn.AvgPool2dOp, [m], kernel=[2, 2], strides=[2, 2], ceil_mode=True)
    gp = g.op(nn.GlobalAvgPool2dOp, [y])
    cat = g.op(nn.ConcatOp, [g.op(nn.FlattenOp, [a]), g.op(nn.FlattenOp, [gp])], axis=1)
    r = g.op(nn.ReshapeOp, [cat], shape=[2, -1, 4])
    tr = g.op(nn.TransposeOp, [r], perm=[0, 2, 1])
    k = tr.type.get_shape()[-1]  # type: ignore[attr-defined]
    mm = g.op(nn.MatMulOp, [tr, h("proj", (k, 3), 0.3)])
    out = g.op(nn.LinearOp, [g.op(nn.ReluOp, [mm]), h("head.w", (5, 3)), h("head.b", (5,))])
    sm = g.op(nn.SoftmaxOp, [out], axis=1)
    q = g.op(nn.QuantizeOp, [y], I8, scale=[0.02, 0.03, 0.05, 0.01], zero_point=[3], axis=1)
    dq = g.op(nn.DequantizeOp, [q], ftype, scale=[0.02, 0.03, 0.05, 0.01], zero_point=[3], axis=1)
    fq = g.op(nn.QuantizeOp, [dq], FixPType(10, 7), scale=[0.5])
    fd = g.op(nn.DequantizeOp, [fq], ftype, scale=[0.75])
    program = g.finish([sm, mm, fd])
    return program, [rng.normal(size=(2, 4, 9, 9)).astype(dtype)]


def test_f16_graph_matches_interpreter(tmp_path: Path) -> None:
    program, inputs = f16_program()
    line = check_c(program, tmp_path / "m", inputs, cc=["gcc"])
    assert "PASS" in line
    # the harness also counts outputs whose f16 bits differ from the interpreter's: none for
    # the casts; the float32 sums (BLAS order in the interpreter) may flip a rounding, rarely
    out = run_tool(["./model_gcc"], tmp_path / "m").stdout
    differ = {n: (int(d), int(t)) for n, d, t in re.findall(r"(out\d): .*: (\d+) of (\d+)", out)}
    assert set(differ) == {"out0", "out1", "out2"} and differ["out2"] == (0, 256)
    assert all(d <= t // 10 for d, t in differ.values()), differ
    text = (tmp_path / "m" / "model.c").read_text()
    assert "ircomp_h2f(" in text and "ircomp_f2h(" in text and "ircomp_d2h(" in text
    assert "typedef uint16_t ircomp_f16;" in (tmp_path / "m" / "model.h").read_text()
    # f16 storage: every float tensor of the plan takes half the bytes of the float32 graph's
    half = [size for label, _, size, *_ in arena_plan(program).entries if "quantize" not in label]
    full, _ = f16_program(Float32Type())
    single = [size for label, _, size, *_ in arena_plan(full).entries if "quantize" not in label]
    assert [2 * b for b in half] == single


# ---- Cortex-M4 ------------------------------------------------------------------------------


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("which", ["fixp", "posit", "f16"])
def test_formats_on_cortex_m4(tmp_path: Path, which: str) -> None:
    makers = {"fixp": lambda: fixp_program("integer"), "posit": posit_program, "f16": f16_program}
    program, inputs = makers[which]()
    build(program, tmp_path / "m", inputs=inputs)
    report = measure_cortex_m4(tmp_path / "m", count=False)
    assert report["status"] == 0 and report["passed"], report["output"]
