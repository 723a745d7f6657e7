"""What every pass must satisfy on every input, checked the same way for each pass."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ircomp.interpreter import run
from ircomp.ir.program import Program, parse_module, print_module
from ircomp.pass_manager import PassManager, parse_pipeline


def apply(program: Program, pipeline: str) -> Program:
    return PassManager(parse_pipeline(pipeline)).run(program)


def check_pass(
    program: Program,
    inputs: Sequence[np.ndarray],
    pipeline: str,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
) -> Program:
    """Run `pipeline` and check: the input is untouched, the result verifies, the golden
    interpreter gives the same outputs (bit-exact unless `rtol` is given), and running the
    pipeline again changes nothing. Returns the result."""
    before = print_module(program.module)
    weights_before = len(program.weights)
    expected = run(program, inputs)

    result = apply(program, pipeline)

    assert print_module(program.module) == before, "the pass manager modified its input"
    assert len(program.weights) == weights_before, "the input's weight store grew"
    result.verify()
    got = run(result, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        if rtol is None:
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)

    once = print_module(result.module)
    twice = apply(result, pipeline)
    assert print_module(twice.module) == once, "running the pass twice changed the IR"
    return result


def assert_ir_equal(result: Program, expected_text: str) -> None:
    """TVM style: the printed result equals the expected module (parsed, then printed)."""
    expected = print_module(parse_module(expected_text))
    assert print_module(result.module) == expected
