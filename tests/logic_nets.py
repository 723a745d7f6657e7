"""Small fan-in-constrained networks in the forms `logic-extract` recognises, for tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import IntegerType, Signedness, f32, i32
from xdsl.ir import Attribute

from ircomp.dialects import logic, nn
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


def code_mlp(
    seed: int,
    widths: Sequence[int] = (16, 8, 4),
    fan_in: int | Sequence[int] = 6,
    bits: int = 2,
    *,
    signed_in: bool = False,
    signed_out: bool = True,
    out_bits: int | None = None,
    batch: int = 1,
) -> Program:
    """Codes (ui<bits>, or i<bits> when `signed_in`) -> [linear i8 -> requantize] * layers: the
    hidden layers ui<bits>, the last one i<out_bits> (default bits + 1) or ui<out_bits>;
    `fan_in` per layer or for all."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    codes = b.input((batch, widths[0]), IntegerType(bits) if signed_in else uint(bits))
    layers = list(itertools.pairwise(widths))
    fan_ins = [fan_in] * len(layers) if isinstance(fan_in, int) else list(fan_in)
    for n, (inp, out) in enumerate(layers):
        last = n == len(layers) - 1
        f = fan_ins[n]
        w = b.weight(f"fc{n}.weight", sparse_weights(rng, out, inp, f), IntegerType(8))
        bias = b.weight(f"fc{n}.bias", rng.integers(-4, 5, out), i32)
        acc = b.op(nn.LinearOp, [codes, w, bias], i32, name=f"fc{n}")
        width = out_bits or bits + 1
        fmt = (IntegerType(width) if signed_out else uint(width)) if last else uint(bits)
        scale = list(rng.uniform(0.5, 1.5, out) / np.sqrt(f))
        codes = b.op(nn.RequantizeOp, [acc], fmt, scale=scale, mode="onnx", name=f"act{n}")
    return b.finish([codes])


def trained_like_layer(
    seed: int,
    inputs: int = 32,
    neurons: int = 8,
    fan_in: int = 8,
    bits_in: int = 2,
    bits_out: int = 2,
    *,
    weight_bits: int = 4,
    input_zero_point: int = 0,
    batch: int = 1,
) -> Program:
    """One layer as quantization-aware training leaves it: ui<bits_in> codes -> sparse linear with
    roughly Gaussian int<weight_bits> weights (zero point 0) and a small bias -> requantize to
    ui<bits_out> (ReLU-like clamp at 0) with per-neuron scales that spread the outputs over
    their range."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((batch, inputs), uint(bits_in))
    top = (1 << (weight_bits - 1)) - 1
    w = np.zeros((neurons, inputs), dtype=np.int64)
    for j in range(neurons):
        cols = rng.choice(inputs, size=fan_in, replace=False)
        values = np.clip(np.round(rng.normal(0, top / 2, fan_in)), -top, top)
        values[values == 0] = rng.choice([-1, 1], int((values == 0).sum()))
        w[j, cols] = values
    x_max = (1 << bits_in) - 1
    spread = np.sqrt(fan_in) * (top / 2) * x_max / 2
    bias = np.round(rng.normal(0, spread / 4, neurons)).astype(np.int64)
    weight = b.weight("fc.weight", w, IntegerType(weight_bits))
    acc = b.op(
        nn.LinearOp,
        [x, weight, b.weight("fc.bias", bias, i32)],
        i32,
        name="fc",
        input_zero_point=input_zero_point,
    )
    scale = list(((1 << bits_out) - 1) / (2 * spread) * rng.uniform(0.8, 1.25, neurons))
    y = b.op(nn.RequantizeOp, [acc], uint(bits_out), scale=scale, mode="onnx", name="act")
    return b.finish([y])


def float_tail_layer(
    seed: int,
    multipliers: Sequence[float],
    *,
    inputs: int = 12,
    fan_in: int = 6,
    bits: int = 2,
    activation: type[nn.UnaryOp] | None = None,
) -> Program:
    """ui<bits> codes -> integer linear -> dequantize -> mul by `multipliers` (one per neuron,
    possibly negative) [-> activation] -> quantize i3: an integer sum with a float tail, monotone
    (decreasing where a multiplier is negative) unless the activation is not."""
    rng = np.random.default_rng(seed)
    neurons = len(multipliers)
    b = GraphBuilder()
    x = b.input((1, inputs), uint(bits))
    w = b.weight("fc.weight", sparse_weights(rng, neurons, inputs, fan_in), IntegerType(8))
    acc = b.op(nn.LinearOp, [x, w, b.weight("fc.bias", rng.integers(-3, 4, neurons), i32)], i32)
    real = b.op(nn.DequantizeOp, [acc], f32, scale=[0.25])
    y = b.op(nn.MulOp, [real, b.weight("fc.mul", np.asarray(multipliers, np.float32))])
    if activation is not None:
        y = b.op(activation, [y])
    return b.finish([b.op(nn.QuantizeOp, [y], IntegerType(3), scale=[0.5], name="fc")])


def integer_layer(
    seed: int,
    *,
    inputs: int = 16,
    neurons: int = 6,
    fan_in: int = 6,
    bits_in: int = 2,
    signed_in: bool = False,
    out: Attribute | None = None,
    weight_max: int = 3,
    input_zero_point: int = 0,
    weight_zero_point: int = 0,
    clamp: Sequence[int] = (),
    batch: int = 1,
) -> Program:
    """One integer layer: i<bits_in>/ui<bits_in> codes -> linear with int8 weights (`fan_in`
    nonzero per row, up to +-`weight_max`, stored plus `weight_zero_point`) and an i32 bias ->
    requantize `onnx` to `out` (default ui2) with per-neuron scales that spread the outputs."""
    rng = np.random.default_rng(seed)
    out = out or uint(2)
    b = GraphBuilder()
    x = b.input((batch, inputs), IntegerType(bits_in) if signed_in else uint(bits_in))
    w = np.zeros((neurons, inputs), dtype=np.int64)
    for j in range(neurons):
        cols = rng.choice(inputs, size=fan_in, replace=False)
        w[j, cols] = rng.choice([v for v in range(-weight_max, weight_max + 1) if v], fan_in)
    spread = max(1.0, np.sqrt(fan_in) * weight_max * (1 << bits_in) / 4)
    props: dict[str, object] = {}
    if input_zero_point:
        props["input_zero_point"] = input_zero_point
    if weight_zero_point:
        props["weight_zero_point"] = weight_zero_point
    acc = b.op(
        nn.LinearOp,
        [
            x,
            b.weight("fc.weight", w + weight_zero_point, IntegerType(8)),
            b.weight("fc.bias", np.round(rng.normal(0, spread / 2, neurons)), i32),
        ],
        i32,
        name="fc",
        **props,
    )
    width = logic.code_width(out)
    assert width is not None
    levels = (1 << width[0]) - 1
    scale = list(levels / (2 * spread) * rng.uniform(0.7, 1.4, neurons))
    extra: dict[str, object] = {"clamp": list(clamp)} if clamp else {}
    y = b.op(nn.RequantizeOp, [acc], out, scale=scale, mode="onnx", name="act", **extra)
    return b.finish([y])
