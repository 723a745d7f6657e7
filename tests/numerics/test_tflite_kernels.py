"""ircomp.numerics.tflite: gemmlowp fixed-point pieces against the real functions they
approximate, TFLite parameter computation, and the nn.qadd / nn.qsoftmax verifiers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from xdsl.dialects.builtin import IntegerType
from xdsl.utils.exceptions import VerifyException

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.numerics import FormatError
from ircomp.numerics.tflite import (
    SOFTMAX_MAX_LENGTH,
    add_params,
    exp_on_negative_values,
    one_over_one_plus_x_for_x_in_0_1,
    quantized_add,
    quantized_softmax,
    saturating_shift_left,
    softmax_params,
)

I8, I32 = IntegerType(8), IntegerType(32)


def test_exp_on_negative_values_is_exp_in_q0_31() -> None:
    x = np.linspace(-31.9, 0.0, 4001)
    raw = np.round(x * 2**26).astype(np.int64)  # Q5.26
    got = exp_on_negative_values(raw) / 2**31
    assert np.abs(got - np.exp(raw / 2**26)).max() < 5e-7  # gemmlowp: about 22 bits
    assert exp_on_negative_values(np.array([0]))[0] == 2**31 - 1  # gemmlowp's One


def test_one_over_one_plus_x() -> None:
    x = np.linspace(0.0, 0.999, 1001)
    got = one_over_one_plus_x_for_x_in_0_1(np.round(x * 2**31).astype(np.int64)) / 2**31
    assert np.abs(got - 1 / (1 + x)).max() < 5e-9


def test_saturating_shift_left() -> None:
    got = saturating_shift_left(np.array([3, -3, 2**26, -(2**26), 2**26 - 1]), 5)
    assert got.tolist() == [96, -96, 2**31 - 1, -(2**31), (2**26 - 1) * 32]


def test_add_params_follow_tflite_prepare() -> None:
    p = add_params(0.5, 0.25, 0.125)
    # twice_max = 1: input multipliers 0.5 and 0.25, output 1 / (2^20 * 0.125) = 2^-17
    assert (p.lhs_multiplier, p.lhs_shift) == (1 << 30, 0)
    assert (p.rhs_multiplier, p.rhs_shift) == (1 << 30, -1)
    assert (p.out_multiplier, p.out_shift) == (1 << 30, -16)
    # exact scales: (a - za) * 0.5 + (b - zb) * 0.25 = y * 0.125, rounded half away from zero
    a, b = np.array([3, -3, 1]), np.array([1, -1, 0])
    got = quantized_add(
        a,
        b,
        lhs_scale=0.5,
        lhs_zero_point=0,
        rhs_scale=0.25,
        rhs_zero_point=0,
        out_scale=0.125,
        out_zero_point=0,
        qmin=-128,
        qmax=127,
    )
    assert got.tolist() == [14, -14, 4]


def test_softmax_params_and_limits() -> None:
    p = softmax_params(0.14469251)
    assert p.input_left_shift >= 0 and p.input_multiplier >= 1 << 30
    assert p.diff_min == -math.floor(31 * 2**26 / 2**p.input_left_shift)
    with pytest.raises(FormatError, match="too small"):
        softmax_params(1e-12)
    with pytest.raises(FormatError, match="length"):
        quantized_softmax(np.zeros((1, SOFTMAX_MAX_LENGTH + 1)), input_scale=0.1, qmin=-128)


def test_softmax_of_equal_codes_is_uniform() -> None:
    for n in (1, 2, 4, 256):
        got = quantized_softmax(np.full((1, n), 7), input_scale=0.05, qmin=-128)
        want = min(255, round(256 / n)) - 128
        assert np.abs(got - want).max() <= 1, (n, got[0, :3])


def test_qadd_and_qsoftmax_verify_their_formats() -> None:
    b = GraphBuilder()
    x = b.input([2, 3], I8)
    y = b.op(nn.QAddOp, [x, x], I8, lhs_scale=0.1, rhs_scale=0.2, scale=0.3, zero_point=-5)
    s = b.op(nn.QSoftmaxOp, [y], I8, input_scale=0.3)
    b.finish([s]).verify()
    b = GraphBuilder()
    x, x32 = b.input([2], I8), b.input([2], I32)
    bad = b.op(nn.QAddOp, [x32, x32], I32, lhs_scale=0.1, rhs_scale=0.1, scale=0.1)
    with pytest.raises(VerifyException, match=r"nn\.qadd: works on 8-bit integer codes"):
        bad.owner.verify()
    bad = b.op(nn.QAddOp, [x, x], I8, lhs_scale=0.1, rhs_scale=0.1, scale=0.1, zero_point=300)
    with pytest.raises(VerifyException, match=r"zero_point 300 is outside the range of i8"):
        bad.owner.verify()
    with pytest.raises(VerifyException, match=r"nn\.qsoftmax: length 600 along axis 1"):
        b.op(nn.QSoftmaxOp, [b.input([1, 600], I8)], I8, input_scale=0.1).owner.verify()
