"""slice_program: a prologue and a body cut out of a program compose back to the program."""

from __future__ import annotations

import numpy as np
import pytest
from logic_nets import integer_mlp

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.interpreter import run
from ircomp.ir.program import print_module
from ircomp.ir.slicing import slice_program


def test_prologue_then_body_equals_the_program() -> None:
    program = integer_mlp(4, batch=5)
    block = program.module.body.block.first_op.body.block
    quant = next(op for op in block.ops if isinstance(op, nn.QuantizeOp))
    output = block.last_op.operands[0]
    prologue = slice_program(program, [block.args[0]], [quant.result])
    body = slice_program(program, [quant.result], [output])
    prologue.verify()
    body.verify()
    x = np.random.default_rng(0).uniform(0, 1, (5, 12)).astype(np.float32)
    (codes,) = run(prologue, [x])
    np.testing.assert_array_equal(run(body, [codes])[0], run(program, [x])[0])
    assert "nn.quantize" not in print_module(body.module)
    assert len(body.weights) == 4 and len(prologue.weights) == 0
    assert "fc0" in print_module(program.module)  # the input program is untouched


def test_a_slice_needing_an_argument_it_lacks_is_refused() -> None:
    program = integer_mlp(4)
    block = program.module.body.block.first_op.body.block
    with pytest.raises(InputError, match="function argument 0"):
        slice_program(program, [], [block.last_op.operands[0]])
