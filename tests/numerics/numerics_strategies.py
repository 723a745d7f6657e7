"""Hypothesis strategies for numeric formats and for reals that hit their interesting points."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ircomp.numerics import Bit, FixP, Float, Int, NumericFormat, Posit


def fixps(max_width: int = 32) -> st.SearchStrategy[FixP]:
    signed = st.builds(FixP, st.integers(2, max_width), st.integers(-64, 64), st.just(True))
    unsigned = st.builds(FixP, st.integers(1, max_width), st.integers(-64, 64), st.just(False))
    return st.one_of(signed, unsigned)


def ints(max_width: int = 32) -> st.SearchStrategy[Int]:
    return st.one_of(
        st.builds(Int, st.integers(2, max_width), st.just(True)),
        st.builds(Int, st.integers(1, max_width), st.just(False)),
    )


def posits(max_n: int = 16) -> st.SearchStrategy[Posit]:
    return st.builds(Posit, st.integers(2, max_n), st.integers(0, 4))


def floats_formats(kinds: tuple[str, ...] = ("f16", "bf16", "f32")) -> st.SearchStrategy[Float]:
    return st.sampled_from([Float(kind) for kind in kinds])  # type: ignore[arg-type]


def formats(max_width: int = 32) -> st.SearchStrategy[NumericFormat]:
    """Every family, random valid parameters."""
    return st.one_of(fixps(max_width), ints(max_width), posits(), floats_formats(), st.just(Bit()))


def enumerable_formats() -> st.SearchStrategy[NumericFormat]:
    """Formats with few enough codes to check every code."""
    return st.one_of(fixps(16), ints(16), posits(), floats_formats(("f16", "bf16")), st.just(Bit()))


def reals() -> st.SearchStrategy[float]:
    """Finite reals of every magnitude, including tiny and huge ones."""
    return st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(-8, 8, allow_nan=False),
        st.builds(lambda m, e: float(np.ldexp(m, e)), st.floats(-1, 1), st.integers(-300, 300)),
    )


def near_format_reals(fmt: NumericFormat) -> st.SearchStrategy[float]:
    """Reals at, between and just around the values a format can represent."""
    lo, hi = fmt.min_value, fmt.max_value
    midpoints = st.builds(lambda a, b: (a + b) / 2, st.floats(lo, hi), st.floats(lo, hi))
    nudged = st.builds(lambda v: float(np.nextafter(v, np.inf)), st.floats(lo, hi, allow_nan=False))
    return st.one_of(reals(), st.floats(lo, hi), midpoints, nudged)
