"""dce: erase ops whose results are never used."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.transforms.dead_code_elimination import region_dce

from ircomp.pass_manager import IrcompPass


@dataclass(frozen=True)
class DeadCodeEliminationPass(IrcompPass):
    """Erase every side-effect-free op whose results are unused, transitively.

    All `nn` ops are pure, so this removes dead branches and the `nn.weight` ops only they
    used (the pass manager drops tensors no op refers to from the returned program's store).
    Functions and `func.return` stay.

    Requires: a verified module. Guarantees: every remaining `nn` op contributes to an output;
    outputs are bit-identical.
    """

    name = "dce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        region_dce(op.body)
