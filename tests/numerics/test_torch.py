"""The torch codecs equal the numpy ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from numerics_strategies import fixps, ints, posits

from ircomp.numerics import Bit, Float, FormatError, Int, NumericFormat, Posit, quantize_scaled
from ircomp.numerics import torch as qt


def _random_reals(seed: int, shape: tuple[int, ...] = (6, 7)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, shape))
    x.flat[:4] = [0.0, -0.0, 1e300, -1e-300]
    return x


def _check_format(fmt: NumericFormat, seed: int) -> None:
    x = _random_reals(seed)
    xt = torch.from_numpy(x)
    codes = fmt.encode(x)
    assert np.array_equal(qt.encode(xt, fmt).numpy(), codes)
    all_codes = torch.from_numpy(codes)
    assert np.array_equal(qt.decode(all_codes, fmt).numpy(), fmt.decode(codes), equal_nan=True)
    for scale in (1.0, 0.37):
        expected = quantize_scaled(x, fmt, scale)
        assert np.array_equal(qt.fake_quantize(xt, fmt, scale).numpy(), expected, equal_nan=True)


@given(st.one_of(fixps(), ints(), posits(), st.just(Bit())), st.integers(0, 1000))
def test_torch_matches_numpy(fmt: NumericFormat, seed: int) -> None:
    _check_format(fmt, seed)


@pytest.mark.parametrize("kind", ["f16", "bf16", "f32"])
def test_torch_floats_match_numpy(kind: str) -> None:
    _check_format(Float(kind), seed=5)  # type: ignore[arg-type]


def test_fake_quantize_per_channel_and_dtype() -> None:
    x = _random_reals(9, (3, 4)) * 1e-6
    scales = np.array([0.1, 0.2, 0.3])
    fmt = Posit(8, 1)
    expected = quantize_scaled(x, fmt, scales, axis=0)
    got = qt.fake_quantize(torch.from_numpy(x), fmt, torch.from_numpy(scales), axis=0)
    assert np.array_equal(got.numpy(), expected)
    x32 = torch.from_numpy(x).float()
    as_f32 = qt.fake_quantize(x32, fmt, scales, axis=0)
    assert as_f32.dtype == torch.float32
    expected32 = quantize_scaled(x32.numpy(), fmt, scales, axis=0).astype(np.float32)
    assert np.array_equal(as_f32.numpy(), expected32, equal_nan=True)


def test_posit_codec_covers_every_code() -> None:
    fmt = Posit(10, 2)
    codes = torch.arange(1 << 10)
    values = qt.decode(codes, fmt)
    real = ~torch.isnan(values)
    assert torch.equal(qt.encode(values[real], fmt), codes[real])


def test_torch_errors() -> None:
    with pytest.raises(FormatError, match="nan"):
        qt.encode(torch.tensor([float("nan")]), Int(8))
    with pytest.raises(FormatError, match="codes must be in"):
        qt.decode(torch.tensor([300]), Posit(8, 0))
