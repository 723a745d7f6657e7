"""Integer semantics of quantized ops against straightforward scalar references of the C code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ircomp.numerics import (
    FormatError,
    dequantize_linear,
    multiply_by_quantized_multiplier,
    quantize_linear,
    quantize_multiplier,
    quantize_multiplier_array,
    requantize,
    rounding_average,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_to_width,
)

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
int32s = st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from([I32_MIN, I32_MAX, 0, -1, 1]))


# ---------------------------------------------------------------- scalar references (C semantics)


def c_div(a: int, b: int) -> int:
    """C integer division: truncate toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * 2**31 + 0.5), q))  # std::round
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def ref_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def ref_mbqm(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(wrap32(x * (1 << left)), multiplier), right)


def ref_requantize_integer(acc: int, scale: float, zp: int, qmin: int, qmax: int) -> int:
    return min(max(ref_mbqm(acc, *ref_quantize_multiplier(scale)) + zp, qmin), qmax)


def ref_requantize_onnx(acc: int, scale: float, zp: int, qmin: int, qmax: int) -> int:
    product = np.float32(acc) * np.float32(scale)  # float32 arithmetic, as MLAS
    return min(max(int(np.rint(product)) + zp, qmin), qmax)


# ---------------------------------------------------------------- QuantizeMultiplier


def test_quantize_multiplier_tflite_values() -> None:
    assert quantize_multiplier(0.5) == (1073741824, 0)
    assert quantize_multiplier(0.25) == (1073741824, -1)
    assert quantize_multiplier(1.0) == (1073741824, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1e-12) == (0, 0)  # shift < -31 flushes to zero
    assert quantize_multiplier(0.1) == (1717986918, -3)
    assert quantize_multiplier(1 - 2**-40) == (1073741824, 1)  # q_fixed == 2**31 carries


@given(st.floats(min_value=1e-12, max_value=1e6))
def test_quantize_multiplier_matches_reference(real: float) -> None:
    assert quantize_multiplier(real) == ref_quantize_multiplier(real)


def test_quantize_multiplier_array_per_channel() -> None:
    reals = np.array([0.5, 0.1, 3.0, 1e-12, 0.0007])
    mult, shift = quantize_multiplier_array(reals)
    assert list(zip(mult.tolist(), shift.tolist(), strict=True)) == [
        ref_quantize_multiplier(r) for r in reals
    ]
    with pytest.raises(FormatError, match="finite"):
        quantize_multiplier(float("inf"))


# ---------------------------------------------------------------- gemmlowp primitives


@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=30))
def test_srdhm_matches_reference(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int32)
    b = np.array([p[1] for p in pairs], dtype=np.int32)
    got = saturating_rounding_doubling_high_mul(a, b).tolist()
    assert got == [ref_srdhm(x, y) for x, y in pairs]


def test_srdhm_overflow_and_rounding() -> None:
    assert saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN) == I32_MAX
    assert saturating_rounding_doubling_high_mul(5, 1 << 30) == 3  # 2.5 -> 3
    assert saturating_rounding_doubling_high_mul(-5, 1 << 30) == -2  # -2.5 -> -2 (C truncation)


@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=30))
def test_rounding_divide_by_pot_matches_reference(pairs: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in pairs])
    e = np.array([p[1] for p in pairs])
    assert rounding_divide_by_pot(x, e).tolist() == [ref_rdbpot(a, b) for a, b in pairs]


def test_rounding_divide_by_pot_ties_away_from_zero() -> None:
    assert rounding_divide_by_pot([5, -5, 6, -6, 7, -7], 1).tolist() == [3, -3, 3, -3, 4, -4]
    with pytest.raises(FormatError, match=r"0\.\.31"):
        rounding_divide_by_pot(1, 32)


@given(int32s, st.integers(0, I32_MAX), st.integers(-31, 30))
def test_multiply_by_quantized_multiplier_matches_reference(
    x: int, multiplier: int, shift: int
) -> None:
    assert multiply_by_quantized_multiplier(x, multiplier, shift) == ref_mbqm(x, multiplier, shift)


# ---------------------------------------------------------------- requantize


@given(
    st.lists(int32s, min_size=1, max_size=20),
    st.floats(min_value=1e-6, max_value=50.0),
    st.integers(-20, 20),
    st.sampled_from(["onnx", "integer"]),
)
def test_requantize_matches_scalar_reference(
    acc: list[int], scale: float, zp: int, mode: str
) -> None:
    ref = ref_requantize_onnx if mode == "onnx" else ref_requantize_integer
    got = requantize(np.array(acc), scale, mode=mode, out_zero_point=zp, qmin=-128, qmax=127)
    assert got.tolist() == [ref(a, scale, zp, -128, 127) for a in acc]  # type: ignore[arg-type]


def test_requantize_per_channel() -> None:
    rng = np.random.default_rng(3)
    acc = rng.integers(-50_000, 50_000, size=(4, 3, 2))
    scales = np.array([0.001, 0.0123, 0.3])
    for mode, ref in (("onnx", ref_requantize_onnx), ("integer", ref_requantize_integer)):
        got = requantize(acc, scales, mode=mode, axis=1, out_zero_point=3, qmin=0, qmax=255)
        for c, s in enumerate(scales):
            expected = [ref(int(a), float(s), 3, 0, 255) for a in acc[:, c].ravel()]
            assert got[:, c].ravel().tolist() == expected
    with pytest.raises(FormatError, match="mode"):
        requantize(acc, 0.5, mode="float", qmin=0, qmax=1)  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="int32"):
        requantize(np.array([2**40]), 0.5, mode="onnx", qmin=0, qmax=1)


# the worked examples of spec/numerics.md, where the two modes differ
SCALE_0_3 = float(np.float32(0.3))


@pytest.mark.parametrize(
    ("acc", "scale", "onnx", "integer"),
    [
        (8, SCALE_0_3, 2, 3),  # 2.4000001: integer mode double-rounds 4.8 -> 5, 2.5 -> 3
        (5, 0.5, 2, 3),  # exact tie 2.5: half to even vs. SRDHM's nudge
        (-199959, float(np.float32(0.0123)), -2459, -2460),
    ],
)
def test_worked_examples_where_modes_differ(
    acc: int, scale: float, onnx: int, integer: int
) -> None:
    kwargs = {"qmin": I32_MIN, "qmax": I32_MAX}
    assert requantize(np.array([acc]), scale, mode="onnx", **kwargs).item() == onnx
    assert requantize(np.array([acc]), scale, mode="integer", **kwargs).item() == integer


def test_worked_example_intermediates() -> None:
    assert quantize_multiplier(SCALE_0_3) == (1288490240, -1)
    assert saturating_rounding_doubling_high_mul(8, 1288490240) == 5
    assert rounding_divide_by_pot(5, 1) == 3
    assert np.float32(8) * np.float32(SCALE_0_3) == np.float32(2.4000001)


def test_fixp_cast_is_power_of_two_requantize() -> None:
    codes = np.arange(-40, 40)  # fixp<8,4> codes, cast to fixp<8,2>: scale 2**(2-4)
    onnx = requantize(codes, 2.0**-2, mode="onnx", qmin=-128, qmax=127)
    assert onnx.tolist() == np.rint(codes / 4).astype(int).tolist()  # exact, ties to even
    integer = requantize(codes, 2.0**-2, mode="integer", qmin=-128, qmax=127)
    assert integer.tolist() == [ref_requantize_integer(int(c), 0.25, 0, -128, 127) for c in codes]
    # TFLite's double rounding: 1/4 -> SRDHM gives 1 (0.5 rounded up), then 1/2 rounds to 1
    assert integer[codes == 1].item() == 1 and onnx[codes == 1].item() == 0


# ---------------------------------------------------------------- quantize / dequantize / misc


@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20), st.floats(1e-3, 10))
def test_quantize_linear_matches_reference(xs: list[float], scale: float) -> None:
    got = quantize_linear(np.array(xs), scale, 3, qmin=-128, qmax=127)
    expected = [
        min(max(int(np.rint(np.float32(x) / np.float32(scale))) + 3, -128), 127) for x in xs
    ]
    assert got.tolist() == expected


def test_quantize_dequantize_linear_examples() -> None:
    assert quantize_linear([0.5, 1.5, 2.5, -2.5, 1e9], 1.0, 0, qmin=-128, qmax=127).tolist() == [
        0,
        2,
        2,
        -2,
        127,
    ]
    q = np.array([[0, 10], [255, 128]])
    got = dequantize_linear(q, np.array([0.5, 0.25]), np.array([128, 0]), axis=1)
    assert got.dtype == np.float32
    assert got.tolist() == [[-64.0, 2.5], [63.5, 32.0]]
    with pytest.raises(FormatError, match="nan"):
        quantize_linear([np.nan], 1.0, 0, qmin=0, qmax=1)


def test_wrap_to_width() -> None:
    assert wrap_to_width([127, 128, 255, 256, -129, 2**40 + 5], 8).tolist() == [
        127,
        -128,
        -1,
        0,
        127,
        5,
    ]
    assert wrap_to_width([-1, 256, 300], 8, signed=False).tolist() == [255, 0, 44]
    assert wrap_to_width([2**31, -(2**31) - 1], 32).tolist() == [-(2**31), 2**31 - 1]
    with pytest.raises(FormatError, match="width"):
        wrap_to_width([1], 0)


@given(st.integers(-(2**40), 2**40), st.integers(1, 1000))
def test_rounding_average_matches_reference(total: int, count: int) -> None:
    half = count // 2
    expected = c_div(total + half, count) if total > 0 else c_div(total - half, count)
    assert rounding_average(total, count) == expected


def test_rounding_average_ties_away_from_zero() -> None:
    assert rounding_average([5, -5, 3, -3, 4], [2, 2, 2, 2, 4]).tolist() == [3, -3, 2, -2, 1]
