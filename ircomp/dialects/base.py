"""One textual syntax and one verification path shared by every `nn`/`logic` op.

Custom form:  `%r = nn.op %a, %b {prop = ...} : (tensor<..>, tensor<..>) -> tensor<..>`
Properties equal to their declared default are omitted when printing and filled in when parsing,
so `parse(print(m))` reproduces `m` and printed IR stays short. The generic MLIR form is xDSL's.

Ops declare `infer_result_shapes` (shape rule) and `verify_formats` (numeric-format rule); the
verifier checks both, and the shape-inference pass reuses `infer_result_shapes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from xdsl.dialects.builtin import DYNAMIC_INDEX, TensorType
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import IRDLOperation, OptPropertyDef
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from ircomp.ir.shapes import DYN, ShapeError

Shape = tuple[int, ...]


class NNOperation(IRDLOperation):
    """Base of ircomp's tensor ops: uniform custom syntax, shape and format verification."""

    # Properties a derived op wants printed even when they equal their default.
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ()

    # ---- syntax -------------------------------------------------------------------------
    def _property_defaults(self) -> dict[str, Attribute | None]:
        op_def = type(self).get_irdl_definition()
        return {name: pdef.default_value for name, pdef in op_def.properties.items()}

    def print(self, printer: Printer) -> None:
        if self.operands:
            printer.print_string(" ")
            printer.print_list(self.operands, printer.print_operand)
        defaults = self._property_defaults()
        shown = {
            name: value
            for name, value in self.properties.items()
            if name in self.ALWAYS_PRINT or defaults.get(name) != value
        }
        shown.update(self.attributes)
        if shown:
            printer.print_string(" ")
            printer.print_attr_dict(shown)
        printer.print_string(" : ")
        printer.print_function_type([o.type for o in self.operands], [r.type for r in self.results])

    @classmethod
    def parse(cls, parser: Parser) -> NNOperation:
        unresolved = []
        first = parser.parse_optional_unresolved_operand()
        if first is not None:
            unresolved.append(first)
            while parser.parse_optional_punctuation(",") is not None:
                unresolved.append(parser.parse_unresolved_operand())
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        pos = parser.pos
        fn_type = parser.parse_function_type()
        operands = parser.resolve_operands(unresolved, fn_type.inputs.data, pos)
        op_def = cls.get_irdl_definition()
        properties: dict[str, Attribute] = {}
        for name, pdef in op_def.properties.items():
            if name in attrs:
                properties[name] = attrs.pop(name)
            elif pdef.default_value is not None:
                properties[name] = pdef.default_value
            elif not isinstance(pdef, OptPropertyDef):
                parser.raise_error(f"{cls.name} needs the property '{name}'", pos, parser.pos)
        return cls.create(
            operands=operands,
            result_types=list(fn_type.outputs.data),
            properties=properties,
            attributes=attrs,
        )

    # ---- verification -------------------------------------------------------------------
    def fail(self, message: str) -> VerifyException:
        return VerifyException(f"{self.name}: {message}")

    def shape_rule(self, rule: Callable[..., Shape | list[Shape]], *args: Any) -> list[Shape]:
        """Run a rule of `ircomp.ir.shapes`, turning its ShapeError into a verify error."""
        try:
            out = rule(*args)
        except ShapeError as err:
            raise self.fail(str(err)) from err
        return out if isinstance(out, list) else [out]

    def infer_result_shapes(self) -> list[Shape]:
        """The result shapes implied by operand shapes and properties (-1 = dynamic)."""
        raise VerifyException(f"{self.name} defines no shape rule")

    def verify_formats(self) -> None:
        """Raise VerifyException when operand/result element types break the op's rule."""

    def verify_(self) -> None:
        for value in (*self.operands, *self.results):
            if not isinstance(value.type, TensorType):
                raise VerifyException(f"{self.name}: expected tensor types, got {value.type}")
        self.verify_formats()
        expected = self.infer_result_shapes()
        actual = [result_shape(r) for r in self.results]
        if len(expected) != len(actual) or not all(
            shapes_compatible(e, a) for e, a in zip(expected, actual, strict=False)
        ):
            raise VerifyException(
                f"{self.name}: result shape {format_shapes(actual)} does not match the "
                f"shape implied by its operands, {format_shapes(expected)}"
            )


def result_shape(value: SSAValue) -> Shape:
    """The shape of a tensor value in the shape rules' convention (-1 = dynamic)."""
    assert isinstance(value.type, TensorType)
    return tuple(DYN if d == DYNAMIC_INDEX else d for d in value.type.get_shape())


def shapes_compatible(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) == len(b) and all(
        x == y or DYN in (x, y) or DYNAMIC_INDEX in (x, y) for x, y in zip(a, b, strict=True)
    )


def format_shapes(shapes: Sequence[Shape]) -> str:
    def one(shape: Shape) -> str:
        return "x".join("?" if d in (DYN, DYNAMIC_INDEX) else str(d) for d in shape) or "scalar"

    return ", ".join(f"<{one(s)}>" for s in shapes)
