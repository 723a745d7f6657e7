"""cse: merge ops that compute the same thing."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation
from xdsl.rewriter import Rewriter
from xdsl.traits import is_side_effect_free

from ircomp.dialects import nn
from ircomp.pass_manager import IrcompPass


def _key(op: Operation) -> tuple:
    props = op.properties
    if isinstance(op, nn.WeightOp):
        # Weights are identified by content; the name is only a label.
        props = {k: v for k, v in props.items() if k != "name"}
    return (
        op.name,
        tuple(op.operands),
        tuple(sorted(props.items())),
        tuple(sorted((k, v) for k, v in op.attributes.items() if k != nn.NAME_ATTR)),
        tuple(op.result_types),
    )


def _cse_block(block: Block) -> None:
    known: dict[tuple, Operation] = {}
    for op in list(block.ops):
        for region in op.regions:
            for inner in region.blocks:
                _cse_block(inner)
        if op.regions or not op.results or not is_side_effect_free(op):
            continue
        key = _key(op)
        first = known.get(key)
        if first is None:
            known[key] = op
            continue
        Rewriter.replace_op(op, [], list(first.results))


@dataclass(frozen=True)
class CommonSubexpressionEliminationPass(IrcompPass):
    """Merge side-effect-free ops with the same name, operands, properties, attributes and
    result types into the first of them (in block order).

    `nn.weight` ops with the same content hash merge even when their names differ, and so do
    ops whose source-layer `name` attributes differ; the first op and its name are kept.
    Merging carries along chains: two identical branches fed by duplicated weights become one.

    Requires: a verified module. Guarantees: no two ops in a block compute the same value;
    outputs are bit-identical.
    """

    name = "cse"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for region in op.regions:
            for block in region.blocks:
                _cse_block(block)
