"""How the interpreter represents the tensors of each element type as numpy arrays.

* `f32`: float32 values; `f16`: float16 values; `bf16`: float32 arrays holding bf16-rounded
  values (numpy has no bfloat16; weights of type bf16 are stored as uint16 codes and decoded).
* Every other format (integers, fixp, ufixp, posit, bit): the integer **codes** in the format's
  `storage_dtype` (posits as unsigned words, `i32` accumulators as int32, fixp as their codes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, SSAValue

from ircomp.dialects.num import format_of, is_float_type
from ircomp.numerics import Bit, FixP, Float, Int, NumericFormat, Posit, wrap_to_width
from ircomp.numerics.formats import int_range

F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)


@dataclass(frozen=True)
class Repr:
    """The numeric format of a tensor and the numpy dtype the interpreter holds it in."""

    fmt: NumericFormat
    dtype: np.dtype
    is_float: bool

    @property
    def frac(self) -> int:
        """Fraction bits of an integer-grid format (0 for integers)."""
        return self.fmt.frac if isinstance(self.fmt, FixP) else 0

    def code_range(self) -> tuple[int, int]:
        """Smallest and largest code of a non-float format."""
        fmt = self.fmt
        if isinstance(fmt, FixP | Int):
            return int_range(fmt.width, fmt.signed)
        if isinstance(fmt, Posit):
            return 0, (1 << fmt.n) - 1
        if isinstance(fmt, Bit):
            return 0, 1
        raise TypeError(f"{fmt.short_name} has no integer code range")

    def wrap(self, acc: np.ndarray) -> np.ndarray:
        """Two's complement wrap of int64 results to this format, in its storage dtype."""
        fmt = self.fmt
        if isinstance(fmt, FixP | Int):
            return wrap_to_width(acc, fmt.width, fmt.signed).astype(self.dtype)
        if isinstance(fmt, Bit):
            return wrap_to_width(acc, 1, False).astype(self.dtype)
        raise TypeError(f"cannot wrap integers to {fmt.short_name}")


def element_type(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def repr_of_type(elem: Attribute) -> Repr:
    fmt = format_of(elem)
    if is_float_type(elem):
        assert isinstance(fmt, Float)
        return Repr(fmt, np.dtype(np.float16) if fmt.kind == "f16" else F32, True)
    return Repr(fmt, fmt.storage_dtype, False)


def repr_of(value: SSAValue) -> Repr:
    return repr_of_type(element_type(value))


def round_bf16(x: np.ndarray) -> np.ndarray:
    """bf16-rounded values (ties to even, via f32) as float32."""
    return Float("bf16").quantize(x).astype(np.float32)


def float_rounder(rep: Repr) -> Callable[[np.ndarray], np.ndarray]:
    """Turns a float32/float64 result into the representation of the float format `rep`."""
    assert rep.is_float
    kind = rep.fmt.kind  # type: ignore[union-attr]
    if kind == "f32":
        return lambda y: y.astype(np.float32, copy=False)
    if kind == "f16":
        return lambda y: y.astype(np.float16)
    return round_bf16


def decode_bf16_codes(codes: np.ndarray) -> np.ndarray:
    """uint16 bf16 codes (the weight store's form) -> float32 values."""
    words = np.asarray(codes).astype(np.uint32) << np.uint32(16)
    return words.view(np.float32)
