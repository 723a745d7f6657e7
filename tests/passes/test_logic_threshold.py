"""logic.threshold (spec/logic.md section 6): its golden semantics and verifier, and
logic-extract's threshold realization of integer layers, exact against the original nn layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from logic_nets import (
    code_mlp,
    float_chain_layer,
    float_tail_layer,
    integer_layer,
    integer_mlp,
    trained_like_layer,
    uint,
)
from pass_checks import apply, check_pass
from xdsl.dialects.builtin import IntegerType, f32, i32
from xdsl.ir import Attribute

from ircomp.dialects import logic, nn
from ircomp.dialects.num import FixPType
from ircomp.errors import InputError, VerificationError
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module
from ircomp.passes.logic_extract import REALIZATION_ATTR

I3 = IntegerType(3)
I8 = IntegerType(8)


def _ops(program: Program, kind: type) -> list:
    return [op for op in program.module.walk() if isinstance(op, kind)]


def _realizations(program: Program) -> dict[str, str]:
    return {
        op.attributes["name"].data: op.attributes[REALIZATION_ATTR].data
        for op in program.module.walk()
        if isinstance(op, logic.LAYER_OPS)
    }


def _codes(rng: np.random.Generator, fmt: Attribute, shape: tuple[int, ...]) -> np.ndarray:
    width = logic.code_width(fmt)
    assert width is not None
    bits, signed = width
    low = -(1 << (bits - 1)) if signed else 0
    return rng.integers(low, low + (1 << bits), shape)


def _weight(program: Program, value) -> np.ndarray:  # type: ignore[no-untyped-def]
    return program.weights.get(value.owner.hash.data)


# ---- the op ------------------------------------------------------------------------------------


def _threshold_program(
    fanin: np.ndarray,
    weights: np.ndarray,
    thresholds: np.ndarray,
    base: np.ndarray,
    fmt_in: Attribute,
    fmt_out: Attribute,
    *,
    weight_type: Attribute = I8,
    batch: int = 5,
    inputs: int = 4,
) -> Program:
    b = GraphBuilder()
    x = b.input((batch, inputs), fmt_in)
    operands = [
        x,
        b.weight("l.fanin", fanin, i32),
        b.weight("l.weights", weights, weight_type),
        b.weight("l.thresholds", thresholds, i32),
        b.weight("l.base", base, fmt_out),
    ]
    return b.finish([b.op(logic.ThresholdOp, operands, fmt_out, name="l")])


@given(st.integers(0, 10_000), st.integers(1, 4), st.booleans(), st.integers(1, 3))
def test_semantics_match_the_formula(seed: int, bits: int, signed_out: bool, width: int) -> None:
    rng = np.random.default_rng(seed)
    signed_out = signed_out and width > 1  # i1 is a bit (spec/numerics.md)
    fmt_in, fmt_out = IntegerType(bits + 1), (IntegerType(width) if signed_out else uint(width))
    neurons, fan_in = 3, 3
    fanin = rng.integers(-1, 4, (neurons, fan_in))
    weights = rng.integers(-5, 6, (neurons, fan_in))
    steps = int(rng.integers(1, 1 << width))
    thresholds = rng.integers(-30, 30, (neurons, steps))  # any order: the count is the same
    base = _codes(rng, fmt_out, (neurons,))
    program = _threshold_program(fanin, weights, thresholds, base, fmt_in, fmt_out)
    x = _codes(rng, fmt_in, (5, 4))
    (y,) = run(program, [x])
    for j in range(neurons):
        acc = sum(int(weights[j, k]) * x[:, fanin[j, k]] for k in range(fan_in) if fanin[j, k] >= 0)
        count = (np.asarray(acc)[..., None] >= thresholds[j]).sum(axis=-1)
        value = base[j] + count
        raw = value & ((1 << width) - 1)
        if signed_out:
            raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
        np.testing.assert_array_equal(y[:, j], raw)


def test_text_round_trip_keeps_the_program() -> None:
    program = _threshold_program(
        np.array([[0, 1]]), np.array([[1, -2]]), np.array([[0, 3, 5]]), np.array([0]), uint(2), I3
    )
    text = print_module(program.module)
    assert "logic.threshold" in text
    assert print_module(parse_module(text, "t.mlir")) == text


@pytest.mark.parametrize(
    ("fanin", "weights", "thresholds", "base", "kwargs", "message"),
    [
        ([[0, 1]], [[1, 2, 3]], [[0]], [0], {}, "weights must have the shape of fanin"),
        ([[0, 1]], [[1, 2]], [[0], [1]], [0], {}, "thresholds has 2 rows for 1 neurons"),
        ([[0, 1]], [[1, 2]], [[0] * 8], [0], {}, "at most 7 \\(2\\^3 - 1\\)"),
        ([[0, 1]], [[1, 2]], [[0]], [0, 0], {}, "base has 2 entries for 1 neurons"),
        ([[0, 1]], [[1, 2]], [[0]], [0], {"weight_type": f32}, "integers of at most 32 bits"),
        ([[0, 1]], [[1, 2]], [[0]], [0], {"weight_type": uint(2)}, None),
        ([[0, 1]], [[1, 2]], [[0]], [0], {"weight_type": FixPType(8, 2)}, "at most 32 bits"),
    ],
)
def test_verifier(fanin, weights, thresholds, base, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    def build() -> Program:
        return _threshold_program(
            np.array(fanin),
            np.array(weights),
            np.array(thresholds),
            np.array(base),
            uint(2),
            I3,
            **kwargs,
        )

    if message is None:
        build().verify()
    else:
        with pytest.raises(VerificationError, match=message):
            build()


def test_verifier_bounds_the_exact_sum() -> None:
    fan_in = 1 << 20
    with pytest.raises(VerificationError, match="may need 64 bits; the limit is 63"):
        _threshold_program(
            np.zeros((1, fan_in), int),
            np.zeros((1, fan_in), int),
            np.zeros((1, 1), int),
            np.zeros(1, int),
            IntegerType(11),
            I3,
            weight_type=IntegerType(32),
        )


def test_base_must_have_the_result_format() -> None:
    b = GraphBuilder()
    x = b.input((1, 4), uint(2))
    operands = [
        x,
        b.weight("f", np.array([[0, 1]]), i32),
        b.weight("w", np.array([[1, 1]]), IntegerType(8)),
        b.weight("t", np.array([[1]]), i32),
        b.weight("b", np.array([0]), uint(3)),
    ]
    with pytest.raises(VerificationError, match="base must hold i3"):
        b.finish([b.op(logic.ThresholdOp, operands, I3)])


def test_bad_fanin_indices_are_an_input_error() -> None:
    program = _threshold_program(
        np.array([[0, 9]]), np.array([[1, 1]]), np.array([[1]]), np.array([0]), uint(2), I3
    )
    with pytest.raises(InputError, match=r"fan-in indices must be -1 or in 0\.\.3"):
        run(program, [np.zeros((5, 4), int)])


# ---- logic-extract: thresholds exactly equal the nn layer ---------------------------------------


@settings(max_examples=40)
@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.booleans(),
    st.integers(1, 32),
    st.sampled_from([uint(1), uint(2), uint(3), IntegerType(2), IntegerType(3), IntegerType(4)]),
    st.integers(1, 7),
)
def test_threshold_layer_equals_the_nn_layer(
    seed: int, bits: int, signed_in: bool, fan_in: int, out: IntegerType, weight_max: int
) -> None:
    signed_in = signed_in and bits > 1
    rng = np.random.default_rng(seed)
    program = integer_layer(
        seed,
        inputs=max(fan_in, 8) + 2,
        neurons=5,
        fan_in=fan_in,
        bits_in=bits,
        signed_in=signed_in,
        out=out,
        weight_max=weight_max,
        input_zero_point=int(rng.integers(0, 2)) if not signed_in else 0,
        weight_zero_point=int(rng.integers(-2, 3)),
        batch=128,
    )
    fmt_in = IntegerType(bits) if signed_in else uint(bits)
    x = _codes(rng, fmt_in, (128, max(fan_in, 8) + 2))
    x[0] = x.min()  # the extremes of the sums
    x[1] = x.max()
    result = check_pass(program, [x], "logic-extract{realize=threshold}")
    (op,) = _ops(result, logic.ThresholdOp)
    assert not _ops(result, nn.LinearOp) and not _ops(result, nn.RequantizeOp)
    assert _realizations(result) == {"fc": "threshold"}
    thresholds = _weight(result, op.thresholds)
    assert thresholds.shape[1] <= (1 << out.width.data) - 1
    assert np.all(np.diff(thresholds.astype(np.int64), axis=1) >= 0)


@pytest.mark.parametrize("seed", range(3))
def test_layers_over_the_limit_become_thresholds_by_default(seed: int) -> None:
    program = integer_mlp(seed, widths=(12, 6, 4), fan_in=5, bits=3, batch=64)
    x = np.random.default_rng(seed).uniform(0, 1, (64, 12)).astype(np.float32)
    result = check_pass(program, [x], "logic-extract")
    assert _realizations(result) == {"fc0": "threshold", "fc1": "threshold"}
    assert not _ops(result, logic.TableOp)


def test_decompose_none_keeps_the_error() -> None:
    program = integer_mlp(2, widths=(12, 6, 4), fan_in=5, bits=3)
    with pytest.raises(InputError, match=r"layer 'fc0'.*6 of 6 neurons.*15 bits") as err:
        apply(program, "logic-extract{decompose=none}")
    assert "decompose=threshold" in str(err.value) and "ircomp train" in str(err.value)


def test_float_chain_over_the_limit_says_why() -> None:
    program = float_chain_layer(3, inp=12, out=4, fan_in=7)
    with pytest.raises(InputError, match=r"layer 'fc': 4 of 4 neurons.*14 bits") as err:
        apply(program, "logic-extract")
    message = str(err.value)
    assert "float sums cannot be split exactly" in message and "nn.dequantize" in message
    assert "max-inputs" in message


def test_realize_threshold_refuses_a_float_sum_it_could_tabulate() -> None:
    with pytest.raises(
        InputError, match=r"layer 'fc': not realizable as thresholds: its sum"
    ) as err:
        apply(float_chain_layer(3), "logic-extract{realize=threshold}")
    assert "realize=auto keeps tables" in str(err.value)
    assert _realizations(apply(float_chain_layer(3), "logic-extract{realize=auto}")) == {
        "fc": "table"
    }


def test_mixed_realizations_and_the_attribute() -> None:
    program = code_mlp(4, widths=(16, 8, 6, 4), fan_in=3, bits=2, batch=64)  # 6-bit tables
    wide = code_mlp(4, widths=(16, 8), fan_in=7, bits=2, batch=64)
    x = np.random.default_rng(0).integers(0, 4, (64, 16))
    tables = check_pass(program, [x], "logic-extract")
    assert set(_realizations(tables).values()) == {"table"}
    auto = check_pass(program, [x], "logic-extract{realize=auto max-inputs=4}")
    assert set(_realizations(auto).values()) == {"threshold"}
    auto = check_pass(program, [x], "logic-extract{realize=auto}")
    assert set(_realizations(auto).values()) == {"table"}
    result = check_pass(wide, [x], "logic-extract{realize=auto}")
    assert _realizations(result) == {"fc0": "threshold"}


def test_realize_threshold_on_a_table_sized_layer_and_back() -> None:
    program = trained_like_layer(5, fan_in=4, batch=256)
    x = np.random.default_rng(1).integers(0, 4, (256, 32))
    thresholds = check_pass(program, [x], "logic-extract{realize=threshold}")
    table = check_pass(program, [x], "logic-extract{realize=table}")
    assert _realizations(thresholds) == {"fc": "threshold"}
    assert _realizations(table) == {"fc": "table"}
    np.testing.assert_array_equal(run(thresholds, [x])[0], run(table, [x])[0])


def test_decreasing_chains_negate_the_weights() -> None:
    multipliers = [1.0, -1.0, 0.5, -2.0, -0.3]
    program = float_tail_layer(1, multipliers, fan_in=6)
    x = np.random.default_rng(2).integers(0, 4, (1, 12))
    result = apply(program, "logic-extract{realize=threshold}")
    (op,) = _ops(result, logic.ThresholdOp)
    original = program.weights.get(_ops(program, nn.LinearOp)[0].weight.owner.hash.data)
    fanin = _weight(result, op.fanin)
    weights = _weight(result, op.weights)
    for j, m in enumerate(multipliers):
        expected = original[j, fanin[j]] * (1 if m > 0 else -1)
        np.testing.assert_array_equal(weights[j], expected)
    for row in np.random.default_rng(3).integers(0, 4, (200, 12)):
        np.testing.assert_array_equal(run(result, [row[None]])[0], run(program, [row[None]])[0])
    np.testing.assert_array_equal(run(result, [x])[0], run(program, [x])[0])


def test_non_monotone_chains_are_refused() -> None:
    program = float_tail_layer(1, [1.0, 2.0, 3.0], fan_in=6, activation=nn.HardSwishOp)
    with pytest.raises(InputError, match=r"neuron \d's output is not monotone in its accum"):
        apply(program, "logic-extract{realize=threshold}")
    result = apply(program, "logic-extract{realize=table}")  # tables do not care
    assert _realizations(result) == {"fc": "table"}


def _wrapping_program() -> Program:
    b = GraphBuilder()
    x = b.input((1, 8), uint(4))
    w = b.weight("fc.weight", np.full((2, 8), 40), IntegerType(8))
    acc = b.op(nn.LinearOp, [x, w], IntegerType(12), name="fc")  # sums up to 4800
    y = b.op(nn.RequantizeOp, [acc], uint(2), scale=[0.01], mode="onnx")
    return b.finish([y])


def test_a_wrapping_accumulator_is_refused() -> None:
    with pytest.raises(InputError, match=r"reaches \[0, 4800\], beyond its i12 result"):
        apply(_wrapping_program(), "logic-extract")


def test_threshold_enumeration_is_bounded_by_max_rows() -> None:
    program = integer_layer(0, fan_in=10, inputs=12, bits_in=4, weight_max=7)
    with pytest.raises(InputError, match=r"accumulator ranges \([\d,]+ values\) exceeds max-rows"):
        apply(program, "logic-extract{max-rows=1000}")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("realize=lut", "realize='lut': use one of table, threshold, auto"),
        ("decompose=split", "decompose='split': use one of threshold, none"),
        ("realize=auto decompose=none", "contradicts decompose=none"),
    ],
)
def test_bad_options(options: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        apply(integer_mlp(0), f"logic-extract{{{options}}}")


def test_care_data_with_a_threshold_layer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    program = code_mlp(6, widths=(16, 8, 4), fan_in=(7, 3), bits=2, batch=20)
    data = np.random.default_rng(4).integers(0, 4, (20, 16))
    np.save(tmp_path / "x.npy", data)
    result = check_pass(program, [data], f'logic-extract{{care-data="{tmp_path / "x.npy"}"}}')
    assert _realizations(result) == {"fc0": "threshold", "fc1": "table"}
    (table,) = _ops(result, logic.TableOp)
    care = _weight(result, table.care)
    assert 0 < care.sum() <= 20 * 4
