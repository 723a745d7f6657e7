"""LutNetwork and the code <-> bit helpers (spec/logic.md section 1 and 3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ircomp.logic import (
    CONST0,
    CONST1,
    LutNetwork,
    bits_to_codes,
    codes_to_bits,
    row_codes,
    row_index,
)


@given(st.integers(1, 6), st.booleans(), st.integers(0, 2**32 - 1))
def test_codes_bits_round_trip(width: int, signed: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if signed and width == 1:
        lo, hi = -1, 0
    codes = rng.integers(lo, hi + 1, size=(3, 5))
    bits = codes_to_bits(codes, width)
    assert bits.shape == (3, 5 * width)
    np.testing.assert_array_equal(bits_to_codes(bits, width, signed), codes)


def test_bit_order_is_lsb_first_per_element() -> None:
    bits = codes_to_bits(np.array([[1, -2]]), 3)  # 001 and 110 (two's complement)
    assert bits.astype(int).tolist() == [[1, 0, 0, 0, 1, 1]]


@given(st.integers(1, 3), st.integers(1, 4), st.booleans())
def test_row_index_round_trip(width: int, fan_in: int, signed: bool) -> None:
    rows = np.arange(1 << (width * fan_in))
    codes = row_codes(rows, width, fan_in, signed and width > 1)
    np.testing.assert_array_equal(row_index(codes, width), rows)


def test_row_index_puts_slot_zero_lowest() -> None:
    assert row_index(np.array([3, 1]), 2) == 3 + (1 << 2)
    assert row_index(np.array([-1, 0]), 2) == 3  # raw pattern of -1 in 2 bits


def _xor_and() -> LutNetwork:
    # LUT 0 = in0 xor in1, LUT 1 = LUT0 and in2; outputs: LUT0, LUT1, constant 1.
    return LutNetwork(3, [[0, 1], [3, 2]], [0b0110, 0b1000], [3, 4, CONST1])


def test_evaluate_matches_the_functions() -> None:
    net = _xor_and()
    x = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)
    out = net.evaluate(x)
    np.testing.assert_array_equal(out[:, 0], x[:, 0] ^ x[:, 1])
    np.testing.assert_array_equal(out[:, 1], (x[:, 0] ^ x[:, 1]) & x[:, 2])
    assert out[:, 2].all()
    assert net.depth() == 2 and net.num_luts == 2


def test_concatenate_remaps_inputs_and_constants() -> None:
    net = _xor_and()
    joined = LutNetwork.concatenate(
        [(net, np.array([2, 1, 0])), (net, np.array([0, CONST1, 1]))], num_inputs=3
    )
    assert joined.num_luts == 4
    x = np.random.default_rng(0).integers(0, 2, (16, 3)).astype(bool)
    first = net.evaluate(x[:, [2, 1, 0]])
    second = net.evaluate(np.stack([x[:, 0], np.ones(16, bool), x[:, 1]], axis=1))
    np.testing.assert_array_equal(joined.evaluate(x), np.concatenate([first, second], axis=1))


def test_six_input_lut_uses_the_whole_init_word() -> None:
    init = np.uint64(1) << np.uint64(63)  # AND of 6 inputs
    net = LutNetwork(6, [[0, 1, 2, 3, 4, 5]], [init], [6])
    x = np.ones((1, 6), dtype=bool)
    assert net.evaluate(x)[0, 0] and not net.evaluate(~x)[0, 0]


@pytest.mark.parametrize(
    ("inputs", "init", "outputs", "message"),
    [
        ([[0, 3]], [1], [3], "reads node 3"),  # a LUT reading itself
        ([[0, -3]], [1], [2], "reads node -3"),
        ([[0, 1]], [1 << 5], [2], "bits beyond bit 3"),
        ([[0, 1]], [1], [7], "output reads node 7"),
    ],
)
def test_malformed_networks_are_refused(
    inputs: list[list[int]], init: list[int], outputs: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LutNetwork(2, inputs, init, outputs)


def test_constants_only_network() -> None:
    net = LutNetwork(2, np.zeros((0, 1)), np.zeros(0), [CONST0, CONST1])
    assert net.evaluate(np.zeros((2, 2), bool)).astype(int).tolist() == [[0, 1], [0, 1]]
    assert net.depth() == 0
