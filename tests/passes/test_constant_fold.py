"""constant-fold: weight-only ops become weights holding what the interpreter computes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from pass_checks import apply, assert_ir_equal, check_pass
from strategies import build_program, float_graphs, graph_specs
from xdsl.dialects.builtin import IntegerType

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.weights import content_hash


def test_weight_only_chain_folds_into_one_weight() -> None:
    w = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    offset = np.array([0.5, 0.25], np.float32)
    b = GraphBuilder()
    x = b.input((1, 2))
    t = b.op(nn.TransposeOp, [b.weight("w", w)], perm=[1, 0])
    s = b.op(nn.AddOp, [b.op(nn.ReluOp, [t]), b.weight("offset", offset)])
    before = b.finish([b.op(nn.LinearOp, [x, s])])

    after = apply(before, "constant-fold")

    folded = np.maximum(w.T, 0) + offset
    assert_ir_equal(
        after,
        f"""
        func.func @main(%0: tensor<1x2xf32>) -> tensor<1x2xf32> {{
          %1 = nn.weight {{name = "w.folded.folded.folded", hash = "{content_hash(folded)}"}}
            : () -> tensor<2x2xf32>
          %2 = nn.linear %0, %1 : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
          func.return %2 : tensor<1x2xf32>
        }}
        """,
    )
    np.testing.assert_array_equal(after.weights.get(content_hash(folded)), folded)


def test_quantize_of_a_weight_folds_to_codes() -> None:
    b = GraphBuilder()
    x = b.input((1, 3), IntegerType(8))
    w = b.weight("w", np.array([[0.1, -0.2, 0.3]], np.float32))
    q = b.op(nn.QuantizeOp, [w], IntegerType(8), scale=[0.01])
    before = b.finish([b.op(nn.LinearOp, [x, q])])
    after = apply(before, "constant-fold")
    (weight,) = after.weight_ops()
    assert weight.weight_name.data == "w.folded"
    assert after.weights.get(weight.hash.data).dtype == np.int8
    np.testing.assert_array_equal(after.weights.get(weight.hash.data), [[10, -20, 30]])


def test_max_elements_leaves_large_results_alone() -> None:
    b = GraphBuilder()
    x = b.input((1, 8))
    relu = b.op(nn.ReluOp, [b.weight("w", np.ones((4, 8), np.float32))])
    before = b.finish([b.op(nn.LinearOp, [x, relu])])
    assert apply(before, "constant-fold{max-elements=31}").module.is_structurally_equivalent(
        before.module
    )
    assert not any(
        isinstance(op, nn.ReluOp)
        for op in apply(before, "constant-fold{max-elements=32}").module.walk()
    )


def test_split_of_a_weight_gives_one_weight_per_result() -> None:
    b = GraphBuilder()
    x = b.input((2, 4))
    parts = b.op_multi(
        nn.SplitOp,
        [b.weight("w", np.arange(8, dtype=np.float32).reshape(2, 4))],
        axis=1,
        sizes=[1, 3],
    )
    program = b.finish([b.op(nn.ConcatOp, [x, *parts], axis=1)])
    after = check_pass(program, [np.ones((2, 4), np.float32)], "constant-fold")
    names = sorted(op.weight_name.data for op in after.weight_ops())
    assert names == ["w.folded.0", "w.folded.1"]


def _no_foldable_ops(program) -> bool:
    return not any(
        isinstance(op, nn.NNOp)
        and not isinstance(op, nn.WeightOp)
        and op.operands
        and all(isinstance(v.owner, nn.WeightOp) for v in op.operands)
        for op in program.module.walk()
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_constant_fold_properties(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "constant-fold")
    assert _no_foldable_ops(result)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_graphs(ops=("const", "add", "relu", "transpose", "concat", "split", "linear")))
def test_constant_fold_on_weight_subgraphs(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "constant-fold")
    assert _no_foldable_ops(result)
    # Folded weights hold exactly what the op computes in the unfolded program.
    assert len(run(result, inputs)) == len(spec.outputs)
