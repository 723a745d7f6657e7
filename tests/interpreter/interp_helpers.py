"""Build one-op (or small) programs and run them through the golden interpreter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.ir import Attribute

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder


@dataclass
class In:
    """A function input."""

    array: np.ndarray
    type: Attribute | None = None


@dataclass
class W:
    """A weight (codes for non-float types)."""

    array: np.ndarray
    type: Attribute | None = None


def run_op(
    op_type: type[nn.NNOp],
    operands: Sequence[In | W],
    result_format: Attribute | None = None,
    **props: Any,
) -> np.ndarray:
    """Build `op_type` on the operands and return its (first) result."""
    outs = run_op_multi(op_type, operands, result_format, **props)
    assert len(outs) == 1
    return outs[0]


def run_op_multi(
    op_type: type[nn.NNOp],
    operands: Sequence[In | W],
    result_format: Attribute | None = None,
    **props: Any,
) -> list[np.ndarray]:
    b = GraphBuilder()
    values, inputs = [], []
    for i, operand in enumerate(operands):
        if isinstance(operand, In):
            values.append(b.input(operand.array.shape, operand.type))
            inputs.append(operand.array)
        else:
            values.append(b.weight(f"w{i}", operand.array, operand.type))
    results = b.op_multi(op_type, values, result_format, **props)
    return run(b.finish(results), inputs)


def rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)
