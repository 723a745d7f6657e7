"""The `num` dialect: numeric formats used as element types of builtin tensors.

`!num.fixp<w, f>` and `!num.ufixp<w, f>` are signed / unsigned fixed point (value = code * 2^-f),
`!num.posit<n, es>` is a posit, `!num.bit` is one Boolean wire for logic. Builtin integers
(`i8`, `ui4`, ...) and floats (`f32`, `f16`, `bf16`) are formats too. The bit-level meaning of
every format is in `spec/numerics.md`; the arithmetic lives in `ircomp.numerics`.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntAttr,
    IntegerType,
    Signedness,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from ircomp.numerics import Bit, FixP, Float, FormatError, Int, NumericFormat, Posit


def _parse_int_pair(
    parser: AttrParser, make_format: type[NumericFormat], *extra: bool
) -> tuple[int, int]:
    """Parse `<a, b>` and report impossible parameters at their position in the text."""
    start = parser.pos
    with parser.in_angle_brackets():
        first = parser.parse_integer()
        parser.parse_punctuation(",")
        second = parser.parse_integer()
    try:
        make_format(first, second, *extra)
    except FormatError as err:
        parser.raise_error(str(err), start, parser.pos)
    return first, second


def _check(make_format: type[NumericFormat], *params: int | bool) -> None:
    try:
        make_format(*params)
    except FormatError as err:
        raise VerifyException(str(err)) from err


class _FixPBase(ParametrizedAttribute, TypeAttribute):
    width: IntAttr
    frac: IntAttr
    SIGNED: ClassVar[bool] = True

    def __init__(self, width: int, frac: int) -> None:
        super().__init__(IntAttr(width), IntAttr(frac))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        width, frac = _parse_int_pair(parser, FixP, cls.SIGNED)
        return [IntAttr(width), IntAttr(frac)]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.width.data}, {self.frac.data}>")

    def verify(self) -> None:
        _check(FixP, self.width.data, self.frac.data, self.SIGNED)


@irdl_attr_definition
class FixPType(_FixPBase):
    """Signed two's complement fixed point: `w` bits, `f` fraction bits."""

    name = "num.fixp"


@irdl_attr_definition
class UFixPType(_FixPBase):
    """Unsigned fixed point: `w` bits, `f` fraction bits."""

    name = "num.ufixp"
    SIGNED = False


@irdl_attr_definition
class PositType(ParametrizedAttribute, TypeAttribute):
    """posit<n, es>: n-bit posit with es exponent bits (2 <= n <= 16, 0 <= es <= 4)."""

    name = "num.posit"
    n: IntAttr
    es: IntAttr

    def __init__(self, n: int, es: int) -> None:
        super().__init__(IntAttr(n), IntAttr(es))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        n, es = _parse_int_pair(parser, Posit)
        return [IntAttr(n), IntAttr(es)]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.n.data}, {self.es.data}>")

    def verify(self) -> None:
        _check(Posit, self.n.data, self.es.data)


@irdl_attr_definition
class BitType(ParametrizedAttribute, TypeAttribute):
    """One Boolean wire, the element type of logic values."""

    name = "num.bit"


Num = Dialect("num", [], [FixPType, UFixPType, PositType, BitType])


def format_of(element_type: Attribute) -> NumericFormat:
    """The `ircomp.numerics` format an IR element type denotes; raises FormatError if none."""
    match element_type:
        case FixPType() | UFixPType():
            return FixP(element_type.width.data, element_type.frac.data, element_type.SIGNED)
        case PositType():
            return Posit(element_type.n.data, element_type.es.data)
        case BitType():
            return Bit()
        case IntegerType():
            width = element_type.width.data
            signed = element_type.signedness.data != Signedness.UNSIGNED and width > 1
            return Int(width, signed)
        case Float32Type():
            return Float("f32")
        case Float16Type():
            return Float("f16")
        case BFloat16Type():
            return Float("bf16")
    raise FormatError(f"{element_type} is not a numeric format ircomp knows")


def type_of(fmt: NumericFormat) -> Attribute:
    """The IR element type for an `ircomp.numerics` format (inverse of `format_of`)."""
    match fmt:
        case FixP(width=w, frac=f, signed=True):
            return FixPType(w, f)
        case FixP(width=w, frac=f, signed=False):
            return UFixPType(w, f)
        case Posit(n=n, es=es):
            return PositType(n, es)
        case Bit():
            return BitType()
        case Int(width=w, signed=s):
            return IntegerType(w, Signedness.SIGNLESS if s else Signedness.UNSIGNED)
        case Float(kind="f32"):
            return Float32Type()
        case Float(kind="f16"):
            return Float16Type()
        case Float(kind="bf16"):
            return BFloat16Type()
    raise FormatError(f"no IR type for format {fmt}")


def is_float_type(element_type: Attribute) -> bool:
    return isinstance(element_type, Float32Type | Float16Type | BFloat16Type)
