"""Shape and format rules of the ops added for the frontends (spec/ir.md)."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import BFloat16Type, Float16Type, IntegerType, i1
from xdsl.utils.exceptions import VerifyException

from ircomp.dialects import nn
from ircomp.dialects.num import PositType
from ircomp.ir.builder import GraphBuilder, tensor
from ircomp.ir.program import parse_module, print_module

I8 = IntegerType(8)


def _op(b: GraphBuilder, op_type, operands, result_format=None, **props):
    """Append an op and verify it on its own (the builder infers shapes, the verifier checks
    the format rule)."""
    value = b.op(op_type, operands, result_format, **props)
    value.owner.verify()
    return value


I32 = IntegerType(32)

UNARY = [
    nn.SqrtOp,
    nn.ReciprocalOp,
    nn.ExpOp,
    nn.LogOp,
    nn.ErfOp,
    nn.NegOp,
    nn.AbsOp,
    nn.LeakyReluOp,
    nn.HardSigmoidOp,
    nn.HardSwishOp,
    nn.LogSoftmaxOp,
]


@pytest.mark.parametrize("op_type", UNARY)
def test_unary_float_ops_keep_shape_and_reject_codes(op_type) -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    assert _op(b, op_type, [x]).type == tensor((2, 3))
    q = b.input((2, 3), I8)
    with pytest.raises(VerifyException, match="needs float tensors"):
        _op(b, op_type, [q])


@pytest.mark.parametrize("op_type", [nn.PowOp, nn.MaxOp, nn.MinOp])
def test_binary_ops_broadcast(op_type) -> None:
    b = GraphBuilder()
    x, y = b.input((2, 1, 4)), b.input((3, 1))
    assert _op(b, op_type, [x, y]).type == tensor((2, 3, 4))


def test_max_min_accept_codes_of_one_format_only() -> None:
    b = GraphBuilder()
    x, y = b.input((4,), I8), b.input((4,), I8)
    assert _op(b, nn.MaxOp, [x, y]).type == tensor((4,), I8)
    z = b.input((4,), IntegerType(16))
    with pytest.raises(VerifyException, match="share one format"):
        _op(b, nn.MinOp, [x, z])
    p = b.input((4,), PositType(8, 0))
    with pytest.raises(VerifyException, match="posit"):
        _op(b, nn.MaxOp, [p, p])
    with pytest.raises(VerifyException, match="needs float"):
        _op(b, nn.PowOp, [x, y])


@pytest.mark.parametrize(
    ("axes", "keepdims", "expected"),
    [([1], True, (2, 1, 4)), ([1], False, (2, 4)), ([-1, 0], False, (3,)), ([], True, (1, 1, 1))],
)
def test_reduce_shapes(axes, keepdims, expected) -> None:
    for op_type in (nn.ReduceMeanOp, nn.ReduceSumOp, nn.ReduceMaxOp):
        b = GraphBuilder()
        x = b.input((2, 3, 4))
        assert _op(b, op_type, [x], axes=axes, keepdims=keepdims).type == tensor(expected)


def test_reduce_rules() -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    with pytest.raises(VerifyException, match="out of range"):
        _op(b, nn.ReduceSumOp, [x], axes=[2])
    with pytest.raises(VerifyException, match="repeat"):
        _op(b, nn.ReduceSumOp, [x], axes=[1, -1])
    q = b.input((2, 3), I8)
    assert _op(b, nn.ReduceMaxOp, [q], axes=[1]).type == tensor((2, 1), I8)
    with pytest.raises(VerifyException, match="needs float"):
        _op(b, nn.ReduceMeanOp, [q], axes=[1])


def test_gather_shape_and_index_format() -> None:
    b = GraphBuilder()
    table = b.input((10, 4))
    idx = b.weight("idx", np.array([[1, -1, 3]]), I32)
    assert _op(b, nn.GatherOp, [table, idx]).type == tensor((1, 3, 4))
    assert _op(b, nn.GatherOp, [table, idx], axis=1).type == tensor((10, 1, 3))
    scalar = b.weight("i", np.array(2), I32)
    assert _op(b, nn.GatherOp, [table, scalar]).type == tensor((4,))
    with pytest.raises(VerifyException, match="indices must be an integer"):
        _op(b, nn.GatherOp, [table, b.input((3,))])


def test_expand_broadcasts_against_shape() -> None:
    b = GraphBuilder()
    x = b.input((3, 1))
    assert _op(b, nn.ExpandOp, [x], shape=[2, 1, 6]).type == tensor((2, 3, 6))
    assert _op(b, nn.ExpandOp, [x], shape=[1]).type == tensor((3, 1))
    with pytest.raises(VerifyException, match="do not broadcast"):
        _op(b, nn.ExpandOp, [x], shape=[2, 4])


def test_where_takes_format_from_branches() -> None:
    b = GraphBuilder()
    c, x, y = b.input((2, 1), i1), b.input((1, 3), I8), b.input((3,), I8)
    r = _op(b, nn.WhereOp, [c, x, y])
    assert r.type == tensor((2, 3), I8)
    with pytest.raises(VerifyException, match="condition must be i1"):
        _op(b, nn.WhereOp, [x, x, y])
    with pytest.raises(VerifyException, match="share one format"):
        _op(b, nn.WhereOp, [c, x, b.input((3,))])


def test_cast_between_float_formats_only() -> None:
    b = GraphBuilder()
    x = b.input((2,))
    assert _op(b, nn.CastOp, [x], Float16Type()).type == tensor((2,), Float16Type())
    assert _op(b, nn.CastOp, [x], BFloat16Type()).type == tensor((2,), BFloat16Type())
    with pytest.raises(VerifyException, match="float formats only"):
        _op(b, nn.CastOp, [x], I8)


def test_new_ops_round_trip_through_text() -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    c = b.input((2, 3), i1)
    idx = b.weight("idx", np.array([0, 2]), I32)
    y = _op(b, nn.LeakyReluOp, [x], alpha=0.1)
    y = _op(b, nn.HardSigmoidOp, [y], alpha=0.25, beta=0.4)
    y = _op(b, nn.PowOp, [y, b.weight("two", np.array(2.0, np.float32))])
    y = _op(b, nn.ReduceMeanOp, [y], axes=[1], keepdims=False)
    y = _op(b, nn.ExpandOp, [y], shape=[3, 2])
    z = _op(b, nn.GatherOp, [x, idx], axis=1)
    w = _op(b, nn.WhereOp, [c, x, _op(b, nn.NegOp, [x])])
    v = _op(b, nn.CastOp, [w], Float16Type())
    program = b.finish([y, z, v])
    text = print_module(program.module)
    assert "nn.leaky_relu" in text and "alpha = 1.000000e-01" in text
    assert print_module(parse_module(text)) == text
