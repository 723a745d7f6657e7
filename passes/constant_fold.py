"""constant-fold: evaluate ops whose operands are all weights, at compile time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import Rewriter

from ircomp.dialects import nn
from ircomp.errors import IrcompError, PassFailure
from ircomp.ir.program import Program
from ircomp.pass_manager import IrcompPass, weights_of
from ircomp.passes._common import (
    element_type,
    erase_unused_weights,
    functions,
    new_weight,
    to_storage,
)


def _foldable(op: Operation) -> bool:
    return (
        isinstance(op, nn.NNOp)
        and not isinstance(op, nn.WeightOp)
        and bool(op.operands)
        and all(isinstance(v.owner, nn.WeightOp) for v in op.operands)
    )


def _evaluate(ctx: Context, op: nn.NNOp) -> list[np.ndarray]:
    """Run `op` alone on its weights with the golden interpreter."""
    from ircomp.interpreter import run

    block = Block()
    mapping: dict[SSAValue, SSAValue] = {}
    for value in op.operands:
        if value not in mapping:
            clone = value.owner.clone()
            block.add_op(clone)
            mapping[value] = clone.results[0]
    single = op.clone(value_mapper=mapping)
    block.add_op(single)
    block.add_op(func.ReturnOp(*single.results))
    types = [r.type for r in single.results]
    module = ModuleOp([func.FuncOp("main", ([], types), Region(block))])
    try:
        outputs = run(Program(module, weights_of(ctx)), [])
    except IrcompError as err:
        failure = PassFailure(f"the golden interpreter cannot evaluate {op.name}: {err}")
        failure.op = op  # type: ignore[attr-defined]  # the pass manager points at it
        raise failure from err
    return [np.asarray(o) for o in outputs]


def _first_weight_name(op: Operation) -> str:
    owner = op.operands[0].owner
    assert isinstance(owner, nn.WeightOp)
    return owner.weight_name.data


@dataclass(frozen=True)
class ConstantFoldPass(IrcompPass):
    """Replace every op whose operands all come from `nn.weight` by new `nn.weight` tensors
    holding its results, computed by the golden interpreter (`ircomp.interpreter`), so the
    folded values are exactly what the op would compute at run time. Folding repeats along
    chains of weight-only ops. A folded result is named `<first operand's weight name>.folded`
    (`.folded.<i>` for the i-th result of a multi-result op); weights nothing uses any more
    are erased.

    Options: `max-elements`: ops whose results hold more elements in total are left alone.

    Requires: a verified module. Guarantees: outputs are bit-identical; no op (within the
    size limit) has only weight operands.
    """

    name = "constant-fold"

    max_elements: int = 1 << 20

    def __post_init__(self) -> None:
        if self.max_elements < 0:
            raise ValueError(f"max-elements must be >= 0, got {self.max_elements}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in functions(op):
            retyped = False
            for block in function.body.blocks:
                for inner in list(block.ops):
                    if inner.parent is None or not _foldable(inner):
                        continue
                    assert isinstance(inner, nn.NNOp)
                    sizes = [math.prod(s) for s in inner.infer_result_shapes()]
                    if sum(sizes) > self.max_elements:
                        continue
                    retyped |= self._fold(ctx, inner)
            if retyped and not function.is_declaration:
                function.update_function_type()

    def _fold(self, ctx: Context, op: nn.NNOp) -> bool:
        outputs = _evaluate(ctx, op)
        base = _first_weight_name(op)
        names = (
            [f"{base}.folded"]
            if len(outputs) == 1
            else [f"{base}.folded.{i}" for i in range(len(outputs))]
        )
        new_ops = []
        for result, array, name in zip(op.results, outputs, names, strict=True):
            elem = element_type(result)
            new_ops.append(new_weight(ctx, name, to_storage(elem, array), elem))
        retyped = any(
            isinstance(r.type, TensorType) and r.type != w.result.type
            for r, w in zip(op.results, new_ops, strict=True)
        )
        operands = list(op.operands)
        Rewriter.replace_op(op, new_ops, [w.result for w in new_ops])
        erase_unused_weights(operands)
        return retyped
