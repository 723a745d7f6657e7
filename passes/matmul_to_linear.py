"""matmul-to-linear: `nn.matmul(x, W)` with a constant 2-D W becomes `nn.linear(x, W^T)`, and a
following `nn.add` of a constant per-feature vector becomes the linear's bias.

Exporters (tf2onnx, QONNX/FINN, torch.onnx with transposed weights) leave fully connected
layers as MatMul + Add; later passes (`logic-extract`, `fold-batchnorm`) and backends look for
`nn.linear`. Integer layers are rewritten exactly (zero points carried over); float layers keep
their products and bias, but the accumulation order becomes that of the linear kernel (float
results may differ in the last bits, as between BLAS builds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from ircomp.dialects import nn
from ircomp.dialects.base import result_shape
from ircomp.pass_manager import IrcompPass
from ircomp.passes._common import (
    element_type,
    erase_unused_weights,
    functions,
    new_weight,
    stored_array,
    weight_op,
)


def _bias_add(mm: nn.MatMulOp) -> tuple[nn.AddOp, nn.WeightOp] | None:
    """The `nn.add` of a constant [M] / [1, M] vector that alone uses `mm`'s result."""
    uses = list(mm.result.uses)
    if len(uses) != 1 or not isinstance(uses[0].operation, nn.AddOp):
        return None
    add = uses[0].operation
    other = add.rhs if add.lhs is mm.result else add.lhs
    const = weight_op(other)
    features = result_shape(mm.result)[-1]
    if const is None or element_type(other) != element_type(mm.result):
        return None
    shape = result_shape(other)
    if not shape or shape[-1] != features or any(d != 1 for d in shape[:-1]):
        return None
    return add, const


@dataclass(frozen=True)
class MatMulToLinearPass(IrcompPass):
    """Rewrite matmul-by-a-constant (+ bias add) as `nn.linear` with weight [out, in].

    Requires: the right operand is an `nn.weight` of rank 2. Guarantees: integer results are
    unchanged; float results are the same sums in the linear kernel's order.
    """

    name = "matmul-to-linear"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in functions(op):
            for mm in [o for o in function.walk() if isinstance(o, nn.MatMulOp)]:
                self._rewrite(ctx, mm)

    def _rewrite(self, ctx: Context, mm: nn.MatMulOp) -> None:
        w_op = weight_op(mm.rhs)
        if w_op is None or len(result_shape(mm.rhs)) != 2 or len(result_shape(mm.lhs)) < 2:
            return
        name = w_op.weight_name.data
        transposed = np.ascontiguousarray(stored_array(ctx, w_op).T)
        new_w = new_weight(ctx, f"{name}.T", transposed, element_type(mm.rhs))
        bias = _bias_add(mm)
        operands = [mm.lhs, new_w.result]
        new_ops: list[Operation] = [new_w]
        replaced: Operation = mm
        if bias is not None:
            add, const = bias
            vector = np.ascontiguousarray(stored_array(ctx, const).reshape(-1))
            new_b = new_weight(ctx, const.weight_name.data, vector, element_type(add.result))
            operands.append(new_b.result)
            new_ops.append(new_b)
            replaced = add
        result_type = replaced.results[0].type
        assert isinstance(result_type, TensorType)
        linear = nn.build(
            nn.LinearOp,
            operands,
            result_type,
            input_zero_point=mm.get("input_zero_point"),
            weight_zero_point=mm.get("weight_zero_point"),
        )
        label = mm.attributes.get(nn.NAME_ATTR)
        if isinstance(label, StringAttr):
            linear.attributes[nn.NAME_ATTR] = label
        new_ops.append(linear)
        dead = [*mm.operands, *(replaced.operands if replaced is not mm else [])]
        Rewriter.insert_op(new_ops, InsertPoint.before(replaced))
        replaced.results[0].replace_all_uses_with(linear.result)
        if replaced is not mm:
            Rewriter.erase_op(replaced)
        Rewriter.erase_op(mm)
        erase_unused_weights(dead)
