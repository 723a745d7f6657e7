"""Torch versions of the codecs, for fake quantization while training.

`fake_quantize` gives exactly the values of the numpy `quantize_scaled` (computed in float64,
then cast to the input's dtype). No gradient logic lives here.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from ircomp.numerics.errors import FormatError
from ircomp.numerics.formats import (
    FLOAT_LAYOUTS,
    Bit,
    FixP,
    Float,
    Int,
    NumericFormat,
    Posit,
    check_scale,
    int_range,
)
from ircomp.numerics.posit import nar_code, posit_midpoint_table, posit_value_table

_GridFormat = FixP | Int | Bit


def _grid(fmt: _GridFormat) -> tuple[int, int, int]:
    """(frac, lo, hi) of a fixed-point-like format."""
    if isinstance(fmt, Bit):
        return 0, 0, 1
    frac = fmt.frac if isinstance(fmt, FixP) else 0
    return (frac, *int_range(fmt.width, fmt.signed))


def _as_double(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise FormatError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise FormatError("cannot quantize complex tensors")
    return x.to(torch.float64)


def _pow2(exponent: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """Exact float64 powers of two."""
    exp = torch.as_tensor(exponent, dtype=torch.float64, device=like.device)
    return torch.pow(torch.tensor(2.0, dtype=torch.float64, device=like.device), exp)


# ---------------------------------------------------------------- fixed point / integers


def _encode_grid(x: torch.Tensor, fmt: _GridFormat) -> torch.Tensor:
    frac, lo, hi = _grid(fmt)
    values = _as_double(x)
    if torch.isnan(values).any():
        raise FormatError(f"cannot encode nan as {fmt.short_name}")
    scaled = torch.round(values * _pow2(frac, values))
    return torch.clamp(scaled, lo, hi).to(torch.int64)


def _decode_grid(codes: torch.Tensor, fmt: _GridFormat) -> torch.Tensor:
    frac, lo, hi = _grid(fmt)
    ints = _check_codes(codes, lo, hi, fmt.short_name)
    return ints.to(torch.float64) * _pow2(-frac, ints)


def _check_codes(codes: torch.Tensor, lo: int, hi: int, name: str) -> torch.Tensor:
    if codes.is_floating_point() or codes.is_complex():
        raise FormatError(f"{name} codes must be integers, got dtype {codes.dtype}")
    ints = codes.to(torch.int64)
    if ints.numel() and (int(ints.min()) < lo or int(ints.max()) > hi):
        raise FormatError(f"{name} codes must be in {lo}..{hi}")
    return ints


# ---------------------------------------------------------------- posits


@cache
def _posit_tables_cpu(n: int, es: int) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.from_numpy(np.array(posit_value_table(n, es)))
    mids = torch.from_numpy(np.append(posit_midpoint_table(n, es), np.inf))
    return values, mids


def _posit_tables(fmt: Posit, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    values, mids = _posit_tables_cpu(fmt.n, fmt.es)
    return values.to(device), mids.to(device)


def _encode_posit(x: torch.Tensor, fmt: Posit) -> torch.Tensor:
    values = _as_double(x)
    _, mids = _posit_tables(fmt, values.device)
    mag = values.abs()
    below = torch.searchsorted(mids[:-1].contiguous(), mag.contiguous(), right=False)
    code = below + 1
    at_tie = mids[below] == mag
    code = torch.where(at_tie & (code % 2 == 1), code + 1, code)
    code = torch.where(mag == 0, torch.zeros_like(code), code)
    code = torch.where(values < 0, (-code) & ((1 << fmt.n) - 1), code)
    nar = torch.full_like(code, nar_code(fmt.n))
    return torch.where(torch.isfinite(values), code, nar).to(torch.int64)


def _decode_posit(codes: torch.Tensor, fmt: Posit) -> torch.Tensor:
    ints = _check_codes(codes, 0, (1 << fmt.n) - 1, fmt.short_name)
    table, _ = _posit_tables(fmt, ints.device)
    return table[ints]


# ---------------------------------------------------------------- floats


def _round_float_grid(
    x: torch.Tensor, mant_bits: int, emin: int, max_finite: float
) -> torch.Tensor:
    finite = torch.isfinite(x)
    safe = torch.where(finite, x, torch.zeros_like(x))
    _, exponent = torch.frexp(safe)
    ulp_exp = torch.clamp(exponent.to(torch.int64) - 1, min=emin) - mant_bits
    rounded = torch.round(safe * _pow2(-ulp_exp, x)) * _pow2(ulp_exp, x)
    overflow = rounded.abs() > max_finite
    rounded = torch.where(overflow, torch.copysign(torch.full_like(x, torch.inf), rounded), rounded)
    return torch.where(finite, rounded, x)


def _quantize_float(x: torch.Tensor, fmt: Float) -> torch.Tensor:
    values = _as_double(x)
    if fmt.kind in ("f32", "bf16"):
        f32 = FLOAT_LAYOUTS["f32"]
        values = _round_float_grid(values, f32.mant_bits, f32.emin, f32.max_finite)
    if fmt.kind == "f32":
        return values
    layout = FLOAT_LAYOUTS[fmt.kind]
    return _round_float_grid(values, layout.mant_bits, layout.emin, layout.max_finite)


_FLOAT_VIEWS = {
    "f16": (torch.float16, torch.int16, 0xFFFF),
    "bf16": (torch.bfloat16, torch.int16, 0xFFFF),
    "f32": (torch.float32, torch.int32, 0xFFFFFFFF),
}


def _encode_float(x: torch.Tensor, fmt: Float) -> torch.Tensor:
    float_dtype, int_dtype, mask = _FLOAT_VIEWS[fmt.kind]
    exact = _quantize_float(x, fmt).to(float_dtype)  # exact: the values are representable
    return exact.view(int_dtype).to(torch.int64) & mask


def _decode_float(codes: torch.Tensor, fmt: Float) -> torch.Tensor:
    float_dtype, int_dtype, mask = _FLOAT_VIEWS[fmt.kind]
    ints = _check_codes(codes, 0, mask, fmt.kind)
    half = (mask + 1) // 2
    signed = torch.where(ints >= half, ints - (mask + 1), ints).to(int_dtype)
    return signed.view(float_dtype).to(torch.float64)


# ---------------------------------------------------------------- public API


def encode(x: torch.Tensor, fmt: NumericFormat) -> torch.Tensor:
    """Nearest codes (int64 tensor) of `x` in `fmt`, exactly as `fmt.encode` does."""
    if isinstance(fmt, FixP | Int | Bit):
        return _encode_grid(x, fmt)
    if isinstance(fmt, Posit):
        return _encode_posit(x, fmt)
    if isinstance(fmt, Float):
        return _encode_float(x, fmt)
    raise FormatError(f"no torch codec for format {fmt!r}")


def decode(codes: torch.Tensor, fmt: NumericFormat) -> torch.Tensor:
    """Exact float64 values of `codes` in `fmt`, exactly as `fmt.decode` does."""
    if isinstance(fmt, FixP | Int | Bit):
        return _decode_grid(codes, fmt)
    if isinstance(fmt, Posit):
        return _decode_posit(codes, fmt)
    if isinstance(fmt, Float):
        return _decode_float(codes, fmt)
    raise FormatError(f"no torch codec for format {fmt!r}")


def quantize(x: torch.Tensor, fmt: NumericFormat) -> torch.Tensor:
    """decode(encode(x)) as a float64 tensor."""
    if isinstance(fmt, Float):
        return _quantize_float(x, fmt)
    return decode(encode(x, fmt), fmt)


def _scale_tensor(
    scale: float | np.ndarray | torch.Tensor, x: torch.Tensor, axis: int | None
) -> torch.Tensor:
    if isinstance(scale, torch.Tensor):
        scale = scale.detach().cpu().numpy()
    shaped = check_scale(scale, tuple(x.shape), axis)
    return torch.from_numpy(np.array(shaped, dtype=np.float64)).to(x.device)


def fake_quantize(
    x: torch.Tensor,
    fmt: NumericFormat,
    scale: float | np.ndarray | torch.Tensor = 1.0,
    axis: int | None = None,
) -> torch.Tensor:
    """scale * quantize(x / scale) in float64, returned in x's dtype (= numpy quantize_scaled)."""
    values = _as_double(x)
    scales = _scale_tensor(scale, values, axis)
    return (scales * quantize(values / scales, fmt)).to(x.dtype)
