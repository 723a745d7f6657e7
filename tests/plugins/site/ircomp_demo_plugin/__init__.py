"""A third-party ircomp pass, found through the `ircomp.passes` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr

from ircomp.dialects import nn
from ircomp.pass_manager import IrcompPass


@dataclass(frozen=True)
class PrefixWeightNamesPass(IrcompPass):
    """Prefix the name of every `nn.weight` with `prefix`.

    Requires: nothing. Guarantees: only weight names change.
    """

    name: ClassVar[str] = "demo-prefix-weights"

    prefix: str = "demo."

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for inner in op.walk():
            if isinstance(inner, nn.WeightOp):
                inner.properties["name"] = StringAttr(self.prefix + inner.weight_name.data)
