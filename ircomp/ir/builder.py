"""Build programs from Python: result shapes come from each op's shape rule.

    b = GraphBuilder("main")
    x = b.input((1, 64))
    w = b.weight("fc1.weight", np.zeros((32, 64), np.float32))
    y = b.op(nn.LinearOp, [x, w])
    program = b.finish([b.op(nn.ReluOp, [y])])

Frontends, passes and tests use this one mechanism to create IR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    Float32Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType, UFixPType, format_of, is_float_type
from ircomp.ir.program import Program
from ircomp.ir.weights import WeightStore
from ircomp.numerics import posit_frac_bits

ACCUMULATOR_WIDTH = 32


def tensor(shape: Sequence[int], element_type: Attribute | None = None) -> TensorType:
    """A tensor type; -1 in `shape` (the shape rules' dynamic dim) becomes `?`."""
    dims = [DYNAMIC_INDEX if d == -1 else d for d in shape]
    return TensorType(element_type or Float32Type(), dims)


def element_type_of(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def accumulator_type(x: Attribute, w: Attribute) -> Attribute:
    """Default result format of a MAC op (see spec/numerics.md): i32, or an exact fixp."""
    if is_float_type(x):
        return x
    if isinstance(x, FixPType | UFixPType):
        if isinstance(w, PositType):
            return FixPType(ACCUMULATOR_WIDTH, x.frac.data + posit_frac_bits(w.n.data, w.es.data))
        if isinstance(w, FixPType | UFixPType):
            return FixPType(ACCUMULATOR_WIDTH, x.frac.data + w.frac.data)
    return IntegerType(ACCUMULATOR_WIDTH)


def default_result_format(op_type: type[Operation], operands: Sequence[SSAValue]) -> Attribute:
    first = element_type_of(operands[getattr(op_type, "FORMAT_OPERAND", 0)])
    if op_type is nn.DequantizeOp:
        return Float32Type()
    if issubclass(op_type, nn.MacOp):
        return accumulator_type(first, element_type_of(operands[1]))
    if op_type is nn.MulOp and isinstance(first, FixPType | UFixPType):
        other = element_type_of(operands[1])
        assert isinstance(other, FixPType | UFixPType)
        return FixPType(ACCUMULATOR_WIDTH, first.frac.data + other.frac.data)
    if issubclass(op_type, nn.BinaryOp) and isinstance(first, FixPType | UFixPType):
        other = element_type_of(operands[1])
        assert isinstance(other, FixPType | UFixPType)
        # Exact sum: the larger integer part plus a carry bit, the finer fraction grid.
        frac = max(first.frac.data, other.frac.data)
        int_bits = max(first.width.data - first.frac.data, other.width.data - other.frac.data)
        return FixPType(min(int_bits + 1 + frac, ACCUMULATOR_WIDTH), frac)
    return first


def infer_result_types(
    op_type: type[nn.NNOp],
    operands: Sequence[SSAValue],
    result_format: Attribute | None,
    props: dict[str, Any],
) -> list[TensorType]:
    fmt = result_format or default_result_format(op_type, operands)
    count = len(props["sizes"]) if op_type is nn.SplitOp else 1
    probe = nn.build(op_type, operands, [tensor([], fmt)] * count, **dict(props))
    shapes = probe.shape_rule(probe.infer_result_shapes)
    probe.drop_all_references()
    return [tensor(s, fmt) for s in shapes]


class GraphBuilder:
    """Appends ops to one `func.func`; `finish` returns the verified Program."""

    def __init__(self, name: str = "main", weights: WeightStore | None = None) -> None:
        self.name = name
        self.weights = weights or WeightStore()
        self.block = Block()
        self.input_names: list[str] = []

    def input(self, shape: Sequence[int], element_type: Attribute | None = None) -> SSAValue:
        arg = self.block.insert_arg(tensor(shape, element_type), len(self.block.args))
        return arg

    def weight(
        self, name: str, array: np.ndarray, element_type: Attribute | None = None
    ) -> SSAValue:
        """Add a tensor to the store. For non-float formats `array` holds the codes."""
        elem = element_type or Float32Type()
        data = np.asarray(array, dtype=format_of(elem).storage_dtype)
        key = self.weights.add(data)
        op = nn.build(nn.WeightOp, [], tensor(data.shape, elem), name=name, hash=key)
        self.block.add_op(op)
        return op.result

    def op(
        self,
        op_type: type[nn.NNOp],
        operands: Sequence[SSAValue],
        result_format: Attribute | None = None,
        *,
        name: str | None = None,
        **props: Any,
    ) -> SSAValue:
        return self.op_multi(op_type, operands, result_format, name=name, **props)[0]

    def op_multi(
        self,
        op_type: type[nn.NNOp],
        operands: Sequence[SSAValue],
        result_format: Attribute | None = None,
        *,
        name: str | None = None,
        **props: Any,
    ) -> list[SSAValue]:
        """Append an op; `name` is the source layer path (e.g. `blocks.3.attn.qkv`)."""
        types = infer_result_types(op_type, operands, result_format, props)
        op = nn.build(op_type, operands, types, **props)
        if name is not None:
            op.attributes[nn.NAME_ATTR] = StringAttr(name)
        self.block.add_op(op)
        return list(op.results)

    def finish(self, outputs: Sequence[SSAValue], verify: bool = True) -> Program:
        self.block.add_op(func.ReturnOp(*outputs))
        fn_type = ([a.type for a in self.block.args], [o.type for o in outputs])
        function = func.FuncOp(self.name, fn_type, Region(self.block))
        program = Program(ModuleOp([function]), self.weights)
        if verify:
            program.verify()
        return program
