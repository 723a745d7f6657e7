"""Exact, vectorized posit<n, es> codec.

A posit code is the unsigned n-bit word. `0...0` is zero, `10...0` is NaR (not a real, decoded
as nan), and a negative value is the two's complement of the word of its magnitude. For a
positive word the bits after the sign are a regime run of `m` equal bits `b` (ended by the
opposite bit or the word end), then up to `es` exponent bits (bits cut off by the word end are
zero), then the fraction bits. With `k = m - 1` if `b == 1` else `-m` the value is
`2**(k * 2**es + e) * (1 + f / 2**len(f))`.

Encoding rounds to nearest on the bit string with ties to the even code, never rounds a nonzero
real to zero (minpos instead) and never rounds a real to NaR (maxpos instead). The tie point
between positive codes `c` and `c + 1` is the value of the (n+1)-bit posit with code `2c + 1`,
so encoding is a search in a sorted table of midpoints.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from ircomp.numerics.errors import FormatError

POSIT_MAX_N = 16
POSIT_MAX_ES = 4
_TABLE_MAX_N = POSIT_MAX_N + 1  # midpoint tables use the (n+1)-bit posit


def check_posit_params(n: int, es: int, max_n: int = POSIT_MAX_N) -> None:
    """Raise FormatError unless 2 <= n <= max_n and 0 <= es <= 4."""
    if not 2 <= n <= max_n:
        raise FormatError(f"posit n must be in 2..{max_n}, got {n}")
    if not 0 <= es <= POSIT_MAX_ES:
        raise FormatError(f"posit es must be in 0..{POSIT_MAX_ES}, got {es}")


def nar_code(n: int) -> int:
    """The code of NaR, the word 10...0."""
    return 1 << (n - 1)


def _regime_run(mag: npt.NDArray[np.int64], n: int) -> tuple[npt.NDArray[np.int64], ...]:
    """Regime bit and run length of positive words `mag` (sign bit 0)."""
    first = (mag >> (n - 2)) & 1
    run = np.zeros_like(mag)
    running = np.ones(mag.shape, dtype=bool)
    for pos in range(n - 2, -1, -1):
        running &= ((mag >> pos) & 1) == first
        run += running
    return first, run


def _decode_positive(mag: npt.NDArray[np.int64], n: int, es: int) -> npt.NDArray[np.float64]:
    """Exact values of positive posit words (0 < mag < 2**(n-1))."""
    first, run = _regime_run(mag, n)
    k = np.where(first == 1, run - 1, -run)
    rem_len = np.maximum(n - 2 - run, 0)
    rem = mag & ((np.int64(1) << rem_len) - 1)
    exp_len = np.minimum(es, rem_len)
    frac_len = rem_len - exp_len
    exponent = (rem >> frac_len) << (es - exp_len)
    fraction = rem & ((np.int64(1) << frac_len) - 1)
    significand = (np.int64(1) << frac_len) + fraction
    scale = k * (1 << es) + exponent - frac_len
    return np.ldexp(significand.astype(np.float64), scale.astype(np.int32))


@cache
def _value_table(n: int, es: int) -> npt.NDArray[np.float64]:
    check_posit_params(n, es, _TABLE_MAX_N)
    codes = np.arange(1 << n, dtype=np.int64)
    mask = (1 << n) - 1
    negative = codes >= nar_code(n)
    mag = np.where(negative, (-codes) & mask, codes)
    values = np.zeros(codes.shape, dtype=np.float64)
    positive = (mag > 0) & (mag < nar_code(n))
    values[positive] = _decode_positive(mag[positive], n, es)
    values = np.where(negative, -values, values)
    values[nar_code(n)] = np.nan
    values.setflags(write=False)
    return values


def posit_value_table(n: int, es: int) -> npt.NDArray[np.float64]:
    """Read-only float64 array: entry `c` is the exact value of code `c` (NaR is nan)."""
    check_posit_params(n, es)
    return _value_table(n, es)


@cache
def _midpoints(n: int, es: int) -> npt.NDArray[np.float64]:
    """Tie points between consecutive positive codes c, c+1 (c = 1 .. 2**(n-1) - 2)."""
    wide = _value_table(n + 1, es)
    codes = np.arange(1, nar_code(n) - 1, dtype=np.int64)
    mids = wide[2 * codes + 1].copy()
    mids.setflags(write=False)
    return mids


@cache
def _padded_midpoints(n: int, es: int) -> npt.NDArray[np.float64]:
    """The midpoints followed by +inf, so that a searchsorted index can always be looked up."""
    padded = np.append(_midpoints(n, es), np.inf)
    padded.setflags(write=False)
    return padded


def posit_midpoint_table(n: int, es: int) -> npt.NDArray[np.float64]:
    """Read-only ascending tie points between consecutive positive posit<n, es> codes."""
    check_posit_params(n, es)
    return _midpoints(n, es)


def posit_encode(x: npt.ArrayLike, n: int, es: int) -> npt.NDArray[np.int64]:
    """Nearest posit<n, es> codes (int64) of the reals `x`; nan and +-inf give NaR."""
    check_posit_params(n, es)
    values = np.asarray(x, dtype=np.float64)
    mids = _midpoints(n, es)
    mag = np.abs(values)
    below = np.searchsorted(mids, mag, side="left")
    code = below + 1
    at_tie = _padded_midpoints(n, es)[below] == mag
    code = np.where(at_tie & (code % 2 == 1), code + 1, code)
    code = np.where(mag == 0, 0, code)
    mask = (1 << n) - 1
    code = np.where(values < 0, (-code) & mask, code)
    code = np.where(np.isfinite(values), code, nar_code(n))
    return code.astype(np.int64)


def posit_decode(codes: npt.ArrayLike, n: int, es: int) -> npt.NDArray[np.float64]:
    """Exact float64 values of posit<n, es> codes; NaR decodes to nan."""
    check_posit_params(n, es)
    array = np.asarray(codes)
    if array.dtype.kind not in "iub":
        raise FormatError(f"posit codes must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= (1 << n)):
        raise FormatError(f"posit<{n},{es}> codes must be in 0..{(1 << n) - 1}")
    return _value_table(n, es)[array]


def _lowest_bit_exponents(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """For positive finite values, e such that 2**e is the weight of the lowest set bit."""
    mantissa, exponent = np.frexp(values)
    integer = np.ldexp(mantissa, 53).astype(np.int64)
    lowest = (integer & -integer).astype(np.float64)
    _, low_exp = np.frexp(lowest)
    return (exponent.astype(np.int64) - 53) + (low_exp.astype(np.int64) - 1)


@cache
def posit_frac_bits(n: int, es: int) -> int:
    """Fraction bits a fixed-point number needs to hold every posit<n, es> value exactly."""
    check_posit_params(n, es)
    table = _value_table(n, es)
    positive = table[1 : nar_code(n)]
    return max(0, int(-_lowest_bit_exponents(positive).min()))


def posit_maxpos(n: int, es: int) -> float:
    """Largest positive posit<n, es> value: useed**(n-2)."""
    return float(_value_table(n, es)[nar_code(n) - 1])


def posit_minpos(n: int, es: int) -> float:
    """Smallest positive posit<n, es> value: useed**-(n-2)."""
    return float(_value_table(n, es)[1])
