"""cse: identical ops merge (weights by content, whatever their names); outputs bit-identical."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from pass_checks import apply, assert_ir_equal, check_pass
from strategies import build_program, float_graphs, graph_specs

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.weights import content_hash
from ircomp.passes.cse import _key


def test_duplicate_branches_fed_by_renamed_weights_merge() -> None:
    w = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = GraphBuilder()
    x = b.input((1, 4))
    a = b.op(nn.LinearOp, [x, b.weight("fc.weight", w)])
    c = b.op(nn.LinearOp, [x, b.weight("fc_copy.weight", w)])  # same tensor, another name
    r1, r2 = b.op(nn.ReluOp, [a]), b.op(nn.ReluOp, [c])
    other = b.op(nn.ClipOp, [a], min=0.0, max=1.0)  # differs by op: stays
    before = b.finish([b.op(nn.AddOp, [r1, r2]), other])

    after = apply(before, "cse")

    assert_ir_equal(
        after,
        f"""
        func.func @main(%0: tensor<1x4xf32>) -> (tensor<1x2xf32>, tensor<1x2xf32>) {{
          %1 = nn.weight {{name = "fc.weight", hash = "{content_hash(w)}"}} : () -> tensor<2x4xf32>
          %2 = nn.linear %0, %1 : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
          %3 = nn.relu %2 : (tensor<1x2xf32>) -> tensor<1x2xf32>
          %4 = nn.clip %2 {{min = 0.000000e+00 : f64, max = 1.000000e+00 : f64}}
            : (tensor<1x2xf32>) -> tensor<1x2xf32>
          %5 = nn.add %3, %3 : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
          func.return %5, %4 : tensor<1x2xf32>, tensor<1x2xf32>
        }}
        """,
    )


def test_layer_names_do_not_keep_duplicates_apart() -> None:
    b = GraphBuilder()
    x = b.input((2,))
    first = b.op(nn.ReluOp, [x], name="block1.act")
    second = b.op(nn.ReluOp, [x], name="block2.act")
    after = apply(b.finish([first, second]), "cse")
    assert_ir_equal(
        after,
        """
        func.func @main(%0: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
          %1 = nn.relu %0 {name = "block1.act"} : (tensor<2xf32>) -> tensor<2xf32>
          func.return %1, %1 : tensor<2xf32>, tensor<2xf32>
        }
        """,
    )


def test_ops_with_different_properties_stay_apart() -> None:
    b = GraphBuilder()
    x = b.input((1, 2, 4, 4))
    p1 = b.op(nn.MaxPool2dOp, [x], kernel=[2, 2])
    p2 = b.op(nn.MaxPool2dOp, [x], kernel=[2, 2], strides=[2, 2])
    program = b.finish([p1, p2])
    assert apply(program, "cse").module.is_structurally_equivalent(program.module)


def _no_duplicates(program) -> bool:
    keys = [_key(op) for op in program.module.walk() if isinstance(op, nn.NNOp)]
    return len(keys) == len(set(keys))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_cse_properties(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "cse")
    assert _no_duplicates(result)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_graphs(ops=("dup", "linear", "conv2d", "relu", "const", "add", "split")))
def test_cse_on_graphs_with_duplicates(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "cse")
    assert _no_duplicates(result)
    ops_before = sum(1 for _ in program.module.walk())
    assert sum(1 for _ in result.module.walk()) <= ops_before
