"""Properties every format family must have, plus per-family rounding and validation checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numerics_strategies import enumerable_formats, fixps, formats, near_format_reals, posits, reals

from ircomp.numerics import (
    Bit,
    FixP,
    Float,
    FormatError,
    Int,
    NumericFormat,
    Posit,
    broadcast_along_axis,
    format_from_name,
    quantize_scaled,
)


@st.composite
def format_and_reals(draw: st.DrawFn) -> tuple[NumericFormat, np.ndarray]:
    fmt = draw(formats())
    values = draw(st.lists(near_format_reals(fmt), min_size=1, max_size=40))
    return fmt, np.array(values, dtype=np.float64)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


@given(format_and_reals())
def test_decode_of_encode_is_quantize(case: tuple[NumericFormat, np.ndarray]) -> None:
    fmt, x = case
    assert _same(fmt.decode(fmt.encode(x)), fmt.quantize(x))


@given(format_and_reals())
def test_quantize_is_idempotent(case: tuple[NumericFormat, np.ndarray]) -> None:
    fmt, x = case
    once = fmt.quantize(x)
    assert _same(fmt.quantize(once), once)


@given(format_and_reals())
def test_quantize_is_monotone(case: tuple[NumericFormat, np.ndarray]) -> None:
    fmt, x = case
    q = fmt.quantize(np.sort(x))
    assert (q[1:] >= q[:-1]).all()


@given(format_and_reals())
def test_encode_gives_valid_int64_codes(case: tuple[NumericFormat, np.ndarray]) -> None:
    fmt, x = case
    codes = fmt.encode(x)
    assert codes.dtype == np.int64 and codes.shape == x.shape
    fmt.decode(codes)  # raises if any code were out of range


@given(enumerable_formats())
def test_codes_decode_to_distinct_values(fmt: NumericFormat) -> None:
    values = fmt.decode(fmt.all_codes())
    real = values[~np.isnan(values)]
    distinct = np.unique(real).size
    zeros = int((real == 0).sum())
    if isinstance(fmt, Float):
        assert zeros == 2 and distinct == real.size - 1  # +0 and -0 are equal values
    else:
        assert distinct == real.size
    if isinstance(fmt, Posit):
        assert np.isnan(values).sum() == 1


@given(enumerable_formats())
def test_encode_of_decode_is_identity(fmt: NumericFormat) -> None:
    codes = fmt.all_codes()
    values = fmt.decode(codes)
    real = ~np.isnan(values)
    assert (fmt.encode(values[real]) == codes[real]).all()


def test_f32_codes_round_trip_on_a_sample() -> None:
    fmt = Float("f32")
    codes = np.random.default_rng(1).integers(0, 1 << 32, 200_000)
    values = fmt.decode(codes)
    real = ~np.isnan(values)
    assert (fmt.encode(values[real]) == codes[real]).all()


def test_all_codes_ascend() -> None:
    for fmt in (FixP(6, 2), FixP(5, -1, False), Int(4), Posit(5, 1), Float("f16"), Bit()):
        assert (np.diff(fmt.all_codes()) == 1).all()
    with pytest.raises(FormatError, match="limited"):
        Float("f32").all_codes()


# ---------------------------------------------------------------- saturation and the ends


@given(st.one_of(formats()))
def test_saturation_at_the_ends(fmt: NumericFormat) -> None:
    huge = np.array([1e300, -1e300])
    q = fmt.quantize(huge)
    if isinstance(fmt, Float):
        assert q.tolist() == [np.inf, -np.inf]  # IEEE overflow
    else:
        assert q.tolist() == [fmt.max_value, fmt.min_value]
    assert _same(fmt.quantize([fmt.max_value, fmt.min_value]), [fmt.max_value, fmt.min_value])


@given(posits(), st.floats(min_value=5e-324, max_value=1e-300))
def test_posit_never_rounds_to_zero_or_nar(fmt: Posit, tiny: float) -> None:
    minpos = fmt.decode(1)
    maxpos = fmt.max_value
    q = fmt.quantize([tiny, -tiny, 1e300, -1e300])
    assert q.tolist() == [minpos, -minpos, maxpos, -maxpos]


def test_nan_handling() -> None:
    for fmt in (FixP(8, 3), Int(8), Bit()):
        with pytest.raises(FormatError, match="nan"):
            fmt.encode([1.0, np.nan])
    posit = Posit(8, 1)
    assert posit.encode([np.nan, np.inf, -np.inf]).tolist() == [posit.nar] * 3
    assert np.isnan(posit.decode(posit.nar))
    assert np.isnan(Float("bf16").quantize(np.nan))


# ---------------------------------------------------------------- round half to even


@given(fixps(), st.integers(-(2**20), 2**20))
def test_fixp_ties_go_to_even(fmt: FixP, k: int) -> None:
    lo, hi = int(fmt.encode(fmt.min_value)), int(fmt.encode(fmt.max_value))
    k = int(np.clip(k, lo, hi - 1))
    tie = np.ldexp(k + 0.5, -fmt.frac)
    expected = k if k % 2 == 0 else k + 1
    assert int(fmt.encode(tie)) == expected


def test_int_ties_and_examples() -> None:
    assert Int(8).encode([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]).tolist() == [0, 2, 2, 0, -2, -2]
    assert Int(4, False).encode([-3.0, 7.5, 15.5, 99]).tolist() == [0, 8, 15, 15]
    assert Bit().encode([-1, 0.5, 0.51, 1.5]).tolist() == [0, 0, 1, 1]


@given(posits(12))
def test_posit_midpoints_go_to_even_code(fmt: Posit) -> None:
    values = fmt.decode(np.arange(1, fmt.nar))
    codes = np.arange(1, fmt.nar - 1)
    wide = Posit(fmt.n + 1, fmt.es) if fmt.n < 16 else None
    if wide is None:
        return
    ties = wide.decode(2 * codes + 1)
    assert ((ties > values[:-1]) & (ties < values[1:])).all()
    expected = np.where(codes % 2 == 0, codes, codes + 1)
    assert (fmt.encode(ties) == expected).all()
    assert (fmt.encode(-ties) == (-expected) % (1 << fmt.n)).all()


def test_float_ties_and_double_rounding() -> None:
    f16 = Float("f16")
    assert f16.quantize([1 + 2**-11, 1 + 3 * 2**-11]).tolist() == [1.0, 1 + 2**-9]
    # a single rounding from float64 (no trip through float32)
    assert f16.quantize(1 + 2**-11 + 2**-40) == 1 + 2**-10
    assert f16.quantize([65519.0, 65520.0]).tolist() == [65504.0, np.inf]
    assert f16.quantize(2**-25).item() == 0.0 and f16.quantize(2**-25 + 2**-40) == 2**-24
    bf16 = Float("bf16")
    assert bf16.encode([1.0, -2.0, 1 + 2**-8, 1 + 3 * 2**-8]).tolist() == [
        0x3F80,
        0xC000,
        0x3F80,
        0x3F82,
    ]
    assert Float("f32").encode(1 + 2**-24).item() == 0x3F800000


# ---------------------------------------------------------------- metadata and validation


@given(formats())
def test_short_names_parse_back(fmt: NumericFormat) -> None:
    assert format_from_name(fmt.short_name) == fmt


def test_short_names_and_dtypes() -> None:
    cases = [
        (FixP(8, 4), "fixp<8,4>", np.int8),
        (FixP(8, 4, False), "ufixp<8,4>", np.uint8),
        (FixP(12, -3), "fixp<12,-3>", np.int16),
        (Int(32), "i32", np.int32),
        (Int(17, False), "ui17", np.uint32),
        (Posit(4, 1), "posit<4,1>", np.uint8),
        (Posit(16, 1), "posit<16,1>", np.uint16),
        (Float("f16"), "f16", np.float16),
        (Float("bf16"), "bf16", np.uint16),
        (Float("f32"), "f32", np.float32),
        (Bit(), "bit", np.bool_),
    ]
    for fmt, name, dtype in cases:
        assert fmt.short_name == name and fmt.storage_dtype == np.dtype(dtype)
        assert isinstance(fmt, NumericFormat)
    assert (FixP(8, 4).min_value, FixP(8, 4).max_value) == (-8.0, 7.9375)
    assert (Posit(8, 0).min_value, Posit(8, 0).max_value) == (-64.0, 64.0)
    assert Float("f16").max_value == 65504.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Posit(17, 1), "posit n must be in 2..16, got 17"),
        (lambda: Posit(8, 5), "posit es must be in 0..4, got 5"),
        (lambda: FixP(1, 0), "width must be in 2..32, got 1"),
        (lambda: FixP(33, 0, False), "width must be in 1..32, got 33"),
        (lambda: FixP(8, 65), "fixp frac must be in -64..64, got 65"),
        (lambda: Int(0, False), "width must be in 1..32, got 0"),
        (lambda: Int(8.0), "must be an int"),  # type: ignore[arg-type]
        (lambda: Float("f64"), "float kind must be one of"),  # type: ignore[arg-type]
        (lambda: format_from_name("q8"), "unknown numeric format"),
    ],
)
def test_validation_errors(make: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        make()  # type: ignore[operator]


def test_decode_rejects_bad_codes() -> None:
    with pytest.raises(FormatError, match="codes must be in"):
        Int(8).decode([128])
    with pytest.raises(FormatError, match="codes must be in"):
        Posit(4, 0).decode([16])
    with pytest.raises(FormatError, match="integers"):
        FixP(8, 2).decode([1.5])


# ---------------------------------------------------------------- scales


@given(st.lists(reals(), min_size=1, max_size=20), st.floats(1e-6, 1e6))
def test_per_tensor_scale(xs: list[float], scale: float) -> None:
    x = np.array(xs)
    fmt = FixP(8, 2)
    assert _same(quantize_scaled(x, fmt, scale), scale * fmt.quantize(x / scale))


def test_per_channel_scale() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    scales = np.array([0.1, 0.5, 2.0, 0.03])
    fmt = Int(4)
    got = quantize_scaled(x, fmt, scales, axis=1)
    for c, s in enumerate(scales):
        assert _same(got[:, c], s * fmt.quantize(x[:, c] / s))
    assert _same(quantize_scaled(x, fmt, scales, axis=-2), got)
    assert broadcast_along_axis(scales, 1, 3).shape == (1, 4, 1)
    with pytest.raises(FormatError, match="needs an axis"):
        quantize_scaled(x, fmt, scales)
    with pytest.raises(FormatError, match="has 4 entries"):
        quantize_scaled(x, fmt, scales, axis=0)
    with pytest.raises(FormatError, match="positive"):
        quantize_scaled(x, fmt, 0.0)
    with pytest.raises(FormatError, match="axis must be in"):
        broadcast_along_axis(scales, 3, 3)
