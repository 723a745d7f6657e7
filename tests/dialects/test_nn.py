"""Verifiers of the `nn` ops: every shape and format rule of spec/ir.md rejects what it should."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import Float16Type, IntegerType, f32
from xdsl.utils.exceptions import VerifyException

from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType
from ircomp.ir.builder import GraphBuilder, tensor


def _arg(b: GraphBuilder, shape, elem=None):
    return b.input(shape, elem)


def _check(op: nn.NNOp, message: str) -> None:
    with pytest.raises(VerifyException, match=message):
        op.verify()


def test_builder_infers_conv_output_shape() -> None:
    b = GraphBuilder()
    x = _arg(b, (2, 4, 9, 9))
    w = b.weight("w", np.zeros((8, 2, 3, 3), np.float32))
    y = b.op(nn.Conv2dOp, [x, w], strides=[2, 2], padding=[1, 1, 1, 1], groups=2)
    assert y.type == tensor((2, 8, 5, 5))


def test_conv_with_dilation_and_asymmetric_padding() -> None:
    b = GraphBuilder()
    x = _arg(b, (1, 3, 10, 12))
    w = b.weight("w", np.zeros((4, 3, 3, 3), np.float32))
    y = b.op(nn.Conv2dOp, [x, w], dilations=[2, 3], padding=[0, 1, 2, 0])
    # H: 10 + 2 - 5 + 1 = 8; W: 12 + 1 - 7 + 1 = 7
    assert y.type == tensor((1, 4, 8, 7))


@pytest.mark.parametrize(
    ("op_type", "shapes", "props", "result", "message"),
    [
        (nn.LinearOp, [(2, 3), (4, 5)], {}, (2, 4), "does not end in the weight's in-features"),
        (nn.LinearOp, [(2, 3), (4, 3)], {}, (2, 5), r"result shape <2x5>"),
        (nn.MatMulOp, [(2, 3, 4), (5, 6)], {}, (2, 3, 6), "inner dimensions differ"),
        (nn.AddOp, [(2, 3), (4, 3)], {}, (2, 3), "do not broadcast"),
        (nn.Conv2dOp, [(1, 3, 8, 8), (6, 2, 3, 3)], {"groups": 2}, (1, 6, 6, 6), "channels"),
        (nn.Conv2dOp, [(1, 4, 2, 2), (6, 4, 3, 3)], {}, (1, 6, 1, 1), "larger than the padded"),
        (nn.ReshapeOp, [(2, 6)], {"shape": [5, -1]}, (5, 2), "cannot reshape"),
        (nn.TransposeOp, [(2, 6)], {"perm": [0, 0]}, (2, 2), "not a permutation"),
        (nn.SoftmaxOp, [(2, 6)], {"axis": 2}, (2, 6), "axis 2 is out of range"),
        (nn.ConcatOp, [(2, 6), (3, 5)], {"axis": 0}, (5, 6), "differ outside axis"),
        (nn.FlattenOp, [(2, 6)], {"axis": 3}, (12,), "out of range"),
        (nn.MaxPool2dOp, [(1, 1, 4, 4)], {"kernel": [2]}, (1, 1, 2, 2), "kernel needs 2 values"),
    ],
)
def test_shape_rules_reject(op_type, shapes, props, result, message) -> None:
    b = GraphBuilder()
    operands = [_arg(b, s) for s in shapes]
    op = nn.build(op_type, operands, tensor(result), **props)
    _check(op, message)


def test_split_sizes_must_cover_the_axis() -> None:
    b = GraphBuilder()
    x = _arg(b, (2, 6))
    op = nn.build(nn.SplitOp, [x], [tensor((2, 2)), tensor((2, 2))], axis=1, sizes=[2, 2])
    _check(op, "do not add up")


def test_slice_follows_python_slicing() -> None:
    b = GraphBuilder()
    x = _arg(b, (10, 7))
    y = b.op(nn.SliceOp, [x], starts=[-8, 6], ends=[100, 0], axes=[0, 1], steps=[3, -2])
    assert y.type == tensor((3, 3))


@pytest.mark.parametrize(
    ("x_elem", "w_elem", "out_elem", "message"),
    [
        (f32, IntegerType(8), f32, "needs float tensors"),
        (IntegerType(8), IntegerType(8), f32, "accumulate into an integer"),
        (FixPType(8, 4), FixPType(8, 6), FixPType(32, 8), "has 10 fraction bits"),
        (FixPType(8, 4), PositType(4, 1), FixPType(32, 4), "has 8 fraction bits"),
        (PositType(8, 0), FixPType(8, 4), FixPType(32, 4), "no arithmetic defined"),
        (f32, Float16Type(), f32, "share one format"),
    ],
)
def test_mac_format_rule(x_elem, w_elem, out_elem, message) -> None:
    b = GraphBuilder()
    op = nn.build(
        nn.LinearOp, [_arg(b, (1, 3), x_elem), _arg(b, (2, 3), w_elem)], tensor((1, 2), out_elem)
    )
    _check(op, message)


def test_exact_fixp_and_posit_accumulators_verify() -> None:
    b = GraphBuilder()
    x = _arg(b, (1, 3), FixPType(8, 4))
    for w_elem, frac in ((FixPType(6, 5), 9), (PositType(4, 1), 8), (PositType(4, 0), 6)):
        w = _arg(b, (2, 3), w_elem)
        y = b.op(nn.LinearOp, [x, w])
        assert y.type == tensor((1, 2), FixPType(32, frac))


def test_zero_points_only_on_integer_operands() -> None:
    b = GraphBuilder()
    op = nn.build(
        nn.LinearOp, [_arg(b, (1, 3)), _arg(b, (2, 3))], tensor((1, 2)), input_zero_point=3
    )
    _check(op, "zero points are allowed only on integer")


def test_bias_must_have_the_accumulator_format() -> None:
    b = GraphBuilder()
    i8 = IntegerType(8)
    x, w = _arg(b, (1, 3), i8), _arg(b, (2, 3), i8)
    op = nn.build(nn.LinearOp, [x, w, _arg(b, (2,), i8)], tensor((1, 2), IntegerType(32)))
    _check(op, "bias format i8 must equal the result format i32")


def test_fixp_add_needs_aligned_fraction_bits() -> None:
    b = GraphBuilder()
    x, y = _arg(b, (4,), FixPType(8, 4)), _arg(b, (4,), FixPType(8, 2))
    _check(nn.build(nn.AddOp, [x, y], tensor((4,), FixPType(9, 2))), "must have 4 fraction")
    _check(nn.build(nn.MulOp, [x, y], tensor((4,), FixPType(16, 4))), "must have 6 fraction")
    assert b.op(nn.MulOp, [x, y]).type == tensor((4,), FixPType(32, 6))


@pytest.mark.parametrize(
    ("op_type", "in_elem", "out_elem", "props", "message"),
    [
        (nn.QuantizeOp, IntegerType(8), IntegerType(8), {"scale": [0.1]}, "float tensor into"),
        (nn.QuantizeOp, f32, IntegerType(8), {"scale": [0.0]}, "positive and finite"),
        (nn.QuantizeOp, f32, IntegerType(8), {"scale": [0.1], "zero_point": [300]}, "outside"),
        (nn.QuantizeOp, f32, FixPType(8, 4), {"scale": [1.0], "zero_point": [1]}, "only on int"),
        (nn.QuantizeOp, f32, IntegerType(8), {"scale": [0.1, 0.2]}, "2 scales for axis 1"),
        (nn.DequantizeOp, f32, f32, {"scale": [0.1]}, "non-float format into"),
        (
            nn.RequantizeOp,
            IntegerType(32),
            IntegerType(8),
            {"scale": [0.1], "mode": "tflite"},
            "mode must be one of",
        ),
        (
            nn.RequantizeOp,
            IntegerType(32),
            IntegerType(8),
            {"scale": [0.1], "mode": "onnx", "clamp": [5, 1]},
            "lo <= hi",
        ),
        (
            nn.RequantizeOp,
            PositType(8, 0),
            IntegerType(8),
            {"scale": [0.1], "mode": "onnx"},
            "integer or fixp codes",
        ),
    ],
)
def test_cast_rules(op_type, in_elem, out_elem, props, message) -> None:
    b = GraphBuilder()
    op = nn.build(op_type, [_arg(b, (2, 3), in_elem)], tensor((2, 3), out_elem), **props)
    _check(op, message)


def test_per_channel_quantize_verifies() -> None:
    b = GraphBuilder()
    x = _arg(b, (2, 3, 4, 4))
    q = b.op(nn.QuantizeOp, [x], IntegerType(8), scale=[0.1, 0.2, 0.3], zero_point=[0], axis=1)
    assert q.type == tensor((2, 3, 4, 4), IntegerType(8))


def test_code_domain_ops_refuse_posits_and_float_ops_refuse_codes() -> None:
    b = GraphBuilder()
    p = _arg(b, (4,), PositType(8, 0))
    _check(nn.build(nn.ReluOp, [p], tensor((4,), PositType(8, 0))), "posit values")
    i = _arg(b, (4,), IntegerType(8))
    _check(nn.build(nn.GeluOp, [i], tensor((4,), IntegerType(8))), "needs float tensors")
    _check(nn.build(nn.ClipOp, [i], tensor((4,), IntegerType(8)), min=3.0, max=1.0), "above max")


def test_weight_handles_are_checked() -> None:
    op = nn.build(nn.WeightOp, [], tensor((2,)), name="w", hash="XYZ")
    _check(op, "16 lowercase hex digits")


def test_dynamic_batch_is_compatible() -> None:
    b = GraphBuilder()
    x = _arg(b, (-1, 3))
    w = b.weight("w", np.zeros((4, 3), np.float32))
    y = b.op(nn.LinearOp, [x, w])
    assert str(y.type) == "tensor<?x4xf32>"
