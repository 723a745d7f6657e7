"""fold-batchnorm: fold an inference batch norm into the conv2d / linear that feeds it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ircomp.dialects import nn
from ircomp.dialects.num import is_float_type
from ircomp.pass_manager import IrcompPass
from ircomp.passes._common import (
    element_type,
    erase_unused_weights,
    float_values,
    new_weight,
    to_storage,
    weight_op,
)


def _bias_name(weight_name: str) -> str:
    stem = weight_name.removesuffix(".weight")
    return f"{stem}.bias"


@dataclass
class _FoldBatchNorm(RewritePattern):
    ctx: Context

    @op_type_rewrite_pattern
    def match_and_rewrite(self, bn: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        mac = bn.input.owner
        if not isinstance(mac, nn.Conv2dOp | nn.LinearOp):
            return
        if not mac.result.has_one_use() or not is_float_type(element_type(mac.result)):
            return
        if isinstance(mac, nn.LinearOp) and len(mac.result.type.get_shape()) != 2:
            return  # batch norm normalizes axis 1, the features only for [N, F] results
        params = [weight_op(v) for v in (bn.scale, bn.bias, bn.mean, bn.var)]
        w_op = weight_op(mac.weight)
        b_op = weight_op(mac.bias) if mac.bias is not None else None
        if None in params or w_op is None or (mac.bias is not None and b_op is None):
            return
        scale, beta, mean, var = (float_values(self.ctx, p) for p in params)
        weight = float_values(self.ctx, w_op)
        bias = float_values(self.ctx, b_op) if b_op is not None else np.zeros(weight.shape[0])
        factor = scale / np.sqrt(var + bn.get("epsilon"))
        new_w = weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
        new_b = (bias - mean) * factor + beta

        elem = element_type(mac.result)
        w_name = w_op.weight_name.data
        b_name = b_op.weight_name.data if b_op is not None else _bias_name(w_name)
        w_new = new_weight(self.ctx, f"{w_name}.bn_folded", to_storage(elem, new_w), elem)
        b_new = new_weight(self.ctx, f"{b_name}.bn_folded", to_storage(elem, new_b), elem)
        folded: Operation = type(mac).create(
            operands=[mac.input, w_new.result, b_new.result],
            result_types=[bn.result.type],
            properties=dict(mac.properties),
            attributes=dict(mac.attributes),
        )
        old_operands = [*mac.operands, *bn.operands[1:]]
        rewriter.replace(bn, [w_new, b_new, folded])
        rewriter.erase(mac)
        erase_unused_weights(old_operands, rewriter)


@dataclass(frozen=True)
class FoldBatchNormPass(IrcompPass):
    """Fold `nn.batchnorm` into the float `nn.conv2d` / `nn.linear` that feeds it.

    With s = scale / sqrt(var + eps): W' = W * s (per output channel), b' = (b - mean) * s +
    bias (b = 0 when the conv/linear has none). W' and b' are computed in float64, rounded to
    the tensor format and added to the weight store as `<weight>.bn_folded` and
    `<bias>.bn_folded`; the old tensors go when nothing else uses them. The folded op keeps
    the conv/linear's properties and attributes (its source-layer `name`).

    Requires: the conv/linear result has no user but the batch norm; its weight, bias and the
    batch-norm parameters are `nn.weight` tensors; a linear result is 2-D [N, features].
    Other batch norms are left alone. Guarantees: outputs equal the unfolded graph within
    float rounding (rtol/atol 1e-5 on f32).
    """

    name = "fold-batchnorm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_FoldBatchNorm(ctx), apply_recursively=False).rewrite_module(op)
