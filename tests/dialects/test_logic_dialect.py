"""The `logic` dialect: verifier rules, text round trip, golden semantics (spec/logic.md)."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import IntegerType, Signedness, i1, i32
from xdsl.ir import Attribute

from ircomp.dialects import logic
from ircomp.errors import VerificationError
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module
from ircomp.logic import LutNetwork, codes_to_bits, row_index

UI2 = IntegerType(2, Signedness.UNSIGNED)
SI3 = IntegerType(3)


def _table_program(
    tables: np.ndarray, fanin: np.ndarray, index: np.ndarray, fmt_in: Attribute, fmt_out: Attribute
) -> Program:
    b = GraphBuilder()
    x = b.input((5, 4), fmt_in)
    ops = [
        x,
        b.weight("l.fanin", fanin, i32),
        b.weight("l.tables", tables, fmt_out),
        b.weight("l.index", index, i32),
    ]
    return b.finish([b.op(logic.TableOp, ops, fmt_out, name="l")])


def test_table_semantics_match_a_direct_lookup() -> None:
    rng = np.random.default_rng(1)
    tables = rng.integers(-4, 4, (2, 16))
    fanin = np.array([[0, 1], [3, 2], [1, -1]])
    program = _table_program(tables, fanin, np.array([1, 0, 1]), UI2, SI3)
    x = rng.integers(0, 4, (5, 4))
    (y,) = run(program, [x])
    for j, (t, slots) in enumerate(zip([1, 0, 1], fanin, strict=True)):
        codes = np.stack([x[:, s] if s >= 0 else np.zeros(5, int) for s in slots], axis=1)
        np.testing.assert_array_equal(y[:, j], tables[t][row_index(codes, 2)])


def test_text_round_trip_keeps_the_program() -> None:
    program = _table_program(np.zeros((1, 16)), np.array([[0, 1]]), np.array([0]), UI2, UI2)
    text = print_module(program.module)
    assert "logic.table" in text
    assert print_module(parse_module(text, "t.mlir")) == text


def test_signed_inputs_address_rows_by_raw_pattern() -> None:
    tables = np.arange(64).reshape(1, 64) % 4  # 3-bit codes, fan-in 2
    program = _table_program(tables, np.array([[0, 1]]), np.array([0]), SI3, UI2)
    x = np.zeros((5, 4), int)
    x[:, 0], x[:, 1] = -1, -4  # raw 0b111 and 0b100: row 7 + (4 << 3) = 39
    assert run(program, [x])[0][:, 0].tolist() == [39 % 4] * 5


@pytest.mark.parametrize(
    ("rows", "fanin", "index", "message"),
    [
        (8, [[0, 1]], [0], "need 2\\^\\(2\\*2\\) = 16 rows"),
        (16, [[0, 1]], [0, 0], "2 entries for 1 neurons"),
        (1 << 22, [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]], [0], "limit is 20"),
    ],
)
def test_table_verifier_rejects_inconsistent_shapes(
    rows: int, fanin: list[list[int]], index: list[int], message: str
) -> None:
    with pytest.raises(VerificationError, match=message):
        _table_program(np.zeros((1, rows)), np.array(fanin), np.array(index), UI2, UI2)


def test_table_rejects_float_input() -> None:
    from xdsl.dialects.builtin import f32

    with pytest.raises(VerificationError, match="integer, fixed-point or bit codes"):
        _table_program(np.zeros((1, 16)), np.array([[0, 1]]), np.array([0]), f32, UI2)


def _lut_program(network: LutNetwork, width_in: int, fmt_in: Attribute, fmt_out: Attribute):
    b = GraphBuilder()
    x = b.input((7, network.num_inputs // width_in), fmt_in)
    ops = [
        x,
        b.weight("n.inputs", network.lut_inputs, i32),
        b.weight("n.init", network.init_halves(), logic.UI32),
        b.weight("n.outputs", network.outputs, i32),
    ]
    return b.finish([b.op(logic.LutNetworkOp, ops, fmt_out, name="n")])


def test_lut_network_semantics_match_evaluate() -> None:
    # 3 ui2 inputs (6 wires) -> 2 si3 outputs; a 6-input LUT with the top INIT bit set.
    top = np.uint64(0x8000_0000_0000_0001)
    net = LutNetwork(
        6,
        [[0, 1, 2, 3, 4, 5], [6, 0, -1, -1, -1, -1]],
        [top, np.uint64(0b0110)],
        [6, 7, -2, -1, 6, 7],
    )
    program = _lut_program(net, 2, UI2, SI3)
    x = np.random.default_rng(2).integers(0, 4, (7, 3))
    x[0] = 3
    (y,) = run(program, [x])
    bits = net.evaluate(codes_to_bits(x, 2)).astype(int).reshape(7, 2, 3)
    raw = (bits << np.arange(3)).sum(-1)
    np.testing.assert_array_equal(y, np.where(raw >= 4, raw - 8, raw))
    # Row 0 is all ones: LUT0 = 1, LUT1 = LUT0 xor x0 = 0; element 0 reads bits (LUT0, LUT1,
    # const 1) = 0b101 = -3, element 1 reads (const 0, LUT0, LUT1) = 0b010 = 2.
    assert y[0].tolist() == [-3, 2]


def test_lut_network_verifier_checks_output_bits() -> None:
    net = LutNetwork(2, [[0, 1]], [1], [2, 2])
    with pytest.raises(VerificationError, match="whole number of 3-bit codes"):
        _lut_program(net, 2, UI2, SI3)


def test_care_operand_must_match_tables() -> None:
    b = GraphBuilder()
    x = b.input((1, 2), UI2)
    ops = [
        x,
        b.weight("f", np.array([[0, 1]]), i32),
        b.weight("t", np.zeros((1, 16)), UI2),
        b.weight("i", np.array([0]), i32),
        b.weight("c", np.ones((1, 8), bool), i1),
    ]
    with pytest.raises(VerificationError, match="care must have the shape of tables"):
        b.finish([b.op(logic.TableOp, ops, UI2)])
