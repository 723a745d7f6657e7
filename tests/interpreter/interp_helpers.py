"""Build one-op (or small) programs and run them through the golden interpreter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from op_helpers import In, W, one_op
from xdsl.ir import Attribute

from ircomp.dialects import nn
from ircomp.interpreter import run


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
    program, inputs = one_op(op_type, operands, result_format, **props)
    return run(program, inputs)


def rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)
