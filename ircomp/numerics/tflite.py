"""TFLite / TFLite Micro integer kernels that are not a plain requantization: int8 ADD and
int8 SOFTMAX, bit for bit (gemmlowp fixed-point arithmetic, double-rounding build).

* `quantized_add`: TFLite's `AddFunc` (left shift 20, one multiplier per input, one for the
  output, each from `QuantizeMultiplier` of a real below one).
* `quantized_softmax`: TFLite's reference `Softmax<int8_t|uint8_t, int8_t|uint8_t>` (input
  differences rescaled to Q5.26, `exp_on_negative_values`, a Q12.19 sum, the Newton-Raphson
  reciprocal of `GetReciprocal`), output scale 1/256 with zero point = the lowest code.

The parameters are computed as TFLite's `Prepare` functions do (in double from the float32
scales), the arithmetic in int64 numpy with every int32 step of the C code kept exact. The
contract is `spec/numerics.md` section 5.6 and 5.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ircomp.numerics.errors import FormatError
from ircomp.numerics.requant import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    trunc_div,
    wrap_to_width,
)

Ints = npt.NDArray[np.int64]

ADD_LEFT_SHIFT = 20  # TFLite's left shift of 8-bit ADD inputs (15 for int16)
SOFTMAX_INPUT_INTEGER_BITS = 5  # Q5.26 scaled differences
SOFTMAX_ACCUM_INTEGER_BITS = 12  # Q12.19 sum of exponentials
# Largest softmax length whose sum of exponentials stays below 2^28, so that the final
# RoundingDivideByPOT exponent stays in 0..31 (TFLite leaves longer rows undefined).
SOFTMAX_MAX_LENGTH = 511


# ---------------------------------------------------------------- ADD


@dataclass(frozen=True)
class AddParams:
    """TFLite int8 ADD parameters (`PrepareGeneralSubOp` / add `Prepare`)."""

    left_shift: int
    lhs_multiplier: int
    lhs_shift: int
    rhs_multiplier: int
    rhs_shift: int
    out_multiplier: int
    out_shift: int


def _smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """TFLite `QuantizeMultiplierSmallerThanOneExp`: QuantizeMultiplier with shift <= 0."""
    if not (0.0 < real < 1.0):
        raise FormatError(f"{what} multiplier {real!r} must be in (0, 1)")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise FormatError(f"{what} multiplier {real!r} needs a left shift")
    return multiplier, shift


def add_params(lhs_scale: float, rhs_scale: float, out_scale: float) -> AddParams:
    """Multipliers and shifts of TFLite's 8-bit ADD, computed in double like TFLite.

    The scales are the float32 tensor scales; `twice_max = 2 * max(s_a, s_b)`, input
    multipliers `s / twice_max`, output multiplier `twice_max / (2^20 * s_out)`.
    """
    scales = [float(np.float32(s)) for s in (lhs_scale, rhs_scale, out_scale)]
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise FormatError(f"add scales must be positive and finite, got {scales}")
    s_a, s_b, s_y = scales
    twice_max = 2.0 * max(s_a, s_b)
    m_a, sh_a = _smaller_than_one(s_a / twice_max, "lhs")
    m_b, sh_b = _smaller_than_one(s_b / twice_max, "rhs")
    m_y, sh_y = _smaller_than_one(twice_max / ((1 << ADD_LEFT_SHIFT) * s_y), "output")
    return AddParams(ADD_LEFT_SHIFT, m_a, sh_a, m_b, sh_b, m_y, sh_y)


def quantized_add(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    lhs_scale: float,
    lhs_zero_point: int,
    rhs_scale: float,
    rhs_zero_point: int,
    out_scale: float,
    out_zero_point: int,
    qmin: int,
    qmax: int,
) -> Ints:
    """TFLite 8-bit ADD of codes `a` and `b` (numpy broadcasting), clamped to [qmin, qmax].

    Per element: `x = (a - za) << 20`, `y = (b - zb) << 20`, each scaled by its multiplier
    (`MultiplyByQuantizedMultiplierSmallerThanOneExp`), summed in int32, scaled by the output
    multiplier, plus the output zero point, clamped.
    """
    p = add_params(lhs_scale, rhs_scale, out_scale)
    codes_a = np.asarray(a).astype(np.int64)
    codes_b = np.asarray(b).astype(np.int64)
    if qmin > qmax:
        raise FormatError(f"qmin ({qmin}) must not exceed qmax ({qmax})")
    codes_a, codes_b = np.broadcast_arrays(codes_a, codes_b)
    shifted_a = wrap_to_width((codes_a - lhs_zero_point) << p.left_shift, 32)
    shifted_b = wrap_to_width((codes_b - rhs_zero_point) << p.left_shift, 32)
    scaled_a = multiply_by_quantized_multiplier(shifted_a, p.lhs_multiplier, p.lhs_shift)
    scaled_b = multiply_by_quantized_multiplier(shifted_b, p.rhs_multiplier, p.rhs_shift)
    raw_sum = wrap_to_width(scaled_a + scaled_b, 32)
    raw = multiply_by_quantized_multiplier(raw_sum, p.out_multiplier, p.out_shift)
    return np.clip(raw + out_zero_point, qmin, qmax).astype(np.int64)


# ---------------------------------------------------------------- gemmlowp fixed point


def _srdhm(a: Ints, b: Ints | int) -> Ints:
    return saturating_rounding_doubling_high_mul(a, b)


def _rdbpot(x: Ints, exponent: Ints | int) -> Ints:
    return rounding_divide_by_pot(x, exponent)


def saturating_shift_left(x: npt.ArrayLike, exponent: int) -> Ints:
    """gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>` for exponent > 0 on int32."""
    values = np.asarray(x).astype(np.int64)
    threshold = (1 << (31 - exponent)) - 1
    shifted = values << exponent
    low = np.where(values < -threshold, INT32_MIN, shifted)
    return np.where(values > threshold, INT32_MAX, low)


def _add32(a: Ints, b: Ints | int) -> Ints:
    """int32 raw addition of fixed-point values (wraps like the C code's two's complement)."""
    return wrap_to_width(np.asarray(a, np.int64) + b, 32)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: npt.ArrayLike) -> Ints:
    """gemmlowp: exp(a) for a Q0.31 `a` in [-1/4, 0), as Q0.31 (Taylor series around -1/8)."""
    a = np.asarray(a).astype(np.int64)
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = _add32(a, 1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_add32(_srdhm(_add32(x4_over_4, x3), constant_1_over_3), x2), 1)
    return _add32(constant_term, _srdhm(np.full_like(x, constant_term), _add32(x, poly)))


_EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a: npt.ArrayLike, integer_bits: int = 5) -> Ints:
    """gemmlowp `exp_on_negative_values`: exp(a) of a Q`integer_bits`.(31-integer_bits) raw
    `a <= 0`, as a Q0.31 raw (`a == 0` gives INT32_MAX, gemmlowp's One)."""
    a = np.asarray(a).astype(np.int64)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits)
        if integer_bits > 0
        else a_mod_quarter_minus_quarter
    )
    remainder = wrap_to_width(a_mod_quarter_minus_quarter - a, 32)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac + exponent)
            result = np.where((remainder & bit) != 0, _srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result).astype(np.int64)


def one_over_one_plus_x_for_x_in_0_1(a: npt.ArrayLike) -> Ints:
    """gemmlowp: 1 / (1 + a) for a Q0.31 `a` in [0, 1), as Q0.31 (three Newton-Raphson steps)."""
    a = np.asarray(a).astype(np.int64)
    total = a + INT32_MAX
    half_denominator = trunc_div(total + np.where(total >= 0, 1, -1), 2)  # RoundingHalfSum
    x = _add32(1515870810, _srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 d (Q2.29)
    for _ in range(3):
        half_denominator_times_x = _srdhm(half_denominator, x)
        one_minus = _add32(1 << 29, -half_denominator_times_x)
        x = _add32(x, saturating_shift_left(_srdhm(x, one_minus), 2))
    return saturating_shift_left(x, 1)


def _count_leading_zeros32(x: Ints) -> Ints:
    """Leading zero bits of positive int32 values (as uint32)."""
    out = np.zeros(x.shape, np.int64)
    v = x.astype(np.int64)
    for bits in (16, 8, 4, 2, 1):
        small = v < (np.int64(1) << (32 - bits))
        out = np.where(small, out + bits, out)
        v = np.where(small, v << bits, v)
    return np.where(x == 0, 32, out)


# ---------------------------------------------------------------- SOFTMAX


@dataclass(frozen=True)
class SoftmaxParams:
    """TFLite int8 softmax parameters (`CalculateSoftmaxParams`)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(input_scale: float, beta: float = 1.0) -> SoftmaxParams:
    """`PreprocessSoftmaxScaling` and `CalculateInputRadius` of TFLite (double rounding).

    real multiplier = min(beta * s_in * 2^26, 2^31 - 1) (s_in the float32 input scale);
    diff_min = -floor(31 * 2^26 / 2^left_shift).
    """
    s_in = float(np.float32(input_scale))
    if not (math.isfinite(s_in) and s_in > 0 and math.isfinite(beta) and beta > 0):
        raise FormatError(
            f"softmax input scale and beta must be positive and finite, got {s_in}, {beta}"
        )
    bits = SOFTMAX_INPUT_INTEGER_BITS
    real = min(beta * s_in * float(1 << (31 - bits)), float((1 << 31) - 1))
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise FormatError(
            f"softmax input scale {s_in} * beta {beta} is too small (multiplier {real} < 1)"
        )
    radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << shift))
    return SoftmaxParams(multiplier, shift, -radius)


def quantized_softmax(
    x: npt.ArrayLike, *, input_scale: float, beta: float = 1.0, axis: int = -1, qmin: int
) -> Ints:
    """TFLite reference softmax of 8-bit codes along `axis`: output codes of scale 1/256 and
    zero point `qmin` (-128 for int8, 0 for uint8), saturated to `qmin + 255`.

    Along the axis at most `SOFTMAX_MAX_LENGTH` elements.
    """
    codes = np.asarray(x).astype(np.int64)
    if codes.ndim == 0:
        raise FormatError("softmax needs an input of rank >= 1")
    moved = np.moveaxis(codes, axis, -1)
    length = moved.shape[-1]
    if not 1 <= length <= SOFTMAX_MAX_LENGTH:
        raise FormatError(
            f"softmax length {length} along the axis must be in 1..{SOFTMAX_MAX_LENGTH}"
        )
    p = softmax_params(input_scale, beta)
    diff = moved - moved.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    safe = np.where(valid, diff, 0)
    rescaled = _srdhm(safe << p.input_left_shift, p.input_multiplier)
    exps = exp_on_negative_values(rescaled, SOFTMAX_INPUT_INTEGER_BITS)
    # Rescale<12> of a Q0.31 value: RoundingDivideByPOT by 12
    terms = np.where(valid, _rdbpot(exps, SOFTMAX_ACCUM_INTEGER_BITS), 0)
    sums = wrap_to_width(terms.sum(axis=-1, keepdims=True), 32)
    headroom_plus_one = _count_leading_zeros32(sums)
    num_bits_over_unit = SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one
    shifted_sum_minus_one = wrap_to_width((sums << headroom_plus_one) - (1 << 31), 32)
    shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = np.broadcast_to(num_bits_over_unit + 31 - 8, exps.shape)
    unsat = _rdbpot(_srdhm(np.broadcast_to(shifted_scale, exps.shape), exps), exponent)
    out = np.where(valid, np.clip(unsat + qmin, qmin, qmin + 255), qmin)
    return np.moveaxis(out, -1, axis).astype(np.int64)


__all__ = [
    "ADD_LEFT_SHIFT",
    "SOFTMAX_MAX_LENGTH",
    "AddParams",
    "SoftmaxParams",
    "add_params",
    "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1",
    "quantized_add",
    "quantized_softmax",
    "saturating_shift_left",
    "softmax_params",
]
