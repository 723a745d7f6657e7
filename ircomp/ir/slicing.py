"""Cut a sub-computation out of a program: the ops between some values and some results."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue

from ircomp.dialects.nn import WeightOp
from ircomp.errors import InputError
from ircomp.ir.program import Program


def _cone(outputs: Sequence[SSAValue], inputs: Sequence[SSAValue]) -> set[Operation]:
    """The ops `outputs` depend on, stopping at `inputs`."""
    stop = set(inputs)
    needed: set[Operation] = set()
    work = [v for v in outputs if v not in stop]
    while work:
        value = work.pop()
        if isinstance(value, BlockArgument):
            raise InputError(
                f"the slice depends on function argument {value.index}, which is not one of "
                "its inputs"
            )
        op = value.owner
        assert isinstance(op, Operation)
        if op in needed:
            continue
        needed.add(op)
        work.extend(v for v in op.operands if v not in stop)
    return needed


def _source_block(inputs: Sequence[SSAValue], outputs: Sequence[SSAValue]) -> Block:
    for value in (*outputs, *inputs):
        block = value.block if isinstance(value, BlockArgument) else value.owner.parent_block()
        if block is not None:
            return block
    raise ValueError("a slice needs at least one input or output")


def slice_program(
    program: Program,
    inputs: Sequence[SSAValue],
    outputs: Sequence[SSAValue],
    name: str = "main",
) -> Program:
    """A program whose `@name` maps `inputs` to `outputs` with the ops between them.

    `inputs` and `outputs` are values of one function of `program`; ops outside the cone are
    dropped, weights are shared with `program`'s store. The input program is not modified.
    """
    needed = _cone(outputs, inputs)
    block = Block(arg_types=[v.type for v in inputs])
    mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, block.args, strict=True))
    for op in _source_block(inputs, outputs).ops:
        if op in needed:
            clone = op.clone(value_mapper=mapping)
            block.add_op(clone)
            mapping.update(zip(op.results, clone.results, strict=True))
    block.add_op(func.ReturnOp(*(mapping[v] for v in outputs)))
    fn_type = ([v.type for v in inputs], [v.type for v in outputs])
    function = func.FuncOp(name, fn_type, Region(block))
    module = ModuleOp([function])
    hashes = {op.hash.data for op in module.walk() if isinstance(op, WeightOp)}
    return Program(module, program.weights.subset(hashes))


__all__ = ["slice_program"]
