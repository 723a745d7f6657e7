"""shape-inference: dynamic result dims become the static sizes the shape rules imply."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from pass_checks import apply, assert_ir_equal, check_pass
from strategies import build_program, graph_specs, with_dynamic_dims

from ircomp.ir.program import Program, parse_module, print_module


def test_dynamic_results_and_signature_are_refined() -> None:
    before = Program(
        parse_module("""
        func.func @main(%0: tensor<2x8xf32>, %1: tensor<?x3xf32>)
            -> (tensor<?x?xf32>, tensor<?x?xf32>) {
          %2 = nn.relu %0 : (tensor<2x8xf32>) -> tensor<?x8xf32>
          %3 = nn.reshape %2 {shape = array<i64: 4, -1>} : (tensor<?x8xf32>) -> tensor<?x?xf32>
          %4 = nn.relu %1 : (tensor<?x3xf32>) -> tensor<?x?xf32>
          func.return %3, %4 : tensor<?x?xf32>, tensor<?x?xf32>
        }
        """)
    )
    before.verify()

    after = apply(before, "shape-inference")

    assert_ir_equal(
        after,
        """
        func.func @main(%0: tensor<2x8xf32>, %1: tensor<?x3xf32>)
            -> (tensor<4x4xf32>, tensor<?x3xf32>) {
          %2 = nn.relu %0 : (tensor<2x8xf32>) -> tensor<2x8xf32>
          %3 = nn.reshape %2 {shape = array<i64: 4, -1>} : (tensor<2x8xf32>) -> tensor<4x4xf32>
          %4 = nn.relu %1 : (tensor<?x3xf32>) -> tensor<?x3xf32>
          func.return %3, %4 : tensor<4x4xf32>, tensor<?x3xf32>
        }
        """,
    )
    x = np.ones((2, 8), np.float32)
    check_pass(before, [x, np.ones((5, 3), np.float32)], "shape-inference")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_shape_inference_restores_every_static_shape(spec) -> None:
    program, inputs = build_program(spec)
    loose = with_dynamic_dims(program, spec.seed)
    result = check_pass(loose, inputs, "shape-inference")
    assert print_module(result.module) == print_module(program.module)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_shape_inference_on_static_modules_changes_nothing(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "shape-inference")
    assert print_module(result.module) == print_module(program.module)
