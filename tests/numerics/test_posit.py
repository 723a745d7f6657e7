"""The posit codec: the posit4 value sets, softposit agreement, frac bits, spec tables."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ircomp.numerics import Posit, posit_frac_bits, posit_midpoint_table, posit_value_table
from ircomp.numerics.tables import posit_table_markdown, spec_tables_markdown

sp = pytest.importorskip("softposit")

SPEC = Path(__file__).resolve().parents[2] / "spec" / "numerics.md"


def _positive_values(fmt: Posit) -> set[Fraction]:
    values = fmt.decode(fmt.all_codes())
    return {Fraction(v) for v in values if not np.isnan(v) and v > 0}


def test_posit4_value_sets() -> None:
    assert _positive_values(Posit(4, 0)) == {
        Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1), Fraction(3, 2),
        Fraction(2), Fraction(4),
    }  # fmt: skip
    assert _positive_values(Posit(4, 1)) == {
        Fraction(1, 16), Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(2),
        Fraction(4), Fraction(16),
    }  # fmt: skip
    for es in (0, 1):
        values = posit_value_table(4, es)
        codes = np.arange(1, 8)
        assert (values[16 - codes] == -values[codes]).all()  # negation = two's complement


def test_posit_frac_bits() -> None:
    assert posit_frac_bits(4, 0) == 2
    assert posit_frac_bits(4, 1) == 4
    assert posit_frac_bits(8, 0) == 6
    assert posit_frac_bits(16, 1) == 28
    assert posit_frac_bits(2, 3) == 0
    for n, es in ((6, 2), (9, 1), (12, 3)):
        table = posit_value_table(n, es)
        finite = table[~np.isnan(table)]
        bits = posit_frac_bits(n, es)
        scaled = np.ldexp(finite, bits)
        assert (scaled == np.round(scaled)).all()
        assert not (np.ldexp(finite, bits - 1) == np.round(np.ldexp(finite, bits - 1))).all()


# ---------------------------------------------------------------- softposit

# softposit's posit8 is posit<8,0> (maxpos 64) and posit16 is posit<16,1> (maxpos 2**28);
# posit_2(value, x=n) is posit<n,2> held left-aligned in a 32-bit word.
SOFTPOSIT = [
    (8, 0, sp.posit8, sp.convertDoubleToP8),
    (16, 1, sp.posit16, sp.convertDoubleToP16),
]


def test_softposit_es_is_what_we_assume() -> None:
    assert float(sp.posit8(bits=0x7F)) == 64.0
    assert float(sp.posit16(bits=0x7FFF)) == 2.0**28


@pytest.mark.parametrize(("n", "es", "cls", "_convert"), SOFTPOSIT)
def test_decode_agrees_with_softposit_for_every_code(
    n: int, es: int, cls: type, _convert: object
) -> None:
    ours = Posit(n, es).decode(np.arange(1 << n))
    for code in range(1 << n):
        theirs = cls(bits=code)
        if theirs.v.isNaR():
            assert np.isnan(ours[code])
        else:
            assert float(theirs) == ours[code], hex(code)


def _random_reals(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mantissa = rng.uniform(-2, 2, count)
    exponent = rng.integers(-140, 140, count)
    x = np.ldexp(mantissa, exponent)
    extras = [0.0, 5e-324, -5e-324, 1e-300, 1e300, -1e300, 1.0, -1.0, 1.5, 0.3]
    return np.concatenate([x, rng.standard_normal(500), extras])


@pytest.mark.parametrize(("n", "es", "_cls", "convert"), SOFTPOSIT)
def test_encode_agrees_with_softposit(n: int, es: int, _cls: type, convert: object) -> None:
    x = _random_reals(3000, seed=n)
    ours = Posit(n, es).encode(x)
    theirs = np.array([convert(float(v)).v for v in x])  # type: ignore[operator]
    assert (ours == theirs).all()


@pytest.mark.parametrize(("n", "es", "_cls", "_convert"), SOFTPOSIT)
def test_encode_agrees_with_softposit_at_midpoints(
    n: int, es: int, _cls: type, _convert: object
) -> None:
    fmt = Posit(n, es)
    values = fmt.decode(np.arange(1, fmt.nar))
    mids = (values[:-1] + values[1:]) / 2  # arithmetic midpoints (not the rounding ties)
    ties = np.array(posit_midpoint_table(n, es))
    x = np.concatenate([mids, -mids, ties, -ties, np.nextafter(ties, 0), np.nextafter(ties, 1e9)])
    convert = sp.convertDoubleToP8 if n == 8 else sp.convertDoubleToP16
    theirs = np.array([convert(float(v)).v for v in x])
    assert (fmt.encode(x) == theirs).all()


def test_encode_agrees_with_softposit_es2() -> None:
    rng = np.random.default_rng(7)
    x = np.ldexp(rng.uniform(-2, 2, 400), rng.integers(-80, 80, 400))
    for n in (6, 8, 12, 16):
        fmt = Posit(n, 2)
        theirs = [sp.convertDoubleToPX2(float(v), n).v >> (32 - n) for v in x]
        assert fmt.encode(x).tolist() == theirs, n
        decoded = [float(sp.posit_2(bits=c, x=n)) for c in range(1, fmt.nar)]
        assert fmt.decode(np.arange(1, fmt.nar)).tolist() == decoded


# ---------------------------------------------------------------- spec tables


def test_tables_script_prints_the_posit4_tables() -> None:
    text = spec_tables_markdown()
    assert posit_table_markdown(4, 0) in text and posit_table_markdown(4, 1) in text
    assert "| `0111` | `0x7` | 16 | 16.0 |" in text


def test_spec_tables_equal_generated_tables() -> None:
    spec = SPEC.read_text()
    match = re.search(r"<!-- posit-tables:begin -->\n(.*?)\n<!-- posit-tables:end -->", spec, re.S)
    assert match, "spec/numerics.md lacks the posit-tables markers"
    assert match.group(1).strip() == spec_tables_markdown().strip()


def test_posit_frac_bits_formula() -> None:
    for n in range(2, 17):
        for es in range(5):
            assert posit_frac_bits(n, es) == (n - 2) * 2**es
