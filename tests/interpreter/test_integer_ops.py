"""Kernels on codes against straightforward scalar Python references (spec/numerics.md 5).

References use plain Python ints and `fractions.Fraction`, looping over a few elements.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from interp_helpers import In, W, run_op
from xdsl.dialects.builtin import Float32Type, IntegerType, Signedness

from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType, UFixPType
from ircomp.errors import InputError

I8, I16, I32 = IntegerType(8), IntegerType(16), IntegerType(32)
U8 = IntegerType(8, Signedness.UNSIGNED)
F32 = Float32Type()

# posit<4,1>, transcribed from spec/numerics.md section 4 (code 8 is NaR)
POSIT41 = {
    0: Fraction(0), 1: Fraction(1, 16), 2: Fraction(1, 4), 3: Fraction(1, 2), 4: Fraction(1),
    5: Fraction(2), 6: Fraction(4), 7: Fraction(16), 9: Fraction(-16), 10: Fraction(-4),
    11: Fraction(-2), 12: Fraction(-1), 13: Fraction(-1, 2), 14: Fraction(-1, 4),
    15: Fraction(-1, 16),
}  # fmt: skip


def wrap(value: int, width: int, signed: bool = True) -> int:
    value %= 1 << width
    return value - (1 << width) if signed and value >= 1 << (width - 1) else value


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


# ---- MAC ops ----------------------------------------------------------------------------------


def test_int8_linear_with_zero_points_and_bias(rng: np.random.Generator) -> None:
    x = rng.integers(-128, 128, (3, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (4, 6)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, 4).astype(np.int32)
    got = run_op(
        nn.LinearOp,
        [In(x, I8), W(w, I8), W(bias, I32)],
        input_zero_point=-5,
        weight_zero_point=3,
    )
    assert got.dtype == np.int32
    for i in range(3):
        for o in range(4):
            acc = sum((int(x[i, k]) + 5) * (int(w[o, k]) - 3) for k in range(6)) + int(bias[o])
            assert got[i, o] == acc


def test_int8_conv2d_with_zero_points_padding_groups(rng: np.random.Generator) -> None:
    n, c, h, wd, o, g, k = 1, 4, 5, 6, 4, 2, 3
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (o, c // g, k, k)).astype(np.int8)
    bias = rng.integers(-1000, 1000, o).astype(np.int32)
    zx, zw, stride, (top, left, bottom, right) = 7, -2, (2, 1), (1, 2, 0, 1)
    got = run_op(
        nn.Conv2dOp,
        [In(x, I8), W(w, I8), W(bias, I32)],
        input_zero_point=zx,
        weight_zero_point=zw,
        strides=list(stride),
        padding=[top, left, bottom, right],
        groups=g,
    )
    oh = (h + top + bottom - k) // stride[0] + 1
    ow = (wd + left + right - k) // stride[1] + 1
    assert got.shape == (n, o, oh, ow)
    per_group = o // g
    for oc in range(o):
        group = oc // per_group
        for i in range(oh):
            for j in range(ow):
                acc = int(bias[oc])
                for ci in range(c // g):
                    for di in range(k):
                        for dj in range(k):
                            r, s = i * stride[0] + di - top, j * stride[1] + dj - left
                            if 0 <= r < h and 0 <= s < wd:  # padding is the zero point
                                xv = int(x[0, group * (c // g) + ci, r, s]) - zx
                                acc += xv * (int(w[oc, ci, di, dj]) - zw)
                assert got[0, oc, i, j] == acc


def test_narrow_accumulator_wraps(rng: np.random.Generator) -> None:
    x = np.full((2, 8), 127, np.int8)
    x[1] = -128
    w = np.full((3, 8), 127, np.int8)
    w[1] = -128
    got = run_op(nn.LinearOp, [In(x, I8), W(w, I8)], I16)
    assert got.dtype == np.int16
    for i in range(2):
        for o in range(3):
            exact = sum(int(x[i, k]) * int(w[o, k]) for k in range(8))
            assert got[i, o] == wrap(exact, 16)
    assert (got != (x.astype(np.int64) @ w.T.astype(np.int64))).any()  # it did wrap


def test_wide_products_stay_exact() -> None:
    """Sums beyond 2**53 (no float64 shortcut) are exact, then wrapped to 32 bits."""
    x = np.array([[2**31 - 1, -(2**31), 2**31 - 1]], np.int32)
    w = np.array([[2**31 - 1, 2**31 - 1, -(2**31)]], np.int32)
    got = run_op(nn.LinearOp, [In(x, I32), W(w, I32)], I32)
    exact = sum(int(a) * int(b) for a, b in zip(x[0], w[0], strict=True))
    assert got[0, 0] == wrap(exact, 32)


def test_fixp_linear_is_exact(rng: np.random.Generator) -> None:
    tx, tw, to = FixPType(8, 4), FixPType(6, 5), FixPType(24, 9)
    x = rng.integers(-128, 128, (2, 5)).astype(np.int8)
    w = rng.integers(-32, 32, (3, 5)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 3).astype(np.int32)
    got = run_op(nn.LinearOp, [In(x, tx), W(w, tw), W(bias, to)], to)
    for i in range(2):
        for o in range(3):
            value = sum(
                Fraction(int(x[i, k]), 2**4) * Fraction(int(w[o, k]), 2**5) for k in range(5)
            ) + Fraction(int(bias[o]), 2**9)
            assert Fraction(int(got[i, o]), 2**9) == value


def test_posit_weight_times_fixp_linear_is_exact(rng: np.random.Generator) -> None:
    tx, tw = FixPType(8, 3), PositType(4, 1)
    to = FixPType(32, 3 + 4)  # posit_frac_bits(4, 1) = 4
    x = rng.integers(-128, 128, (3, 7)).astype(np.int8)
    codes = [c for c in range(16) if c != 8]
    w = rng.choice(codes, (5, 7)).astype(np.uint8)
    got = run_op(nn.LinearOp, [In(x, tx), W(w, tw)], to)
    for i in range(3):
        for o in range(5):
            value = sum(Fraction(int(x[i, k]), 2**3) * POSIT41[int(w[o, k])] for k in range(7))
            assert Fraction(int(got[i, o]), 2**7) == value


def test_posit_nar_weight_is_an_error() -> None:
    x = np.ones((1, 2), np.int8)
    w = np.array([[8, 1]], np.uint8)
    with pytest.raises(InputError, match="NaR"):
        run_op(nn.LinearOp, [In(x, FixPType(8, 3)), W(w, PositType(4, 1))], FixPType(32, 7))


def test_integer_matmul_with_zero_points(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (2, 3, 4)).astype(np.uint8)
    b = rng.integers(-128, 128, (4, 2)).astype(np.int8)
    got = run_op(nn.MatMulOp, [In(a, U8), In(b, I8)], input_zero_point=128, weight_zero_point=1)
    for n in range(2):
        for i in range(3):
            for j in range(2):
                want = sum((int(a[n, i, k]) - 128) * (int(b[k, j]) - 1) for k in range(4))
                assert got[n, i, j] == want


# ---- requantize -------------------------------------------------------------------------------


def ref_onnx_requant(acc: int, scale: float, zp: int, lo: int, hi: int) -> int:
    product = float(np.float32(acc) * np.float32(scale))  # one float32 multiplication
    return min(max(round(product) + zp, lo), hi)  # round(): half to even


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    m = math.floor(abs(q) * 2**31 + 0.5) * (1 if q > 0 else -1)
    if m == 2**31:
        m, shift = m // 2, shift + 1
    if shift < -31:
        return 0, 0
    return m, shift


def ref_srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    total = ab + nudge
    return abs(total) // 2**31 * (1 if total >= 0 else -1)  # C division truncates


def ref_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder, threshold = x & mask, (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def ref_integer_requant(acc: int, scale: float, zp: int, lo: int, hi: int) -> int:
    m, shift = ref_quantize_multiplier(scale)
    left, right = max(shift, 0), max(-shift, 0)
    scaled = ref_rdbpot(ref_srdhm(wrap(acc << left, 32), m), right)
    return min(max(scaled + zp, lo), hi)


REFS = {"onnx": ref_onnx_requant, "integer": ref_integer_requant}


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_requantize_spec_examples(mode: str) -> None:
    acc = np.array([8, 5, -199959], np.int32)
    scale = float(np.float32(0.3))
    expected = {"onnx": [2, 2, -2459], "integer": [3, 3, -2460]}[mode]
    for i, s in enumerate([scale, 0.5, float(np.float32(0.0123))]):
        got = run_op(nn.RequantizeOp, [In(acc[i : i + 1], I32)], I16, scale=[s], mode=mode)
        assert got.tolist() == [expected[i]]


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_requantize_per_channel_with_clamp_and_zero_points(
    rng: np.random.Generator, mode: str
) -> None:
    acc = rng.integers(-40000, 40000, (3, 4, 2)).astype(np.int32)
    acc[0, 0, 0] = 2**31 - 7  # the largest int32 once the input zero point is taken off
    scales = [0.0031, 0.25, 0.0007, 1.7]
    zps = [3, -4, 0, 10]
    got = run_op(
        nn.RequantizeOp,
        [In(acc, I32)],
        I8,
        scale=scales,
        zero_point=zps,
        axis=1,
        mode=mode,
        input_zero_point=-6,
        clamp=[-100, 90],
    )
    assert got.dtype == np.int8
    for idx in np.ndindex(acc.shape):
        c = idx[1]
        want = REFS[mode](int(acc[idx]) + 6, scales[c], zps[c], -100, 90)
        assert got[idx] == want, idx


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_requantize_default_clamp_is_the_result_range(rng: np.random.Generator, mode) -> None:
    acc = rng.integers(-(2**20), 2**20, 50).astype(np.int32)
    got = run_op(nn.RequantizeOp, [In(acc, I32)], U8, scale=[0.003], zero_point=[100], mode=mode)
    assert got.dtype == np.uint8
    assert got.tolist() == [REFS[mode](int(a), 0.003, 100, 0, 255) for a in acc]


def test_requantize_rejects_accumulators_beyond_int32() -> None:
    acc = np.array([2**31 - 1], np.int32)
    with pytest.raises(InputError, match=r"nn\.requantize.*int32"):
        run_op(nn.RequantizeOp, [In(acc, I32)], I8, scale=[0.5], mode="onnx", input_zero_point=-1)


# ---- quantize / dequantize --------------------------------------------------------------------


def test_quantize_dequantize_per_channel(rng: np.random.Generator) -> None:
    x = (rng.standard_normal((2, 3, 4)) * 20).astype(np.float32)
    x[0, 0, :3] = [0.25, 0.75, -0.25]  # ties at scale 0.5
    scales, zps = [0.5, 0.1, 0.37], [0, -3, 7]
    q = run_op(nn.QuantizeOp, [In(x)], I8, scale=scales, zero_point=zps, axis=1)
    assert q.dtype == np.int8
    for idx in np.ndindex(x.shape):
        s, z = scales[idx[1]], zps[idx[1]]
        want = min(max(round(float(np.float32(x[idx]) / np.float32(s))) + z, -128), 127)
        assert q[idx] == want, idx
    y = run_op(nn.DequantizeOp, [In(q, I8)], F32, scale=scales, zero_point=zps, axis=1)
    assert y.dtype == np.float32
    for idx in np.ndindex(x.shape):
        s, z = scales[idx[1]], zps[idx[1]]
        assert y[idx] == np.float32(int(q[idx]) - z) * np.float32(s)


def test_quantize_to_fixp_and_posit_uses_the_format_encoding() -> None:
    x = np.array([0.3, -1.26, 100.0, 0.0], np.float32)
    q = run_op(nn.QuantizeOp, [In(x)], FixPType(8, 4), scale=[0.5])
    # x / 0.5 on the 2**-4 grid, ties to even, saturating at 127
    assert q.tolist() == [round(0.6 * 16), round(float(np.float32(-1.26)) * 2 * 16), 127, 0]
    p = run_op(nn.QuantizeOp, [In(x)], PositType(4, 1), scale=[1.0])
    assert p.dtype == np.uint8
    assert p.tolist() == [2, 12, 7, 0]  # 0.25, -1 (the -1/-2 tie point is -1.5), maxpos, 0
    d = run_op(nn.DequantizeOp, [In(p, PositType(4, 1))], F32, scale=[2.0])
    assert d.tolist() == [0.5, -2.0, 32.0, 0.0]


# ---- pooling, relu, clip on codes -------------------------------------------------------------


def ref_round_average(total: int, count: int) -> int:
    q = Fraction(total, count)
    return math.floor(abs(q) + Fraction(1, 2)) * (1 if q >= 0 else -1)


@pytest.mark.parametrize("include_pad", [False, True])
def test_integer_avgpool_rounds_half_away_from_zero(include_pad: bool) -> None:
    x = np.array([[[[1, 2, -3], [-4, 5, 6], [-7, -9, 0]]]], np.int8)
    got = run_op(
        nn.AvgPool2dOp,
        [In(x, I8)],
        kernel=[2, 2],
        strides=[1, 1],
        padding=[1, 1, 0, 0],
        count_include_pad=include_pad,
    )
    assert got.dtype == np.int8 and got.shape == (1, 1, 3, 3)
    for i in range(3):
        for j in range(3):
            cells = [(i - 1 + a, j - 1 + b) for a in range(2) for b in range(2)]
            inside = [(r, c) for r, c in cells if 0 <= r < 3 and 0 <= c < 3]
            total = sum(int(x[0, 0, r, c]) for r, c in inside)
            count = len(cells) if include_pad else len(inside)
            assert got[0, 0, i, j] == ref_round_average(total, count), (i, j)


def test_avgpool_ties_and_global_average() -> None:
    x = np.array([[[[1, 2], [-1, -2]]]], np.int8)  # row averages 1.5 and -1.5
    got = run_op(nn.AvgPool2dOp, [In(x, I8)], kernel=[1, 2], strides=[1, 2])
    assert got.ravel().tolist() == [2, -2]
    codes = np.array([[[[3, 4], [4, 4]], [[-3, -4], [-4, -4]]]], np.int16)  # 15/4, -15/4
    fixp = FixPType(12, 3)
    got = run_op(nn.GlobalAvgPool2dOp, [In(codes, fixp)])
    assert got.dtype == np.int16 and got.ravel().tolist() == [4, -4]


def test_maxpool_relu_clip_on_codes() -> None:
    x = np.array([[[[-128, -100], [-90, -120]]]], np.int8)
    got = run_op(nn.MaxPool2dOp, [In(x, I8)], kernel=[2, 2], strides=[1, 1], padding=[1, 1, 1, 1])
    assert got[0, 0].tolist() == [[-128, -100, -100], [-90, -90, -100], [-90, -90, -120]]
    assert run_op(nn.ReluOp, [In(x, I8)]).ravel().tolist() == [0, 0, 0, 0]
    u = np.array([0, 7, 200, 255], np.uint8)
    assert run_op(nn.ClipOp, [In(u, UFixPType(8, 4))], min=5.0, max=250.0).tolist() == [
        5,
        7,
        200,
        250,
    ]
    clipped = run_op(nn.ClipOp, [In(x, I8)], min=-1000.0, max=-110.0)
    assert clipped.dtype == np.int8 and clipped.ravel().tolist() == [-128, -110, -110, -120]


# ---- elementwise on codes ---------------------------------------------------------------------


@pytest.mark.parametrize("op_type", [nn.AddOp, nn.SubOp, nn.MulOp])
def test_fixp_binary_aligns_then_wraps(rng: np.random.Generator, op_type: type) -> None:
    ta, tb = FixPType(8, 2), FixPType(8, 5)
    a = rng.integers(-128, 128, 40).astype(np.int8)
    b = rng.integers(-128, 128, 40).astype(np.int8)
    a[:3], b[:3] = [127, -128, 1], [127, -128, -1]
    if op_type is nn.MulOp:
        to, fo = FixPType(12, 7), 7  # narrow on purpose: products wrap
    else:
        to, fo = FixPType(9, 5), 5
    got = run_op(op_type, [In(a, ta), In(b, tb)], to)
    for i in range(40):
        va, vb = Fraction(int(a[i]), 4), Fraction(int(b[i]), 32)
        exact = {nn.AddOp: va + vb, nn.SubOp: va - vb, nn.MulOp: va * vb}[op_type]
        code = exact * 2**fo
        assert code.denominator == 1
        assert got[i] == wrap(int(code), to.width.data), i


def test_integer_add_wraps_to_the_result_type() -> None:
    a = np.array([100, -100, 5], np.int8)
    b = np.array([100, -100, -7], np.int8)
    got = run_op(nn.AddOp, [In(a, I8), In(b, I8)])
    assert got.dtype == np.int8 and got.tolist() == [wrap(200, 8), wrap(-200, 8), -2]
    wide = run_op(nn.MulOp, [In(a, I8), In(b, I8)], I32)
    assert wide.tolist() == [10000, 10000, -35]


def test_shape_ops_move_codes_unchanged() -> None:
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = PositType(8, 0)
    assert np.array_equal(run_op(nn.TransposeOp, [In(x, p)], perm=[2, 0, 1]), x.transpose(2, 0, 1))
    assert run_op(nn.ReshapeOp, [In(x, p)], shape=[-1]).dtype == np.uint8
