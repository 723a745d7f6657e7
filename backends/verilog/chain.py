"""The chain of logic layers a program's function holds, in the form the emitter needs.

A program fits the Verilog backend when its function takes one tensor of codes and is a chain
`x -> layer_0 -> layer_1 -> ... -> y` of `logic.table` / `logic.lut_network` / `logic.threshold`
ops, with their tables, networks and thresholds as `nn.weight` ops and, between them, only
`nn.reshape` / `nn.flatten` ops that keep the last axis (pure wiring: the netlist handles one
row of the last axis per clock cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from ircomp.dialects import logic, nn
from ircomp.errors import InputError
from ircomp.interpreter.logic_kernels import lut_network_of
from ircomp.ir.program import Program
from ircomp.logic.network import LutNetwork

WIRING_OPS = (nn.ReshapeOp, nn.FlattenOp)
LOGIC_OPS = logic.LAYER_OPS


@dataclass(frozen=True)
class Codes:
    """A row of `count` codes of `width` bits each (raw two's complement when `signed`)."""

    count: int
    width: int
    signed: bool

    @property
    def bits(self) -> int:
        return self.count * self.width


@dataclass(frozen=True)
class Tables:
    """A `logic.table` layer: neuron j is `tables[table_index[j]]` over `fanin[j]`.

    `tables` holds raw output patterns (`w_out` bits, unsigned), fan-in `-1` reads code 0.
    """

    fanin: np.ndarray  # int64 [M, F]
    tables: np.ndarray  # int64 [U, 2^(w_in*F)]
    table_index: np.ndarray  # int64 [M]


@dataclass(frozen=True)
class Thresholds:
    """A `logic.threshold` layer: neuron j is `base[j] + #{t : acc_j >= thresholds[j, t]}`
    (wrapped to `w_out` bits), `acc_j = sum_k weights[j, k] * x[fanin[j, k]]`.

    `weights` is 0 on the `-1` fan-in slots; `thresholds` are sorted ascending per neuron;
    `base` holds output codes (signed values for signed formats).
    """

    fanin: np.ndarray  # int64 [M, F]
    weights: np.ndarray  # int64 [M, F]
    thresholds: np.ndarray  # int64 [M, T]
    base: np.ndarray  # int64 [M]


@dataclass(frozen=True)
class Layer:
    index: int
    op_name: str  # "logic.table", "logic.lut_network" or "logic.threshold"
    name: str  # the op's source name ("" when it has none)
    input: Codes
    output: Codes
    tables: Tables | None = None
    network: LutNetwork | None = None
    threshold: Thresholds | None = None


@dataclass(frozen=True)
class Chain:
    layers: tuple[Layer, ...]
    argument: TensorType  # the function's input type
    result: TensorType  # the function's result type

    @property
    def input(self) -> Codes:
        return self.layers[0].input

    @property
    def output(self) -> Codes:
        return self.layers[-1].output


def _describe(op: Operation) -> str:
    name = nn.op_name(op)
    return f"{op.name} '{name}'" if name else op.name


def _last_dim(value: SSAValue) -> int:
    assert isinstance(value.type, TensorType)
    shape = value.type.get_shape()
    return shape[-1] if shape else -1


def _codes(value: SSAValue, what: str) -> Codes:
    assert isinstance(value.type, TensorType)
    width = logic.code_width(value.type.element_type)
    if width is None:
        raise InputError(f"{what} must hold integer, fixed-point or bit codes")
    count = _last_dim(value)
    if count <= 0:
        raise InputError(f"{what} needs a static, non-empty last axis, got {value.type}")
    return Codes(count, width[0], width[1])


def _weight(op: Operation, operand: int, program: Program) -> np.ndarray:
    owner = op.operands[operand].owner
    if not isinstance(owner, nn.WeightOp):
        raise InputError(
            f"{_describe(op)}: operand {operand} must be an nn.weight, got {owner.name}; the "
            "Verilog backend needs constant tables (run constant-fold first)"
        )
    return np.asarray(program.weights.get(owner.hash.data))


def _table_layer(op: logic.TableOp, program: Program, index: int, inp: Codes, out: Codes) -> Layer:
    fanin = _weight(op, 1, program).astype(np.int64)
    tables = _weight(op, 2, program).astype(np.int64) & ((1 << out.width) - 1)
    table_index = _weight(op, 3, program).astype(np.int64)
    where = _describe(op)
    if fanin.size and (fanin.min() < -1 or fanin.max() >= inp.count):
        raise InputError(f"{where}: fan-in indices must be -1 or in 0..{inp.count - 1}")
    if table_index.size and (table_index.min() < 0 or table_index.max() >= len(tables)):
        raise InputError(f"{where}: table_index must be in 0..{len(tables) - 1}")
    return Layer(
        index,
        op.name,
        nn.op_name(op) or "",
        inp,
        out,
        tables=Tables(fanin, tables, table_index),
    )


def _threshold_layer(
    op: logic.ThresholdOp, program: Program, index: int, inp: Codes, out: Codes
) -> Layer:
    fanin = _weight(op, 1, program).astype(np.int64)
    weights = _weight(op, 2, program).astype(np.int64)
    thresholds = np.sort(_weight(op, 3, program).astype(np.int64), axis=-1)
    base = _weight(op, 4, program).astype(np.int64)
    if fanin.size and (fanin.min() < -1 or fanin.max() >= inp.count):
        raise InputError(f"{_describe(op)}: fan-in indices must be -1 or in 0..{inp.count - 1}")
    return Layer(
        index,
        op.name,
        nn.op_name(op) or "",
        inp,
        out,
        threshold=Thresholds(fanin, np.where(fanin >= 0, weights, 0), thresholds, base),
    )


def logic_chain(program: Program, function: str = "main") -> Chain:
    """The logic layers of `@function`; InputError naming the op that does not fit."""
    fn = next(
        (
            op
            for op in program.module.ops
            if isinstance(op, func.FuncOp) and op.sym_name.data == function
        ),
        None,
    )
    if fn is None:
        raise InputError(f"the program has no function @{function}")
    args = fn.body.block.args
    if len(args) != 1:
        raise InputError(
            f"@{function} takes {len(args)} inputs; a Verilog netlist has one input vector"
        )
    current: SSAValue = args[0]
    layers: list[Layer] = []
    result: SSAValue | None = None
    for op in fn.body.block.ops:
        if isinstance(op, nn.WeightOp):
            continue
        if isinstance(op, func.ReturnOp):
            if len(op.operands) != 1:
                raise InputError(
                    f"@{function} returns {len(op.operands)} values; a Verilog netlist has one "
                    "output vector"
                )
            result = op.operands[0]
            continue
        if isinstance(op, WIRING_OPS):
            if op.operands[0] is not current:
                raise InputError(
                    f"{_describe(op)} does not lie on the chain of logic layers; the Verilog "
                    "backend takes a single chain input -> logic ops -> output"
                )
            before, after = _last_dim(op.operands[0]), _last_dim(op.results[0])
            if before != after or before < 0:
                raise InputError(
                    f"{_describe(op)} changes the last axis ({before} -> {after}); the netlist "
                    "handles one row of the last axis per cycle, so only reshapes that keep it "
                    "are wiring: move the reshape out of the logic part or extract the layers "
                    "on the reshaped tensor"
                )
            current = op.results[0]
            continue
        if isinstance(op, LOGIC_OPS):
            if op.operands[0] is not current:
                raise InputError(
                    f"{_describe(op)} does not read the previous layer's result; the Verilog "
                    "backend takes a single chain input -> logic ops -> output (no branches)"
                )
            index = len(layers)
            inp = _codes(op.operands[0], f"{_describe(op)}: input")
            out = _codes(op.results[0], f"{_describe(op)}: result")
            if isinstance(op, logic.TableOp):
                layers.append(_table_layer(op, program, index, inp, out))
            elif isinstance(op, logic.ThresholdOp):
                layers.append(_threshold_layer(op, program, index, inp, out))
            else:
                network = lut_network_of(op, program.weights)
                layers.append(
                    Layer(index, op.name, nn.op_name(op) or "", inp, out, network=network)
                )
            current = op.results[0]
            continue
        raise InputError(
            f"{_describe(op)} is not a logic op: the Verilog backend (fpga-lut) takes a chain of "
            "logic.table / logic.lut_network / logic.threshold ops (nn.reshape / nn.flatten "
            "between them as wiring); run logic-extract so that every layer becomes a logic op, "
            "or cut the program to its logic part"
        )
    if not layers:
        raise InputError(
            f"@{function} holds no logic.table or logic.lut_network op or logic.threshold op"
        )
    if result is not current:
        raise InputError(f"@{function} must return the result of its last logic layer")
    argument, returned = args[0].type, result.type
    assert isinstance(argument, TensorType) and isinstance(returned, TensorType)
    return Chain(tuple(layers), argument, returned)
