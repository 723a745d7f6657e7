"""Hand-built logic programs for the Verilog backend tests."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import IntegerType, Signedness
from xdsl.ir import Attribute, SSAValue

from ircomp.dialects import logic, nn
from ircomp.dialects.num import BitType, FixPType, UFixPType
from ircomp.interpreter.values import repr_of_type
from ircomp.ir.builder import GraphBuilder, element_type_of
from ircomp.ir.program import Program
from ircomp.logic.network import CONST0, CONST1, LutNetwork

I32 = IntegerType(32)
BIT = BitType()


def ui(width: int) -> Attribute:
    return IntegerType(width, Signedness.UNSIGNED)


def si(width: int) -> Attribute:
    return IntegerType(width)


def fixp(width: int, frac: int) -> Attribute:
    return FixPType(width, frac)


def ufixp(width: int, frac: int) -> Attribute:
    return UFixPType(width, frac)


def width_of(elem: Attribute) -> int:
    width = logic.code_width(elem)
    assert width is not None
    return width[0]


def random_codes(rng: np.random.Generator, elem: Attribute, shape: tuple[int, ...]) -> np.ndarray:
    low, high = repr_of_type(elem).code_range()
    return rng.integers(low, high + 1, shape)


def last_dim(value: SSAValue) -> int:
    return value.type.get_shape()[-1]  # type: ignore[union-attr]


def add_table(
    b: GraphBuilder,
    x: SSAValue,
    rng: np.random.Generator,
    *,
    neurons: int,
    fan_in: int,
    out: Attribute,
    unique: int | None = None,
    missing: float = 0.0,
    constant: int = 0,
    name: str | None = None,
) -> SSAValue:
    """A logic.table of random tables: `unique` distinct tables (default one per neuron),
    fan-in slots -1 with probability `missing`, the first `constant` tables constant."""
    count = last_dim(x)
    rows = 1 << (width_of(element_type_of(x)) * fan_in)
    fanin = rng.integers(0, count, (neurons, fan_in))
    fanin[rng.random((neurons, fan_in)) < missing] = -1
    unique = unique or neurons
    tables = random_codes(rng, out, (unique, rows))
    tables[:constant] = tables[:constant, :1]
    table_index = np.arange(neurons) % unique
    rng.shuffle(table_index)
    tag = name or f"t{len(b.block.ops)}"
    operands = [
        x,
        b.weight(f"{tag}.fanin", fanin, I32),
        b.weight(f"{tag}.tables", tables, out),
        b.weight(f"{tag}.table_index", table_index, I32),
    ]
    return b.op(logic.TableOp, operands, out, name=name)


def random_network(
    rng: np.random.Generator,
    num_inputs: int,
    num_luts: int,
    k: int,
    num_outputs: int,
    constants: float = 0.05,
) -> LutNetwork:
    """A random, topologically ordered k-LUT network: slots read inputs, earlier LUTs or (with
    probability `constants`) constants; outputs are mostly LUTs, a few inputs and constants."""
    inputs = np.zeros((num_luts, k), np.int64)
    for lut in range(num_luts):
        inputs[lut] = rng.integers(0, num_inputs + lut, k)
        const = rng.random(k) < constants
        inputs[lut, const] = rng.choice([CONST0, CONST1], int(const.sum()))
    init = rng.integers(0, 1 << 62, num_luts, dtype=np.int64).astype(np.uint64)
    init = init * np.uint64(4) + rng.integers(0, 4, num_luts).astype(np.uint64)
    if k < 6:
        init &= np.uint64((1 << (1 << k)) - 1)
    outputs = num_inputs + rng.integers(max(0, num_luts - num_outputs), num_luts, num_outputs)
    if num_outputs >= 4:
        outputs[0] = CONST1
        outputs[1] = CONST0
        outputs[2] = rng.integers(0, num_inputs)
    return LutNetwork(num_inputs, inputs, init, outputs)


def add_network(
    b: GraphBuilder, x: SSAValue, network: LutNetwork, *, out: Attribute, name: str | None = None
) -> SSAValue:
    tag = name or f"n{len(b.block.ops)}"
    operands = [
        x,
        b.weight(f"{tag}.lut_inputs", network.lut_inputs.astype(np.int32), I32),
        b.weight(f"{tag}.lut_init", network.init_halves(), ui(32)),
        b.weight(f"{tag}.outputs", network.outputs.astype(np.int32), I32),
    ]
    return b.op(logic.LutNetworkOp, operands, out, name=name)


def add_random_network(
    b: GraphBuilder,
    x: SSAValue,
    rng: np.random.Generator,
    *,
    codes: int,
    out: Attribute,
    luts: int,
    k: int = 6,
    name: str | None = None,
) -> SSAValue:
    num_inputs = last_dim(x) * width_of(element_type_of(x))
    network = random_network(rng, num_inputs, luts, k, codes * width_of(out))
    return add_network(b, x, network, out=out, name=name)


def mixed_program(seed: int = 0, batch: int = 1) -> Program:
    """Four layers covering the formats: ui2 -> table -> i3 -> network -> bit -> table ->
    fixp<3,1> -> network -> ufixp<2,1>, hostile layer names, a reshape and a flatten."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((batch, 6), ui(2))
    h = add_table(
        b,
        x,
        rng,
        neurons=8,
        fan_in=3,
        out=si(3),
        unique=5,
        missing=0.2,
        constant=1,
        name="blocks.0/fc-1",
    )
    h = b.op(nn.ReshapeOp, [h], shape=[batch, 1, 8])
    h = add_random_network(b, h, rng, codes=10, out=BIT, luts=40, k=6, name="module")
    h = b.op(nn.FlattenOp, [h], axis=2)
    h = b.op(nn.ReshapeOp, [h], shape=[batch, 10])
    h = add_table(b, h, rng, neurons=5, fan_in=4, out=fixp(3, 1), name="wire")
    h = add_random_network(
        b, h, rng, codes=3, out=ufixp(2, 1), luts=12, k=4, name="__x y/\u00e9*/ end"
    )
    return b.finish([h])
