"""The interpreter's interface: input checks, outputs, the observer, kernels, speed."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np
import pytest
from xdsl.dialects.builtin import IntegerType

from ircomp.dialects import nn
from ircomp.dialects.num import PositType
from ircomp.errors import InputError
from ircomp.interpreter import KERNELS, Interpreter, run
from ircomp.interpreter.kernels import missing_kernels
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module

I8 = IntegerType(8)


def two_input_program() -> Program:
    b = GraphBuilder()
    x = b.input((-1, 4))
    y = b.input((3, 4), I8)
    q = b.op(nn.QuantizeOp, [x], I8, scale=[0.5])
    return b.finish([b.op(nn.AddOp, [q, y]), x])


def test_runs_and_returns_the_declared_representation() -> None:
    program = two_input_program()
    x = np.linspace(-3, 3, 12).reshape(3, 4)  # float64 casts to f32
    y = np.arange(12, dtype=np.int64).reshape(3, 4)  # int64 codes in range cast to i8
    total, passthrough = run(program, [x, y])
    assert total.dtype == np.int8 and passthrough.dtype == np.float32
    expected = np.clip(np.rint(x.astype(np.float32) / 0.5), -128, 127) + y
    assert total.tolist() == expected.astype(np.int64).tolist()


def test_dynamic_dims_accept_any_size() -> None:
    b = GraphBuilder()
    x = b.input((-1, 4))
    program = b.finish([b.op(nn.ReluOp, [x])])
    for n in (1, 5):
        (out,) = run(program, [np.ones((n, 4), np.float32)])
        assert out.shape == (n, 4)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([np.zeros((3, 4))], r"takes 2 inputs .* got 1"),
        ([np.zeros((3, 4)), np.zeros((3, 4), np.int8), np.zeros(1)], r"takes 2 inputs"),
        ([np.zeros((3, 5)), np.zeros((3, 4), np.int8)], r"input 0: expected shape \[\?, 4\]"),
        ([np.zeros((3, 4, 1)), np.zeros((3, 4), np.int8)], r"input 0: expected shape"),
        ([np.zeros((3, 4)), np.zeros((4, 4), np.int8)], r"input 1: expected shape \[3, 4\]"),
        ([np.zeros((3, 4)), np.zeros((3, 4), np.float32)], r"input 1: expected integer codes"),
        ([np.zeros((3, 4), complex), np.zeros((3, 4), np.int8)], r"input 0: expected float"),
        ([np.zeros((3, 4)), np.full((3, 4), 300)], r"input 1: i8 codes must be in -128\.\.127"),
    ],
)
def test_bad_inputs_name_the_argument(inputs: list[np.ndarray], message: str) -> None:
    with pytest.raises(InputError, match=message):
        run(two_input_program(), inputs)


def test_posit_codes_are_range_checked() -> None:
    b = GraphBuilder()
    x = b.input((2,), PositType(4, 0))
    program = b.finish([b.op(nn.ReshapeOp, [x], shape=[2, 1])])
    assert run(program, [np.array([3, 15])])[0].dtype == np.uint8
    with pytest.raises(InputError, match=r"input 0: posit<4,0> codes must be in 0\.\.15"):
        run(program, [np.array([3, 16])])


def test_unknown_function_and_missing_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    b = GraphBuilder()
    program = b.finish([b.op(nn.TanhOp, [b.input((2,))])])
    with pytest.raises(InputError, match=r"no function @other \(functions: @main\)"):
        run(program, [np.zeros(2)], function="other")
    monkeypatch.delitem(KERNELS, nn.TanhOp)
    with pytest.raises(InputError, match=r"no kernel for 'nn\.tanh'"):
        run(program, [np.zeros(2)])


def test_every_nn_op_has_a_kernel() -> None:
    assert missing_kernels(list(nn.NN.operations)) == []


def test_observer_sees_every_op_in_order() -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    w = b.weight("w", np.eye(3, dtype=np.float32))
    parts = b.op_multi(nn.SplitOp, [b.op(nn.LinearOp, [x, w])], axis=1, sizes=[1, 2])
    program = b.finish(parts)
    seen: list[tuple[str, list[tuple[int, ...]]]] = []
    run(
        program,
        [np.ones((2, 3))],
        observer=lambda op, results: seen.append((op.name, [r.shape for r in results])),
    )
    assert seen == [
        ("nn.weight", [(3, 3)]),
        ("nn.linear", [(2, 3)]),
        ("nn.split", [(2, 1), (2, 2)]),
    ]


def test_runs_a_parsed_module_and_a_named_function() -> None:
    program = two_input_program()
    text = print_module(program.module).replace("@main", "@entry")
    reparsed = Program(parse_module(text), program.weights)
    outs = run(reparsed, [np.ones((3, 4)), np.ones((3, 4), np.int8)], function="entry")
    assert outs[0].tolist() == [[3] * 4] * 3


def _mlp(batch: int, dims: list[int]) -> tuple[Program, list, np.ndarray]:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    h = b.input((batch, dims[0]))
    params = []
    for i, (fin, fout) in enumerate(itertools.pairwise(dims)):
        w = (rng.standard_normal((fout, fin)) * fin**-0.5).astype(np.float32)
        bias = rng.standard_normal(fout).astype(np.float32)
        params.append((w, bias))
        h = b.op(nn.LinearOp, [h, b.weight(f"w{i}", w), b.weight(f"b{i}", bias)])
        if i < len(dims) - 2:
            h = b.op(nn.ReluOp, [h])
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    return b.finish([h]), params, x


def test_mlp_speed_is_close_to_plain_numpy() -> None:
    """The brief's target is ~1.5x; the bound here is loose so that a busy machine passes."""
    program, params, x = _mlp(1024, [784, 256, 128, 10])

    def numpy_mlp(h: np.ndarray) -> np.ndarray:
        for i, (w, bias) in enumerate(params):
            h = h @ w.T + bias
            if i < len(params) - 1:
                h = np.maximum(h, 0)
        return h

    np.testing.assert_array_equal(run(program, [x])[0], numpy_mlp(x))
    interpreter = Interpreter(program)

    def median_time(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    ratio = median_time(lambda: run(program, [x])) / median_time(lambda: numpy_mlp(x))
    assert ratio < 2.0
    assert median_time(lambda: interpreter([x])) / median_time(lambda: numpy_mlp(x)) < 2.0
