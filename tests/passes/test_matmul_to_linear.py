"""matmul-to-linear: MatMul by a constant (+ bias add) becomes nn.linear with weight [out, in]."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_checks import check_pass
from xdsl.dialects.builtin import IntegerType, i32

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder


def _ops(program, kind):  # type: ignore[no-untyped-def]
    return [op for op in program.module.walk() if isinstance(op, kind)]


@given(st.integers(0, 10_000), st.booleans())
def test_integer_matmul_and_bias_become_one_exact_linear(seed: int, with_bias: bool) -> None:
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((3, 5), IntegerType(8))
    w = b.weight("fc.weight", rng.integers(-8, 8, (5, 4)), IntegerType(8))
    y = b.op(nn.MatMulOp, [x, w], i32, name="fc", input_zero_point=1)
    if with_bias:
        y = b.op(nn.AddOp, [y, b.weight("fc.bias", rng.integers(-50, 50, 4), i32)])
    program = b.finish([y])
    result = check_pass(program, [rng.integers(-128, 128, (3, 5))], "matmul-to-linear")
    (linear,) = _ops(result, nn.LinearOp)
    assert not _ops(result, nn.MatMulOp) and not _ops(result, nn.AddOp)
    assert (linear.bias is not None) == with_bias
    assert linear.get("input_zero_point") == 1
    assert linear.weight.type.get_shape() == (4, 5)
    assert linear.attributes["name"].data == "fc"


def test_float_layer_keeps_its_values_within_rounding() -> None:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((2, 6))
    y = b.op(nn.MatMulOp, [x, b.weight("w", rng.normal(size=(6, 3)))])
    y = b.op(nn.AddOp, [b.weight("b", rng.normal(size=(1, 3))), y])
    program = b.finish([y])
    data = rng.normal(size=(2, 6)).astype(np.float32)
    check_pass(program, [data], "matmul-to-linear", rtol=1e-6, atol=1e-6)


def test_matmul_of_two_activations_is_left_alone() -> None:
    b = GraphBuilder()
    x, z = b.input((2, 3)), b.input((3, 2))
    program = b.finish([b.op(nn.MatMulOp, [x, z])])
    result = check_pass(program, [np.ones((2, 3)), np.ones((3, 2))], "matmul-to-linear")
    assert _ops(result, nn.MatMulOp)


def test_a_bias_add_with_other_users_stays_an_add() -> None:
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input((2, 3))
    mm = b.op(nn.MatMulOp, [x, b.weight("w", rng.normal(size=(3, 3)))])
    out = b.op(nn.AddOp, [mm, mm])
    program = b.finish([out])
    result = check_pass(program, [np.ones((2, 3))], "matmul-to-linear", rtol=1e-6)
    assert _ops(result, nn.LinearOp) and _ops(result, nn.AddOp)
    assert run(result, [np.ones((2, 3))])[0].shape == (2, 3)
