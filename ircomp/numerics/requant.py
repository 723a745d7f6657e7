"""Integer semantics of quantized ops: requantization in both modes, (de)quantize, wrapping.

* `integer` mode follows TFLite / gemmlowp: `QuantizeMultiplier`, then
  `MultiplyByQuantizedMultiplier` (the double-rounding version built from
  `SaturatingRoundingDoublingHighMul` and `RoundingDivideByPOT`).
* `onnx` mode follows onnxruntime's MLAS `MlasRequantizeOutput`: float32 multiply, round half to
  even.

All functions are vectorized over numpy arrays and compute with int64 intermediates. The
contract is written out in `spec/numerics.md`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ircomp.numerics.errors import FormatError
from ircomp.numerics.formats import as_float_array, per_channel

Ints = npt.NDArray[np.int64]
RequantMode = Literal["onnx", "integer"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _as_ints(x: npt.ArrayLike, name: str) -> Ints:
    array = np.asarray(x)
    if array.dtype.kind not in "biu":
        raise FormatError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _check_int32(x: Ints, name: str) -> None:
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise FormatError(f"{name} must fit in int32")


def trunc_div(numerator: Ints, denominator: Ints | int) -> Ints:
    """C integer division (truncating toward zero); the denominator must be positive."""
    quotient = np.abs(numerator) // denominator
    return np.where(numerator < 0, -quotient, quotient)


# ---------------------------------------------------------------- QuantizeMultiplier


def quantize_multiplier_array(real: npt.ArrayLike) -> tuple[Ints, Ints]:
    """Vectorized TFLite `QuantizeMultiplier`: (int32 multiplier, shift) per element.

    real ~= multiplier * 2**(shift - 31). Like TFLite's default (double-rounding) build, a shift
    above 30 is kept (it is only clamped in TFLite's single-rounding build).
    """
    values = as_float_array(real)
    if not np.isfinite(values).all():
        raise FormatError("a requantization multiplier must be finite")
    mantissa, shift = np.frexp(values)
    shift = shift.astype(np.int64)
    scaled = np.ldexp(mantissa, 31)
    q_fixed = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)
    carry = q_fixed == (1 << 31)
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = np.where(carry, shift + 1, shift)
    flush = shift < -31
    q_fixed = np.where(flush, 0, q_fixed)
    shift = np.where(flush, 0, shift)
    return q_fixed, shift


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite `QuantizeMultiplier` of one real: (int32 multiplier, shift)."""
    multiplier, shift = quantize_multiplier_array(np.float64(real))
    return int(multiplier), int(shift)


# ---------------------------------------------------------------- gemmlowp primitives


def saturating_rounding_doubling_high_mul(a: npt.ArrayLike, b: npt.ArrayLike) -> Ints:
    """gemmlowp `SaturatingRoundingDoublingHighMul` on int32 values (int64 arrays out)."""
    left = _as_ints(a, "a")
    right = _as_ints(b, "b")
    _check_int32(left, "a")
    _check_int32(right, "b")
    product = left * right
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = trunc_div(product + nudge, 1 << 31)
    overflow = (left == INT32_MIN) & (right == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x: npt.ArrayLike, exponent: npt.ArrayLike) -> Ints:
    """gemmlowp `RoundingDivideByPOT`: x / 2**exponent rounded to nearest, ties away from 0."""
    values = _as_ints(x, "x")
    exp = _as_ints(exponent, "exponent")
    if exp.size and (exp.min() < 0 or exp.max() > 31):
        raise FormatError("rounding_divide_by_pot exponent must be in 0..31")
    mask = (np.int64(1) << exp) - 1
    remainder = values & mask
    threshold = (mask >> 1) + (values < 0)
    return (values >> exp) + (remainder > threshold)


def wrap_to_width(x: npt.ArrayLike, width: int, signed: bool = True) -> Ints:
    """Two's complement wrap of integers to `width` bits (signed or unsigned result)."""
    limit = 64 if signed else 63
    if not 1 <= width <= limit:
        raise FormatError(f"wrap width must be in 1..{limit}, got {width}")
    values = _as_ints(x, "x")
    if width == 64:
        return values
    unsigned = values & np.int64((1 << width) - 1)
    if not signed:
        return unsigned
    return np.where(unsigned >= (1 << (width - 1)), unsigned - (1 << width), unsigned)


def multiply_by_quantized_multiplier(
    x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike
) -> Ints:
    """TFLite `MultiplyByQuantizedMultiplier` (double rounding) on int32 `x`.

    `x * 2**left_shift` wraps to int32 (undefined behaviour in C; ircomp defines it as a wrap).
    """
    values = _as_ints(x, "x")
    _check_int32(values, "x")
    shifts = _as_ints(shift, "shift")
    left = np.maximum(shifts, 0)
    right = np.maximum(-shifts, 0)
    if left.size and left.max() > 62:
        raise FormatError("multiplier shift too large")
    shifted = wrap_to_width(values << left, 32)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


# ---------------------------------------------------------------- requantize


def _clamp(values: npt.NDArray[np.int64] | npt.NDArray[np.float64], qmin: int, qmax: int) -> Ints:
    """Clamp integers (or integer-valued floats, clamped before the int conversion)."""
    if qmin > qmax:
        raise FormatError(f"qmin ({qmin}) must not exceed qmax ({qmax})")
    return np.clip(values, qmin, qmax).astype(np.int64)


def _requantize_integer(acc: Ints, scale: npt.NDArray[np.float64]) -> Ints:
    multiplier, shift = quantize_multiplier_array(scale)
    return multiply_by_quantized_multiplier(acc, multiplier, shift)


def _requantize_onnx(acc: Ints, scale: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    product = acc.astype(np.float64).astype(np.float32) * scale.astype(np.float32)
    return np.rint(product).astype(np.float64)


def requantize(
    acc: npt.ArrayLike,
    scale: npt.ArrayLike,
    *,
    mode: RequantMode,
    qmin: int,
    qmax: int,
    out_zero_point: npt.ArrayLike = 0,
    axis: int | None = None,
) -> Ints:
    """Rescale int32 accumulators by `scale`, add `out_zero_point`, clamp to [qmin, qmax].

    `scale` and `out_zero_point` are scalars or 1-D per-channel arrays along `axis`.
    """
    values = _as_ints(acc, "acc")
    _check_int32(values, "acc")
    scales = per_channel(as_float_array(scale), values.shape, axis, "scale")
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise FormatError("requantize scales must be finite and non-negative")
    zero_point = per_channel(
        _as_ints(out_zero_point, "out_zero_point"), values.shape, axis, "out_zero_point"
    )
    if mode == "integer":
        return _clamp(_requantize_integer(values, scales) + zero_point, qmin, qmax)
    if mode == "onnx":
        return _clamp(_requantize_onnx(values, scales) + zero_point, qmin, qmax)
    raise FormatError(f"requantize mode must be 'onnx' or 'integer', got {mode!r}")


# ---------------------------------------------------------------- ONNX (De)QuantizeLinear


def quantize_linear(
    x: npt.ArrayLike,
    scale: npt.ArrayLike,
    zero_point: npt.ArrayLike,
    axis: int | None = None,
    *,
    qmin: int,
    qmax: int,
) -> Ints:
    """ONNX QuantizeLinear: saturate(round_half_even(float32(x) / float32(scale)) + zp)."""
    values = as_float_array(x).astype(np.float32)
    if np.isnan(values).any():
        raise FormatError("cannot quantize nan")
    scales = per_channel(as_float_array(scale).astype(np.float32), values.shape, axis, "scale")
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise FormatError("quantize_linear scales must be positive and finite")
    zero_point = per_channel(_as_ints(zero_point, "zero_point"), values.shape, axis, "zero_point")
    rounded = np.rint(values / scales).astype(np.float64) + zero_point
    return _clamp(rounded, qmin, qmax)


def dequantize_linear(
    q: npt.ArrayLike,
    scale: npt.ArrayLike,
    zero_point: npt.ArrayLike,
    axis: int | None = None,
) -> npt.NDArray[np.float32]:
    """ONNX DequantizeLinear: float32(q - zp) * float32(scale), a float32 array."""
    codes = _as_ints(q, "q")
    scales = per_channel(as_float_array(scale).astype(np.float32), codes.shape, axis, "scale")
    zero_point = per_channel(_as_ints(zero_point, "zero_point"), codes.shape, axis, "zero_point")
    return (codes - zero_point).astype(np.float32) * scales


# ---------------------------------------------------------------- pooling


def rounding_average(total: npt.ArrayLike, count: npt.ArrayLike) -> Ints:
    """TFLite Micro int8 average pool: total / count rounded half away from zero."""
    sums = _as_ints(total, "sum")
    counts = _as_ints(count, "count")
    if counts.size and counts.min() <= 0:
        raise FormatError("average pool count must be positive")
    half = counts // 2
    return trunc_div(np.where(sums > 0, sums + half, sums - half), counts)
