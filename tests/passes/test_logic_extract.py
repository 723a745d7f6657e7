"""logic-extract: neuron layers over low-bit codes become exact truth tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from logic_nets import float_chain_layer, integer_mlp
from pass_checks import apply, check_pass

from ircomp.dialects import logic, nn
from ircomp.errors import InputError
from ircomp.interpreter import run


def _ops(program, kind):  # type: ignore[no-untyped-def]
    return [op for op in program.module.walk() if isinstance(op, kind)]


def _inputs(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 3))
def test_integer_mlp_is_preserved_exactly(seed: int, fan_in: int, bits: int) -> None:
    program = integer_mlp(seed, fan_in=fan_in, bits=bits, batch=64)
    result = check_pass(program, [_inputs(seed, (64, 12))], "logic-extract")
    tables = _ops(result, logic.TableOp)
    assert len(tables) == 2
    assert not _ops(result, nn.LinearOp) and not _ops(result, nn.RequantizeOp)
    assert [op.attributes["name"].data for op in tables] == ["fc0", "fc1"]


def test_every_input_pattern_matches_the_original_layer() -> None:
    program = float_chain_layer(3)
    result = apply(program, "logic-extract")
    x = np.array(np.meshgrid(*[np.arange(4)] * 6)).reshape(6, -1).T  # all 4096 patterns
    expected = np.concatenate([run(program, [row[None]])[0] for row in x[::7]])
    got = np.concatenate([run(result, [row[None]])[0] for row in x[::7]])
    np.testing.assert_array_equal(got, expected)
    (table,) = _ops(result, logic.TableOp)
    assert table.tables.type.get_shape() == (table.tables.type.get_shape()[0], 16)


def test_identical_neurons_share_one_table() -> None:
    program = integer_mlp(5, widths=(4, 4, 3), fan_in=1, bits=1, batch=1)
    result = apply(program, "logic-extract")
    first = _ops(result, logic.TableOp)[0]
    unique = first.tables.type.get_shape()[0]
    index = result.weights.get(first.table_index.owner.hash.data)
    assert unique == len(set(index.tolist())) <= 4


def test_fanin_indices_are_the_nonzero_weights() -> None:
    program = integer_mlp(7, widths=(12, 5), fan_in=3)
    (linear,) = _ops(program, nn.LinearOp)
    w = program.weights.get(linear.weight.owner.hash.data)
    result = apply(program, "logic-extract")
    (table,) = _ops(result, logic.TableOp)
    fanin = result.weights.get(table.fanin.owner.hash.data)
    assert [sorted(r) for r in fanin.tolist()] == [sorted(np.flatnonzero(r)) for r in w]


def test_care_set_marks_the_rows_seen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    program = integer_mlp(11, widths=(12, 6), fan_in=2, bits=2, batch=50)
    data = _inputs(1, (50, 12))
    np.save(tmp_path / "x.npy", data)
    result = check_pass(program, [data], f'logic-extract{{care-data="{tmp_path / "x.npy"}"}}')
    (table,) = _ops(result, logic.TableOp)
    care = result.weights.get(table.care.owner.hash.data)
    assert care.shape == tuple(table.tables.type.get_shape())
    assert 0 < care.sum() <= 50 * 6


def test_layers_over_the_limit_are_refused_with_their_names() -> None:
    program = integer_mlp(2, widths=(12, 6, 4), fan_in=5, bits=3)
    with pytest.raises(InputError, match=r"layer 'fc0'.*6 of 6 neurons.*15 bits") as err:
        apply(program, "logic-extract{decompose=none}")
    assert "ircomp train" in str(err.value) and "max-inputs" in str(err.value)


def test_row_guard_refuses_before_enumerating() -> None:
    program = integer_mlp(2, widths=(12, 6), fan_in=4, bits=3)
    with pytest.raises(InputError, match="exceeds max-rows=1,000"):
        apply(program, "logic-extract{max-rows=1000}")


def test_dense_float_layers_are_left_alone() -> None:
    from ircomp.ir.builder import GraphBuilder

    b = GraphBuilder()
    x = b.input((1, 4))
    y = b.op(nn.LinearOp, [x, b.weight("w", np.ones((2, 4)))])
    program = b.finish([y])
    result = apply(program, "logic-extract")
    assert _ops(result, nn.LinearOp) and not _ops(result, logic.TableOp)
