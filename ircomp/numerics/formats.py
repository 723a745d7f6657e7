"""Numeric formats: fixed point, integers, posits, IEEE floats and single bits.

Every format maps between *codes* (int64 bit patterns / integers) and *values* (float64 reals):
`encode` rounds reals to the nearest code, `decode` gives a code's exact value, and `quantize`
is `decode(encode(x))`. The bit-level contract is in `spec/numerics.md`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ircomp.numerics.errors import FormatError
from ircomp.numerics.posit import (
    POSIT_MAX_ES,
    POSIT_MAX_N,
    check_posit_params,
    nar_code,
    posit_decode,
    posit_encode,
    posit_maxpos,
)

Codes = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]
FloatKind = Literal["f16", "bf16", "f32"]

MAX_ENUMERABLE_CODES = 1 << 24
MAX_WIDTH = 32
MAX_ABS_FRAC = 64


@runtime_checkable
class NumericFormat(Protocol):
    """What every numeric format offers (see the module docstring)."""

    def validate(self) -> None: ...

    def encode(self, x: npt.ArrayLike) -> Codes: ...

    def decode(self, codes: npt.ArrayLike) -> Values: ...

    def quantize(self, x: npt.ArrayLike) -> Values: ...

    def all_codes(self) -> Codes: ...

    @property
    def min_value(self) -> float: ...

    @property
    def max_value(self) -> float: ...

    @property
    def storage_dtype(self) -> np.dtype: ...

    @property
    def short_name(self) -> str: ...


# ---------------------------------------------------------------- parameter checks


def _check_int(family: str, name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise FormatError(f"{family} {name} must be an int, got {value!r}")
    if not lo <= value <= hi:
        raise FormatError(f"{family} {name} must be in {lo}..{hi}, got {value}")


def _check_bool(family: str, name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise FormatError(f"{family} {name} must be a bool, got {value!r}")


def _check_width(family: str, width: object, signed: bool) -> None:
    _check_bool(family, "signed", signed)
    low = 2 if signed else 1
    kind = "signed" if signed else "unsigned"
    _check_int(f"{kind} {family}", "width", width, low, MAX_WIDTH)


def _normalize(obj: object, **fields: object) -> None:
    """Store plain Python ints/bools in a frozen dataclass (numpy scalars compare oddly)."""
    for name, value in fields.items():
        object.__setattr__(obj, name, value)


# ---------------------------------------------------------------- integer grids


def int_range(width: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest code of a `width`-bit two's complement / unsigned integer."""
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def as_float_array(x: npt.ArrayLike) -> Values:
    """`x` as a float64 array; raises FormatError for non-numeric input."""
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise FormatError(f"expected real numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def check_codes(codes: npt.ArrayLike, lo: int, hi: int, name: str) -> Codes:
    """`codes` as int64, after checking they are integers in lo..hi."""
    array = np.asarray(codes)
    if array.dtype.kind not in "biu":
        raise FormatError(f"{name} codes must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < lo or array.max() > hi):
        raise FormatError(f"{name} codes must be in {lo}..{hi}")
    return array


def encode_grid(x: npt.ArrayLike, frac: int, lo: int, hi: int, name: str) -> Codes:
    """Codes of the grid code * 2**-frac nearest to `x`: ties to even, saturating at lo..hi."""
    values = as_float_array(x)
    if np.isnan(values).any():
        raise FormatError(f"cannot encode nan as {name}")
    with np.errstate(over="ignore"):  # overflow to +-inf saturates below
        scaled = np.rint(np.ldexp(values, frac))
    return np.clip(scaled, lo, hi).astype(np.int64)


def decode_grid(codes: Codes, frac: int) -> Values:
    """Exact values code * 2**-frac."""
    return np.ldexp(codes.astype(np.float64), -frac)


def _enumerable(count: int, name: str) -> None:
    if count > MAX_ENUMERABLE_CODES:
        raise FormatError(
            f"{name} has {count} codes; all_codes() is limited to {MAX_ENUMERABLE_CODES}"
        )


def _int_dtype(width: int, signed: bool) -> np.dtype:
    for bits in (8, 16, 32, 64):
        if width <= bits:
            return np.dtype(f"int{bits}" if signed else f"uint{bits}")
    raise FormatError(f"no storage dtype for width {width}")


class _IntGrid(ABC):
    """Shared behaviour of FixP, Int and Bit: integer codes lo..hi with value code * 2**-frac."""

    @abstractmethod
    def _layout(self) -> tuple[int, int, bool]:
        """(frac, width, signed) of the grid."""

    @property
    @abstractmethod
    def short_name(self) -> str:
        """The format's short name."""

    def _grid(self) -> tuple[int, int, int]:
        frac, width, signed = self._layout()
        return (frac, *int_range(width, signed))

    def encode(self, x: npt.ArrayLike) -> Codes:
        frac, lo, hi = self._grid()
        return encode_grid(x, frac, lo, hi, self.short_name)

    def decode(self, codes: npt.ArrayLike) -> Values:
        frac, lo, hi = self._grid()
        return decode_grid(check_codes(codes, lo, hi, self.short_name), frac)

    def quantize(self, x: npt.ArrayLike) -> Values:
        return self.decode(self.encode(x))

    def all_codes(self) -> Codes:
        _, lo, hi = self._grid()
        _enumerable(hi - lo + 1, self.short_name)
        return np.arange(lo, hi + 1, dtype=np.int64)

    @property
    def min_value(self) -> float:
        frac, lo, _ = self._grid()
        return float(np.ldexp(float(lo), -frac))

    @property
    def max_value(self) -> float:
        frac, _, hi = self._grid()
        return float(np.ldexp(float(hi), -frac))

    @property
    def storage_dtype(self) -> np.dtype:
        _, width, signed = self._layout()
        return _int_dtype(width, signed)


# ---------------------------------------------------------------- the formats


@dataclass(frozen=True)
class FixP(_IntGrid):
    """Fixed point: a `width`-bit two's complement (or unsigned) code, value code * 2**-frac."""

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self) -> None:
        self.validate()
        _normalize(self, width=int(self.width), frac=int(self.frac), signed=bool(self.signed))

    def validate(self) -> None:
        _check_width("fixp", self.width, self.signed)
        _check_int("fixp", "frac", self.frac, -MAX_ABS_FRAC, MAX_ABS_FRAC)

    def _layout(self) -> tuple[int, int, bool]:
        return self.frac, self.width, self.signed

    @property
    def short_name(self) -> str:
        prefix = "fixp" if self.signed else "ufixp"
        return f"{prefix}<{self.width},{self.frac}>"


@dataclass(frozen=True)
class Int(_IntGrid):
    """A `width`-bit two's complement (or unsigned) integer; value = code."""

    width: int
    signed: bool = True

    def __post_init__(self) -> None:
        self.validate()
        _normalize(self, width=int(self.width), signed=bool(self.signed))

    def validate(self) -> None:
        _check_width("int", self.width, self.signed)

    def _layout(self) -> tuple[int, int, bool]:
        return 0, self.width, self.signed

    @property
    def short_name(self) -> str:
        return f"{'i' if self.signed else 'ui'}{self.width}"


@dataclass(frozen=True)
class Bit(_IntGrid):
    """One Boolean wire: codes 0 and 1, value = code (reals round to the nearer, ties to 0)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """A bit has no parameters."""

    def _layout(self) -> tuple[int, int, bool]:
        return 0, 1, False

    @property
    def storage_dtype(self) -> np.dtype:
        return np.dtype(np.bool_)

    @property
    def short_name(self) -> str:
        return "bit"


@dataclass(frozen=True)
class Posit:
    """posit<n, es>: the unsigned n-bit word is the code (see `ircomp.numerics.posit`)."""

    n: int
    es: int

    def __post_init__(self) -> None:
        self.validate()
        _normalize(self, n=int(self.n), es=int(self.es))

    def validate(self) -> None:
        _check_int("posit", "n", self.n, 2, POSIT_MAX_N)
        _check_int("posit", "es", self.es, 0, POSIT_MAX_ES)
        check_posit_params(int(self.n), int(self.es))

    def encode(self, x: npt.ArrayLike) -> Codes:
        return posit_encode(as_float_array(x), self.n, self.es)

    def decode(self, codes: npt.ArrayLike) -> Values:
        return posit_decode(codes, self.n, self.es)

    def quantize(self, x: npt.ArrayLike) -> Values:
        return self.decode(self.encode(x))

    def all_codes(self) -> Codes:
        return np.arange(1 << self.n, dtype=np.int64)

    @property
    def nar(self) -> int:
        """The code of NaR (not a real)."""
        return nar_code(self.n)

    @property
    def min_value(self) -> float:
        return -posit_maxpos(self.n, self.es)

    @property
    def max_value(self) -> float:
        return posit_maxpos(self.n, self.es)

    @property
    def storage_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.n <= 8 else np.uint16)

    @property
    def short_name(self) -> str:
        return f"posit<{self.n},{self.es}>"


@dataclass(frozen=True)
class _FloatLayout:
    bits: int
    mant_bits: int
    emin: int
    max_finite: float


FLOAT_LAYOUTS: dict[str, _FloatLayout] = {
    "f16": _FloatLayout(16, 10, -14, 65504.0),
    "bf16": _FloatLayout(16, 7, -126, float.fromhex("0x1.fep127")),
    "f32": _FloatLayout(32, 23, -126, float.fromhex("0x1.fffffep127")),
}


def round_to_float_grid(x: Values, mant_bits: int, emin: int, max_finite: float) -> Values:
    """Round float64 `x` to nearest even in an IEEE-style binary format (overflow to +-inf)."""
    finite = np.isfinite(x)
    safe = np.where(finite, x, 0.0)
    _, exponent = np.frexp(safe)
    ulp_exp = np.maximum(exponent - 1, emin) - mant_bits
    with np.errstate(over="ignore"):  # overflow gives +-inf, as IEEE rounding does
        rounded = np.ldexp(np.rint(np.ldexp(safe, -ulp_exp)), ulp_exp)
    rounded = np.where(np.abs(rounded) > max_finite, np.copysign(np.inf, rounded), rounded)
    return np.where(finite, rounded, x)


def round_to_float(x: npt.ArrayLike, kind: FloatKind) -> Values:
    """Round reals to f16 / bf16 / f32 values (bf16 via f32, as hardware converts)."""
    values = as_float_array(x)
    f32 = FLOAT_LAYOUTS["f32"]
    if kind in ("f32", "bf16"):
        values = round_to_float_grid(values, f32.mant_bits, f32.emin, f32.max_finite)
    if kind == "f32":
        return values
    layout = FLOAT_LAYOUTS[kind]
    return round_to_float_grid(values, layout.mant_bits, layout.emin, layout.max_finite)


@dataclass(frozen=True)
class Float:
    """IEEE binary16 (`f16`), bfloat16 (`bf16`) or binary32 (`f32`); code = the bit pattern."""

    kind: FloatKind

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.kind not in FLOAT_LAYOUTS:
            raise FormatError(f"float kind must be one of f16, bf16, f32, got {self.kind!r}")

    @property
    def _bits(self) -> _FloatLayout:
        return FLOAT_LAYOUTS[self.kind]

    def quantize(self, x: npt.ArrayLike) -> Values:
        return round_to_float(x, self.kind)

    def encode(self, x: npt.ArrayLike) -> Codes:
        values = self.quantize(x)
        if self.kind == "f16":
            return values.astype(np.float16).view(np.uint16).astype(np.int64)
        words = values.astype(np.float32).view(np.uint32).astype(np.int64)
        return words >> 16 if self.kind == "bf16" else words

    def decode(self, codes: npt.ArrayLike) -> Values:
        array = check_codes(codes, 0, (1 << self._bits.bits) - 1, self.kind)
        with np.errstate(invalid="ignore"):  # signalling nan patterns are fine here
            if self.kind == "f16":
                return array.astype(np.uint16).view(np.float16).astype(np.float64)
            words = array.astype(np.uint32)
            if self.kind == "bf16":
                words = words << np.uint32(16)
            return words.view(np.float32).astype(np.float64)

    def all_codes(self) -> Codes:
        _enumerable(1 << self._bits.bits, self.kind)
        return np.arange(1 << self._bits.bits, dtype=np.int64)

    @property
    def min_value(self) -> float:
        return -self._bits.max_finite

    @property
    def max_value(self) -> float:
        return self._bits.max_finite

    @property
    def storage_dtype(self) -> np.dtype:
        dtypes = {"f16": np.float16, "bf16": np.uint16, "f32": np.float32}
        return np.dtype(dtypes[self.kind])

    @property
    def short_name(self) -> str:
        return self.kind


# ---------------------------------------------------------------- names


def _pair(match: re.Match[str]) -> tuple[int, int]:
    return int(match.group(1)), int(match.group(2))


_NAME_PATTERNS: list[tuple[str, Callable[[re.Match[str]], NumericFormat]]] = [
    (r"fixp<\s*(-?\d+)\s*,\s*(-?\d+)\s*>", lambda m: FixP(*_pair(m))),
    (r"ufixp<\s*(-?\d+)\s*,\s*(-?\d+)\s*>", lambda m: FixP(*_pair(m), signed=False)),
    (r"posit<\s*(-?\d+)\s*,\s*(-?\d+)\s*>", lambda m: Posit(*_pair(m))),
    (r"i(\d+)", lambda m: Int(int(m.group(1)))),
    (r"ui(\d+)", lambda m: Int(int(m.group(1)), signed=False)),
    (r"(f16|bf16|f32)", lambda m: Float(m.group(1))),  # type: ignore[arg-type]
    (r"bit", lambda m: Bit()),
]


def format_from_name(name: str) -> NumericFormat:
    """Parse a short name (`fixp<8,4>`, `ufixp<8,4>`, `posit<8,0>`, `i8`, `ui4`, `bf16`, `bit`)."""
    text = name.strip()
    for pattern, make in _NAME_PATTERNS:
        match = re.fullmatch(pattern, text)
        if match:
            return make(match)
    raise FormatError(f"unknown numeric format name {name!r}")


# ---------------------------------------------------------------- scales


def broadcast_along_axis(values: npt.ArrayLike, axis: int, ndim: int) -> np.ndarray:
    """Reshape a 1-D array so that it broadcasts along `axis` of an `ndim`-dim array."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise FormatError(f"per-channel values must be 1-D, got shape {array.shape}")
    if not -ndim <= axis < ndim:
        raise FormatError(f"axis must be in {-ndim}..{ndim - 1} for {ndim}-D data, got {axis}")
    shape = [1] * ndim
    shape[axis % ndim] = array.shape[0]
    return array.reshape(shape)


def per_channel(
    param: npt.ArrayLike, shape: tuple[int, ...], axis: int | None, name: str
) -> np.ndarray:
    """A scalar as a 0-d array, or a 1-D per-channel array reshaped to broadcast along `axis`."""
    array = np.asarray(param)
    if array.ndim == 0:
        return array
    if axis is None:
        raise FormatError(f"a per-channel {name} (shape {array.shape}) needs an axis")
    shaped = broadcast_along_axis(array, axis, len(shape))
    if array.shape[0] != shape[axis % len(shape)]:
        raise FormatError(
            f"per-channel {name} has {array.shape[0]} entries but axis {axis} of data "
            f"with shape {shape} has {shape[axis % len(shape)]}"
        )
    return shaped


def check_scale(scale: npt.ArrayLike, shape: tuple[int, ...], axis: int | None) -> Values:
    """Validated float64 scale (positive, finite) broadcastable against data of `shape`."""
    array = as_float_array(scale)
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise FormatError("scales must be positive and finite")
    return per_channel(array, shape, axis, "scale")


def quantize_scaled(
    x: npt.ArrayLike,
    fmt: NumericFormat,
    scale: npt.ArrayLike = 1.0,
    axis: int | None = None,
) -> Values:
    """scale * fmt.quantize(x / scale), scale per tensor (scalar) or per channel along `axis`."""
    values = as_float_array(x)
    scales = check_scale(scale, values.shape, axis)
    with np.errstate(over="ignore"):  # x / scale beyond float range: +-inf, which saturates
        scaled = values / scales
    return scales * fmt.quantize(scaled)
