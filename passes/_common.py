"""Helpers shared by the built-in passes: reading and adding weights, erasing dead producers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import Rewriter

from ircomp.dialects import nn
from ircomp.dialects.num import format_of, is_float_type
from ircomp.numerics import Float
from ircomp.pass_manager import weights_of


def functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.walk() if isinstance(op, func.FuncOp)]


def element_type(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def weight_op(value: SSAValue) -> nn.WeightOp | None:
    """The `nn.weight` op producing `value`, if any."""
    owner = value.owner
    return owner if isinstance(owner, nn.WeightOp) else None


def stored_array(ctx: Context, op: nn.WeightOp) -> np.ndarray:
    """The tensor of a weight as stored (float values, or codes in the storage dtype)."""
    return weights_of(ctx).get(op.hash.data)


def float_values(ctx: Context, op: nn.WeightOp) -> np.ndarray:
    """The real values (float64) of a float-format weight (bf16 is stored as bit patterns)."""
    elem = element_type(op.result)
    array = stored_array(ctx, op)
    fmt = format_of(elem)
    if isinstance(fmt, Float) and fmt.kind == "bf16":
        return fmt.decode(array)
    return np.asarray(array, dtype=np.float64)


def to_storage(elem: Attribute, values: np.ndarray) -> np.ndarray:
    """Values of a float format (rounded to it) or integer codes -> the store's dtype."""
    fmt = format_of(elem)
    if is_float_type(elem):
        assert isinstance(fmt, Float)
        if fmt.kind == "bf16":
            return fmt.encode(values).astype(fmt.storage_dtype)
        return fmt.quantize(np.asarray(values, dtype=np.float64)).astype(fmt.storage_dtype)
    return np.asarray(values).astype(fmt.storage_dtype)


def new_weight(ctx: Context, name: str, array: np.ndarray, elem: Attribute) -> nn.WeightOp:
    """A (not yet inserted) `nn.weight` op for `array` (already in the storage dtype)."""
    key = weights_of(ctx).add(array)
    return nn.build(nn.WeightOp, [], TensorType(elem, list(array.shape)), name=name, hash=key)


def erase_unused_weights(
    values: Iterable[SSAValue | None], rewriter: PatternRewriter | None = None
) -> None:
    """Erase the `nn.weight` ops behind `values` that no longer have uses."""
    seen: set[Operation] = set()
    for value in values:
        if value is None:
            continue
        op = weight_op(value)
        if op is not None and op not in seen and op.parent is not None and not op.result.uses:
            seen.add(op)
            if rewriter is not None:
                rewriter.erase(op)
            else:
                Rewriter.erase_op(op)
