"""Small fan-in-constrained networks in the forms `logic-extract` recognises, for tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import IntegerType, Signedness, f32, i32

from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program


def uint(bits: int) -> IntegerType:
    return IntegerType(bits, Signedness.UNSIGNED)


def sparse_weights(rng: np.random.Generator, out: int, inp: int, fan_in: int) -> np.ndarray:
    """Integer weights with exactly `fan_in` nonzeros per row."""
    w = np.zeros((out, inp), dtype=np.int64)
    for j in range(out):
        cols = rng.choice(inp, size=fan_in, replace=False)
        w[j, cols] = rng.choice([-3, -2, -1, 1, 2, 3], size=fan_in)
    return w


def integer_mlp(
    seed: int,
    widths: Sequence[int] = (12, 8, 6),
    fan_in: int = 3,
    bits: int = 2,
    signed_last: bool = True,
    batch: int = 1,
) -> Program:
    """f32 -> quantize ui<bits> -> [linear i8 -> requantize] * layers; the last layer signed."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((batch, widths[0]))
    codes = b.op(nn.QuantizeOp, [x], uint(bits), scale=[1.0 / ((1 << bits) - 1)], name="quant")
    layers = list(itertools.pairwise(widths))
    for n, (inp, out) in enumerate(layers):
        last = n == len(layers) - 1
        w = b.weight(f"fc{n}.weight", sparse_weights(rng, out, inp, fan_in), IntegerType(8))
        bias = b.weight(f"fc{n}.bias", rng.integers(-4, 5, out), i32)
        acc = b.op(nn.LinearOp, [codes, w, bias], i32, name=f"fc{n}")
        fmt = IntegerType(bits + 1) if last and signed_last else uint(bits)
        scale = list(rng.uniform(0.2, 0.6, out))
        codes = b.op(nn.RequantizeOp, [acc], fmt, scale=scale, mode="onnx", name=f"act{n}")
    return b.finish([codes])


def float_chain_layer(seed: int, inp: int = 6, out: int = 4, fan_in: int = 2) -> Program:
    """ui2 codes -> dequantize -> linear f32 (sparse) -> relu -> quantize ui2 (QONNX-like)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((1, inp), uint(2))
    real = b.op(nn.DequantizeOp, [x], f32, scale=[0.5])
    w = sparse_weights(rng, out, inp, fan_in).astype(np.float32) * 0.37
    y = b.op(
        nn.LinearOp,
        [real, b.weight("fc.weight", w), b.weight("fc.bias", rng.normal(size=out))],
        name="fc",
    )
    y = b.op(nn.ReluOp, [y])
    return b.finish([b.op(nn.QuantizeOp, [y], uint(2), scale=[0.25])])
