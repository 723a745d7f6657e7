"""The `num` types: printing, parsing, verification and the mapping to numeric formats."""

import re

import pytest
from xdsl.dialects.builtin import BFloat16Type, Float32Type, IntegerType, Signedness, TensorType
from xdsl.utils.exceptions import VerifyException

from ircomp.dialects.num import BitType, FixPType, PositType, UFixPType, format_of, type_of
from ircomp.errors import IRParseError
from ircomp.ir.program import parse_module, verify_module
from ircomp.numerics import Bit, FixP, Float, Int, Posit


def _module_with(element: str) -> str:
    return (
        f"func.func @main(%x: tensor<4x{element}>) -> tensor<4x{element}> {{\n"
        f"  func.return %x : tensor<4x{element}>\n}}\n"
    )


@pytest.mark.parametrize(
    "text",
    ["!num.fixp<8, 4>", "!num.ufixp<4, -2>", "!num.posit<4, 1>", "!num.posit<16, 4>", "!num.bit"],
)
def test_types_round_trip(text: str) -> None:
    module = parse_module(_module_with(text))
    verify_module(module)
    assert f"tensor<4x{text}>" in str(module)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!num.posit<17, 1>", "posit n must be in 2..16, got 17"),
        ("!num.posit<8, 5>", "posit es must be in 0..4, got 5"),
        ("!num.posit<1, 0>", "posit n must be in 2..16, got 1"),
        ("!num.fixp<33, 4>", "width"),
        ("!num.fixp<1, 0>", "width"),
        ("!num.fixp<8, 65>", "frac"),
        ("!num.ufixp<0, 0>", "width"),
    ],
)
def test_impossible_parameters_are_rejected_where_written(text: str, message: str) -> None:
    with pytest.raises(IRParseError, match=re.escape(message)) as err:
        parse_module(_module_with(text), "model.mlir")
    assert "model.mlir:1:" in str(err.value)


def test_impossible_parameters_are_rejected_when_built_in_python() -> None:
    with pytest.raises(VerifyException, match=r"posit es must be in 0\.\.4"):
        PositType(8, 7)


def test_malformed_type_names_line_and_column() -> None:
    with pytest.raises(IRParseError, match=r"model.mlir:1:\d+"):
        parse_module(_module_with("!num.fixp<8>"), "model.mlir")


@pytest.mark.parametrize(
    ("ir_type", "fmt"),
    [
        (FixPType(8, 4), FixP(8, 4, True)),
        (UFixPType(6, 2), FixP(6, 2, False)),
        (PositType(4, 1), Posit(4, 1)),
        (BitType(), Bit()),
        (IntegerType(8), Int(8, True)),
        (IntegerType(4, Signedness.UNSIGNED), Int(4, False)),
        (Float32Type(), Float("f32")),
        (BFloat16Type(), Float("bf16")),
    ],
)
def test_format_mapping_is_a_bijection(ir_type, fmt) -> None:
    assert format_of(ir_type) == fmt
    assert type_of(fmt) == ir_type


def test_i1_is_an_unsigned_bit_wide_integer() -> None:
    assert format_of(IntegerType(1)) == Int(1, False)


def test_format_types_are_tensor_elements() -> None:
    t = TensorType(PositType(8, 0), [2, 3])
    assert str(t) == "tensor<2x3x!num.posit<8, 0>>"
