"""One-op programs for kernel tests: the operands are function inputs or weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.ir import Attribute

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program


@dataclass
class In:
    """A function input (codes for non-float types)."""

    array: np.ndarray
    type: Attribute | None = None


@dataclass
class W:
    """A weight (codes for non-float types)."""

    array: np.ndarray
    type: Attribute | None = None


def one_op(
    op_type: type[nn.NNOp],
    operands: Sequence[In | W],
    result_format: Attribute | None = None,
    **props: Any,
) -> tuple[Program, list[np.ndarray]]:
    """A program applying `op_type` (named `layer`) to the operands, and its input arrays."""
    b = GraphBuilder()
    values, inputs = [], []
    for i, operand in enumerate(operands):
        if isinstance(operand, In):
            values.append(b.input(operand.array.shape, operand.type))
            inputs.append(operand.array)
        else:
            values.append(b.weight(f"layer.w{i}", operand.array, operand.type))
    results = b.op_multi(op_type, values, result_format, name="layer", **props)
    return b.finish(results), inputs
