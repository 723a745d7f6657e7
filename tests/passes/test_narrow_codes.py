"""narrow-codes: integer codes get the narrowest format their producer guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from pass_checks import check_pass
from xdsl.dialects.builtin import IntegerType, Signedness, f32, i32

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.passes.narrow_codes import narrowest

UI8 = IntegerType(8, Signedness.UNSIGNED)


@pytest.mark.parametrize(
    ("lo", "hi", "text"),
    [
        (0, 1, "ui1"),
        (0, 3, "ui2"),
        (0, 4, "ui3"),
        (-2, 1, "i2"),
        (-3, 1, "i3"),
        (-1, 0, "i2"),
        (-128, 127, "i8"),
    ],
)
def test_narrowest_format(lo: int, hi: int, text: str) -> None:
    assert str(narrowest(lo, hi)) == text


def _qdq_like(clamp: list[int], signed_out: bool) -> tuple:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((4, 6))
    clipped = b.op(nn.ClipOp, [x], min=0.0, max=1.0)
    codes = b.op(nn.QuantizeOp, [clipped], UI8, scale=[1 / 3])
    acc = b.op(
        nn.LinearOp, [codes, b.weight("w", rng.integers(-3, 4, (5, 6)), IntegerType(8))], i32
    )
    out_fmt = IntegerType(8) if signed_out else UI8
    act = b.op(nn.RequantizeOp, [acc], out_fmt, scale=[0.3], mode="onnx", clamp=clamp)
    program = b.finish([b.op(nn.DequantizeOp, [act], f32, scale=[0.5])])
    return program, rng.uniform(-0.5, 1.5, (4, 6)).astype(np.float32)


def test_qdq_containers_shrink_to_their_ranges() -> None:
    program, x = _qdq_like([-2, 1], signed_out=True)
    result = check_pass(program, [x], "narrow-codes")
    formats = [
        str(op.results[0].type.element_type)
        for op in result.module.walk()
        if isinstance(op, nn.QuantizeOp | nn.RequantizeOp)
    ]
    assert formats == ["ui2", "i2"]


def test_unclamped_and_returned_codes_keep_their_format() -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    codes = b.op(nn.QuantizeOp, [b.op(nn.ReluOp, [x])], UI8, scale=[0.1])  # no upper bound
    other = b.op(nn.QuantizeOp, [b.op(nn.ClipOp, [x], min=0.0, max=0.2)], UI8, scale=[0.1])
    result = check_pass(program := b.finish([codes, other]), [np.ones((2, 3))], "narrow-codes")
    assert [
        str(r.type.element_type)
        for r in result.module.body.block.first_op.body.block.last_op.operands
    ] == ["ui8", "ui8"]
    assert program is not result
