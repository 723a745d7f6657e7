"""narrow-codes: give integer codes the narrowest integer format their producer guarantees.

Exporters store low-bit activations in 8-bit containers (QDQ `uint8` with a Clip or a fused
clamp to 0..3, say). This pass reads the range an op guarantees — a requantize `clamp`, or a
per-tensor quantize of a value bounded by clip / relu / hardtanh — and rewrites the result type
to the smallest `ui<w>` / `i<w>` holding it. The codes are unchanged; formats now say how many
bits they carry, which `logic-extract` and bit-level backends need.

Only results whose every user reads codes by value (MAC inputs, requantize, dequantize, logic
ops) are narrowed; function results keep their type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerType, ModuleOp, Signedness, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import Rewriter

from ircomp.dialects import logic, nn
from ircomp.interpreter.kernels import KERNELS
from ircomp.interpreter.kernels import Context as KernelContext
from ircomp.pass_manager import IrcompPass, weights_of
from ircomp.passes._common import element_type, functions

_READERS = (nn.RequantizeOp, nn.DequantizeOp, *logic.LAYER_OPS)


def _float_bounds(value: SSAValue) -> tuple[float, float] | None:
    """Real bounds of a float value set by its producer (clip, relu, hardtanh)."""
    op = value.owner
    if isinstance(op, nn.ClipOp | nn.HardTanhOp):
        return op.get("min"), op.get("max")
    if isinstance(op, nn.ReluOp):
        inner = _float_bounds(op.input)
        return (0.0, inner[1]) if inner else None
    return None


def code_range(op: Operation, ctx: Context) -> tuple[int, int] | None:
    """The codes `op`'s result can take, when its producer bounds them more than its format."""
    if isinstance(op, nn.RequantizeOp):
        clamp = op.get("clamp")
        return (int(clamp[0]), int(clamp[1])) if clamp else None
    if isinstance(op, nn.QuantizeOp) and len(op.get("scale")) == 1:
        bounds = _float_bounds(op.input)
        if bounds is None or not all(np.isfinite(bounds)):
            return None
        rank = len(op.input.type.get_shape())  # type: ignore[attr-defined]
        x = np.array(bounds, dtype=np.float32).reshape((2,) + (1,) * (rank - 1))
        run = KERNELS[nn.QuantizeOp](op, KernelContext(weights_of(ctx)))
        codes = run(x)[0].reshape(-1)
        return int(codes.min()), int(codes.max())
    return None


def narrowest(lo: int, hi: int) -> IntegerType:
    """The smallest `ui<w>` (lo >= 0) or signed `i<w>` holding lo..hi."""
    if lo >= 0:
        return IntegerType(max(hi.bit_length(), 1), Signedness.UNSIGNED)
    width = max(hi.bit_length(), (-lo - 1).bit_length()) + 1
    return IntegerType(max(width, 2))


def _readers_only(value: SSAValue) -> bool:
    for use in value.uses:
        user = use.operation
        if isinstance(user, nn.MacOp):
            if user.mac_operands()[0] is not value:
                return False
        elif not isinstance(user, _READERS) or user.operands[0] is not value:
            return False
    return bool(value.uses)


@dataclass(frozen=True)
class NarrowCodesPass(IrcompPass):
    """Shrink integer code formats to the range their producers guarantee (values unchanged).

    Requires nothing. Guarantees: the same codes everywhere; only result types change.
    """

    name = "narrow-codes"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in functions(op):
            for inner in list(function.walk()):
                if isinstance(inner, nn.RequantizeOp | nn.QuantizeOp):
                    self._narrow(ctx, inner)

    def _narrow(self, ctx: Context, op: nn.RequantizeOp | nn.QuantizeOp) -> None:
        current = element_type(op.result)
        if not isinstance(current, IntegerType) or not _readers_only(op.result):
            return
        bounds = code_range(op, ctx)
        if bounds is None:
            return
        target = narrowest(*bounds)
        if target.width.data >= current.width.data:
            return
        shape = op.result.type.get_shape()  # type: ignore[attr-defined]
        narrowed = type(op).create(
            operands=list(op.operands),
            result_types=[TensorType(target, shape)],
            properties=dict(op.properties),
            attributes=dict(op.attributes),
        )
        Rewriter.replace_op(op, narrowed)
