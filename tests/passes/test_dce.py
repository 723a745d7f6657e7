"""dce: dead ops and the weights only they used disappear; outputs stay bit-identical."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from pass_checks import apply, assert_ir_equal, check_pass
from strategies import build_program, graph_specs

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.weights import content_hash


def test_dead_branch_and_its_weights_are_removed() -> None:
    b = GraphBuilder()
    x = b.input((1, 4))
    w = np.ones((3, 4), np.float32)
    dead = b.op(nn.LinearOp, [x, b.weight("dead.weight", w)])
    b.op(nn.ReluOp, [dead])
    b.weight("unused", np.zeros(2, np.float32))
    keep = b.weight("keep", np.full(4, 2.0, np.float32))
    before = b.finish([b.op(nn.AddOp, [x, keep])])

    after = apply(before, "dce")

    assert_ir_equal(
        after,
        f"""
        func.func @main(%0: tensor<1x4xf32>) -> tensor<1x4xf32> {{
          %1 = nn.weight {{name = "keep", hash = "{content_hash(np.full(4, 2.0, np.float32))}"}}
            : () -> tensor<4xf32>
          %2 = nn.add %0, %1 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
          func.return %2 : tensor<1x4xf32>
        }}
        """,
    )
    assert len(after.weights) == 1  # the returned store holds only what the module uses
    assert len(before.weights) == 3


def test_values_used_by_the_return_stay() -> None:
    b = GraphBuilder()
    x = b.input((2, 3))
    w = b.weight("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    program = b.finish([b.op(nn.ReluOp, [x]), w])
    assert apply(program, "dce").module.is_structurally_equivalent(program.module)


def _live_ops_only(program) -> bool:
    return all(
        any(r.uses for r in op.results) for op in program.module.walk() if isinstance(op, nn.NNOp)
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_dce_properties(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "dce")
    assert _live_ops_only(result)
    assert {op.hash.data for op in result.weight_ops()} == set(result.weights)
