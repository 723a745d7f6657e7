"""shape-inference: replace dynamic dimensions (`?`) by the sizes the shape rules imply."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, TensorType
from xdsl.rewriter import Rewriter

from ircomp.dialects.base import NNOperation, result_shape, shapes_compatible
from ircomp.ir.shapes import DYN
from ircomp.pass_manager import IrcompPass
from ircomp.passes._common import functions


def _refine(current: tuple[int, ...], inferred: tuple[int, ...]) -> tuple[int, ...]:
    """The xDSL dims of `current` with each `?` replaced by the inferred dim where the shape
    rule knows it (the rules write -1 for a dim they cannot know)."""
    return tuple(
        i if c == DYNAMIC_INDEX and i != DYN else c for c, i in zip(current, inferred, strict=True)
    )


@dataclass(frozen=True)
class ShapeInferencePass(IrcompPass):
    """Refine result types with dynamic dims (`tensor<?x64xf32>`) from each op's shape rule
    (`infer_result_shapes`, the rule the verifier checks), in program order so refinements
    flow forward, then update each `func.func` signature to its `func.return` operand types.

    Dims that depend on a dynamic function argument stay dynamic; static dims never change.

    Requires: a verified module. Guarantees: every result dim the operands determine is
    static; formats and computed values are unchanged.
    """

    name = "shape-inference"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in functions(op):
            changed = False
            for inner in function.walk():
                if not isinstance(inner, NNOperation):
                    continue
                if not any(
                    isinstance(r.type, TensorType) and DYNAMIC_INDEX in r.type.get_shape()
                    for r in inner.results
                ):
                    continue
                inferred = inner.infer_result_shapes()
                for result, shape in zip(inner.results, inferred, strict=True):
                    rtype = result.type
                    assert isinstance(rtype, TensorType)
                    current = tuple(rtype.get_shape())
                    if not shapes_compatible(result_shape(result), shape):
                        continue  # the verifier reports this
                    refined = _refine(current, tuple(shape))
                    if refined != current:
                        new_type = TensorType(rtype.element_type, list(refined), rtype.encoding)
                        Rewriter.replace_value_with_new_type(result, new_type)
                        changed = True
            if changed and not function.is_declaration:
                function.update_function_type()
