"""One kernel per `nn` op: `KERNELS[OpClass](op, ctx)` prepares the op once and returns a
function from operand arrays to the tuple of result arrays.

Preparation decodes properties, formats and weights, so running an op costs one call. Float
kernels follow the precision rule in `ircomp.interpreter` (module docstring); kernels on codes
follow `spec/numerics.md` section 5 through `ircomp.numerics` (exact int64 arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from xdsl.ir import Operation

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.interpreter import windows
from ircomp.interpreter.values import (
    F32,
    I64,
    Repr,
    decode_bf16_codes,
    float_rounder,
    repr_of,
)
from ircomp.ir import shapes
from ircomp.ir.weights import WeightStore
from ircomp.numerics import (
    Int,
    Posit,
    broadcast_along_axis,
    dequantize_linear,
    posit_value_table,
    quantize_linear,
    requantize,
    rounding_average,
)
from ircomp.numerics.tflite import quantized_add, quantized_softmax

Arrays = tuple[np.ndarray, ...]
Fn = Callable[..., Arrays]


@dataclass(frozen=True)
class Context:
    """What kernels may read while preparing an op."""

    weights: WeightStore


Kernel = Callable[[Any, Context], Fn]
KERNELS: dict[type[Operation], Kernel] = {}


def kernel(*op_types: type[Operation]) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for op_type in op_types:
            KERNELS[op_type] = fn
        return fn

    return register


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32, copy=False)


def _i64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64, copy=False)


def _float_fn(rep: Repr, fn: Callable[..., np.ndarray]) -> Fn:
    """Lift a float32 computation to the float format `rep` (f16/bf16 compute in float32)."""
    if rep.fmt.kind == "f32":  # type: ignore[union-attr]
        return lambda *xs: (_f32(fn(*xs)),)
    rnd = float_rounder(rep)
    return lambda *xs: (rnd(fn(*(_f32(x) for x in xs))),)


# ---- weights --------------------------------------------------------------------------------


@kernel(nn.WeightOp)
def weight(op: nn.WeightOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    stored = ctx.weights.get(op.hash.data)
    if rep.is_float and rep.fmt.kind == "bf16":  # type: ignore[union-attr]
        value = decode_bf16_codes(stored)
    else:
        value = np.asarray(stored, dtype=rep.dtype)
    value.setflags(write=False)
    return lambda: (value,)


# ---- multiply-accumulate --------------------------------------------------------------------

_EXACT_F64 = 1 << 53


def _max_abs(x: np.ndarray) -> int:
    return max(-int(x.min()), int(x.max())) if x.size else 0


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of int64 arrays, exact modulo 2**64 (exact whenever it fits int64).

    When every partial sum is below 2**53 in magnitude, float64 BLAS is exact (all products
    and sums are integers a float64 holds), so it is used; otherwise numpy's integer matmul.
    """
    if _max_abs(a) * _max_abs(b) * a.shape[-1] < _EXACT_F64:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a, b)


@cache
def _posit_integer_table(n: int, es: int, frac: int) -> np.ndarray:
    """code -> posit_value * 2**frac as int64 (mod 2**64); NaR maps to 0 (checked apart)."""
    table = np.zeros(1 << n, dtype=np.int64)
    for code, value in enumerate(posit_value_table(n, es)):
        if math.isnan(value):
            continue
        exact = int(math.ldexp(value, frac))  # exact: the value is dyadic with <= frac digits
        assert exact == math.ldexp(value, frac)
        table[code] = (exact + (1 << 63)) % (1 << 64) - (1 << 63)
    table.setflags(write=False)
    return table


def _mac_operand(rep: Repr, zero_point: int, shift: int) -> Callable[[np.ndarray], np.ndarray]:
    """Codes -> int64 MAC operand: minus the zero point; posits as exact fixed-point codes."""
    if isinstance(rep.fmt, Posit):
        table = _posit_integer_table(rep.fmt.n, rep.fmt.es, shift)
        nar = rep.fmt.nar

        def posit_operand(codes: np.ndarray) -> np.ndarray:
            if (codes == nar).any():
                raise InputError("a posit MAC operand holds NaR, which has no value")
            return table[codes]

        return posit_operand
    if zero_point:
        return lambda codes: codes.astype(np.int64) - zero_point
    return _i64


@dataclass(frozen=True)
class _Mac:
    """Prepared parts of a MAC op: float or exact-integer operand conversion and output."""

    is_float: bool
    lhs: Callable[[np.ndarray], np.ndarray]
    rhs: Callable[[np.ndarray], np.ndarray]
    matmul: Callable[[np.ndarray, np.ndarray], np.ndarray]
    finish: Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def _prepare_mac(op: nn.MacOp) -> _Mac:
    x, w, _ = op.mac_operands()
    rx, rw, ro = repr_of(x), repr_of(w), repr_of(op.results[0])
    if ro.is_float:
        rnd = float_rounder(ro)

        def finish_float(acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
            if bias is not None:
                acc += _f32(bias)
            return rnd(acc)

        return _Mac(True, _f32, _f32, np.matmul, finish_float)

    def finish_codes(acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        if bias is not None:
            acc += _i64(bias)
        return ro.wrap(acc)

    lhs = _mac_operand(rx, op.get("input_zero_point"), 0)
    rhs = _mac_operand(rw, op.get("weight_zero_point"), ro.frac - rx.frac)
    return _Mac(False, lhs, rhs, int_matmul, finish_codes)


@kernel(nn.LinearOp)
def linear(op: nn.LinearOp, ctx: Context) -> Fn:
    mac = _prepare_mac(op)

    def run(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> Arrays:
        xm, wm = mac.lhs(x), mac.rhs(w)
        acc = mac.matmul(xm.reshape(-1, xm.shape[-1]), wm.T)
        return (mac.finish(acc.reshape(*x.shape[:-1], w.shape[0]), bias),)

    return run


@kernel(nn.MatMulOp)
def matmul(op: nn.MatMulOp, ctx: Context) -> Fn:
    mac = _prepare_mac(op)
    return lambda a, b: (mac.finish(mac.matmul(mac.lhs(a), mac.rhs(b)), None),)


@kernel(nn.Conv2dOp)
def conv2d(op: nn.Conv2dOp, ctx: Context) -> Fn:
    mac = _prepare_mac(op)
    strides, padding = op.get("strides"), op.get("padding")
    dilations, groups = op.get("dilations"), op.get("groups")

    def run(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> Arrays:
        acc = windows.conv2d(
            mac.lhs(x), mac.rhs(w), strides, padding, dilations, groups, mac.matmul
        )
        if bias is not None:
            bias = bias.reshape(-1, 1, 1)
        return (mac.finish(acc, bias),)

    return run


# ---- normalization --------------------------------------------------------------------------


@kernel(nn.BatchNormOp)
def batchnorm(op: nn.BatchNormOp, ctx: Context) -> Fn:
    eps = op.get("epsilon")

    def compute(x, scale, bias, mean, var):  # type: ignore[no-untyped-def]
        shape = (-1,) + (1,) * (x.ndim - 2)
        factor = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        return (x - mean.reshape(shape)) * _f32(factor).reshape(shape) + bias.reshape(shape)

    return _float_fn(repr_of(op.result), compute)


@kernel(nn.LayerNormOp)
def layernorm(op: nn.LayerNormOp, ctx: Context) -> Fn:
    eps = op.get("epsilon")
    rank = len(op.shape_of(op.input))
    axes = tuple(range(shapes.normalize_axis(op.get("axis"), rank), rank))

    def compute(x, scale, bias=None):  # type: ignore[no-untyped-def]
        x64 = x.astype(np.float64)
        centered = x64 - x64.mean(axis=axes, keepdims=True)
        var = np.square(centered).mean(axis=axes, keepdims=True)
        y = centered / np.sqrt(var + eps) * scale
        return y + bias if bias is not None else y

    return _float_fn(repr_of(op.result), compute)


# ---- elementwise ----------------------------------------------------------------------------

_FLOAT_BINARY = {
    nn.AddOp: np.add,
    nn.SubOp: np.subtract,
    nn.MulOp: np.multiply,
    nn.DivOp: np.divide,
}


def _shift_left(codes: np.ndarray, shift: int) -> np.ndarray:
    """codes * 2**shift modulo 2**64 (shift >= 0)."""
    if shift >= 64:
        return np.zeros_like(codes)
    return codes << shift if shift else codes


@kernel(nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp)
def binary(op: nn.BinaryOp, ctx: Context) -> Fn:
    ufunc = _FLOAT_BINARY[type(op)]
    ra, rb, ro = repr_of(op.lhs), repr_of(op.rhs), repr_of(op.result)
    if ro.is_float:
        return _float_fn(ro, ufunc)
    # Exact on codes aligned to the result's fraction bits, then wrapped (numerics.md 5.5).
    if isinstance(op, nn.MulOp):
        shift_a, shift_b = ro.frac - ra.frac - rb.frac, 0
    else:
        shift_a, shift_b = ro.frac - ra.frac, ro.frac - rb.frac

    def run(a: np.ndarray, b: np.ndarray) -> Arrays:
        exact = ufunc(_shift_left(_i64(a), shift_a), _shift_left(_i64(b), shift_b))
        return (ro.wrap(exact),)

    return run


@kernel(nn.ReluOp)
def relu(op: nn.ReluOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    if rep.is_float:
        return lambda x: (np.maximum(x, x.dtype.type(0)),)
    return lambda x: (np.maximum(x, rep.dtype.type(0)),)  # on codes


def _clip_float(rep: Repr, lo: float, hi: float) -> Fn:
    lo32, hi32 = np.float32(lo), np.float32(hi)
    return _float_fn(rep, lambda x: np.clip(x, lo32, hi32))


@kernel(nn.ClipOp)
def clip(op: nn.ClipOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    lo, hi = op.get("min"), op.get("max")
    if rep.is_float:
        return _clip_float(rep, lo, hi)
    # Bounds are codes; clamp them into the format's range so they fit the storage dtype.
    code_lo, code_hi = rep.code_range()
    lo_code = rep.dtype.type(min(max(math.ceil(lo), code_lo), code_hi))
    hi_code = rep.dtype.type(max(min(math.floor(hi), code_hi), code_lo))
    return lambda x: (np.clip(x, lo_code, hi_code),)


@kernel(nn.HardTanhOp)
def hardtanh(op: nn.HardTanhOp, ctx: Context) -> Fn:
    return _clip_float(repr_of(op.result), op.get("min"), op.get("max"))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@kernel(nn.SigmoidOp)
def sigmoid(op: nn.SigmoidOp, ctx: Context) -> Fn:
    return _float_fn(repr_of(op.result), _sigmoid)


@kernel(nn.TanhOp)
def tanh(op: nn.TanhOp, ctx: Context) -> Fn:
    return _float_fn(repr_of(op.result), np.tanh)


@kernel(nn.GeluOp)
def gelu(op: nn.GeluOp, ctx: Context) -> Fn:
    approximate = op.get("approximate")

    def compute(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.require(x, requirements=["C", "W"]))
        return torch.nn.functional.gelu(t, approximate=approximate).numpy()

    return _float_fn(repr_of(op.result), compute)


@kernel(nn.SoftmaxOp)
def softmax(op: nn.SoftmaxOp, ctx: Context) -> Fn:
    axis = op.get("axis")

    def compute(x: np.ndarray) -> np.ndarray:
        e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    return _float_fn(repr_of(op.result), compute)


# ---- pooling ----------------------------------------------------------------------------------


def _pool_geometry(op: nn.Pool2dOp) -> tuple[list[int], list[int], list[int], list[int], bool]:
    return (
        op.get("kernel"),
        op.get("strides"),
        op.get("padding"),
        op.dilations(),
        bool(op.get("ceil_mode")),
    )


@kernel(nn.MaxPool2dOp)
def maxpool2d(op: nn.MaxPool2dOp, ctx: Context) -> Fn:
    kernel_hw, strides, padding, dilations, ceil = _pool_geometry(op)
    rep = repr_of(op.result)
    # Padding never wins: -inf for floats, the storage dtype's lowest value for codes.
    if rep.is_float:
        fill: float | int | bool = -np.inf
    else:
        fill = False if rep.dtype == np.bool_ else np.iinfo(rep.dtype).min

    def run(x: np.ndarray) -> Arrays:
        out_hw = shapes.window2d(x.shape, kernel_hw, strides, padding, dilations, ceil)
        win = windows.windows(x, kernel_hw, strides, padding, dilations, out_hw, fill)
        return (win.max(axis=(-2, -1)),)

    return run


@kernel(nn.AvgPool2dOp)
def avgpool2d(op: nn.AvgPool2dOp, ctx: Context) -> Fn:
    kernel_hw, strides, padding, dilations, ceil = _pool_geometry(op)
    include_pad = bool(op.get("count_include_pad"))
    rep = repr_of(op.result)

    def windows_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_hw = shapes.window2d(x.shape, kernel_hw, strides, padding, dilations, ceil)
        win = windows.windows(x, kernel_hw, strides, padding, dilations, out_hw)
        counts = windows.average_counts(
            x.shape[2:], kernel_hw, strides, padding, out_hw, include_pad
        )
        return win, counts

    if rep.is_float:
        rnd = float_rounder(rep)

        def run_float(x: np.ndarray) -> Arrays:
            # float32 sums in window order (row-major), then one float32 division by the
            # count: onnxruntime's (MLAS) and torch's CPU average pool.
            win, counts = windows_counts(_f32(x))
            sums = np.zeros(win.shape[:4], np.float32)
            for ky in range(win.shape[4]):
                for kx in range(win.shape[5]):
                    sums += win[..., ky, kx]
            return (rnd(sums / counts.astype(np.float32)),)

        return run_float

    def run_codes(x: np.ndarray) -> Arrays:
        win, counts = windows_counts(x)
        sums = win.sum(axis=(-2, -1), dtype=I64)
        return (rounding_average(sums, counts).astype(rep.dtype),)

    return run_codes


@kernel(nn.GlobalAvgPool2dOp)
def global_avgpool2d(op: nn.GlobalAvgPool2dOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    if rep.is_float:
        rnd = float_rounder(rep)
        return lambda x: (rnd(x.mean(axis=(2, 3), keepdims=True, dtype=np.float64)),)

    def run_codes(x: np.ndarray) -> Arrays:
        sums = x.sum(axis=(2, 3), keepdims=True, dtype=np.int64)
        return (rounding_average(sums, x.shape[2] * x.shape[3]).astype(rep.dtype),)

    return run_codes


# ---- shape ops --------------------------------------------------------------------------------


@kernel(nn.ReshapeOp)
def reshape(op: nn.ReshapeOp, ctx: Context) -> Fn:
    target = tuple(op.get("shape"))
    return lambda x: (x.reshape(target),)


@kernel(nn.FlattenOp)
def flatten(op: nn.FlattenOp, ctx: Context) -> Fn:
    axis = op.get("axis")
    return lambda x: (x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])),)


@kernel(nn.TransposeOp)
def transpose(op: nn.TransposeOp, ctx: Context) -> Fn:
    perm = tuple(op.get("perm"))
    return lambda x: (np.transpose(x, perm),)


@kernel(nn.ConcatOp)
def concat(op: nn.ConcatOp, ctx: Context) -> Fn:
    axis = op.get("axis")
    return lambda *xs: (np.concatenate(xs, axis=axis),)


@kernel(nn.SliceOp)
def slice_(op: nn.SliceOp, ctx: Context) -> Fn:
    rank = len(op.shape_of(op.input))
    index: list[slice] = [slice(None)] * rank
    for start, end, axis, step in zip(
        op.get("starts"), op.get("ends"), op.get("axes"), op.get("steps"), strict=True
    ):
        index[shapes.normalize_axis(axis, rank)] = slice(start, end, step)
    key = tuple(index)
    return lambda x: (x[key],)


@kernel(nn.SplitOp)
def split(op: nn.SplitOp, ctx: Context) -> Fn:
    axis = op.get("axis")
    bounds = np.cumsum(op.get("sizes"))[:-1].tolist()
    return lambda x: tuple(np.split(x, bounds, axis=axis))


# ---- format casts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scales:
    """scale / zero_point properties: per tensor (axis None) or per channel along `axis`."""

    scale: np.ndarray | float
    zero_point: np.ndarray | int
    axis: int | None

    @classmethod
    def of(cls, op: nn.ScaledCastOp) -> _Scales:
        scale, zero_point = op.get("scale"), op.get("zero_point")
        if len(scale) == 1 and len(zero_point) == 1:
            return cls(float(scale[0]), int(zero_point[0]), None)
        zps = np.asarray(zero_point, np.int64)
        return cls(
            np.asarray(scale, np.float64), zps if zps.size > 1 else int(zps[0]), op.get("axis")
        )

    def along(self, value: np.ndarray | float | int, ndim: int) -> np.ndarray | float | int:
        """A per-channel parameter reshaped to broadcast along `axis` of `ndim`-D data."""
        if self.axis is None or not isinstance(value, np.ndarray) or value.size == 1:
            return value
        return broadcast_along_axis(value, self.axis, ndim)


@kernel(nn.QuantizeOp)
def quantize(op: nn.QuantizeOp, ctx: Context) -> Fn:
    rep, sc = repr_of(op.result), _Scales.of(op)
    if isinstance(rep.fmt, Int):
        lo, hi = rep.code_range()

        def run_int(x: np.ndarray) -> Arrays:
            codes = quantize_linear(x, sc.scale, sc.zero_point, sc.axis, qmin=lo, qmax=hi)
            return (codes.astype(rep.dtype),)

        return run_int

    fmt = rep.fmt  # fixp / posit / bit: code = encode(x / scale), the division in float64

    def run_encode(x: np.ndarray) -> Arrays:
        return (fmt.encode(x.astype(np.float64) / sc.along(sc.scale, x.ndim)).astype(rep.dtype),)

    return run_encode


@kernel(nn.DequantizeOp)
def dequantize(op: nn.DequantizeOp, ctx: Context) -> Fn:
    rep_in, sc = repr_of(op.input), _Scales.of(op)
    rnd = float_rounder(repr_of(op.result))
    if isinstance(rep_in.fmt, Int):
        return lambda q: (rnd(dequantize_linear(q, sc.scale, sc.zero_point, sc.axis)),)
    fmt = rep_in.fmt  # fixp / posit / bit: decode(code) * scale, in float64, rounded once
    return lambda q: (rnd(fmt.decode(q) * sc.along(sc.scale, q.ndim)),)


@kernel(nn.RequantizeOp)
def requantize_(op: nn.RequantizeOp, ctx: Context) -> Fn:
    rep, sc = repr_of(op.result), _Scales.of(op)
    mode, in_zp = op.get("mode"), op.get("input_zero_point")
    lo, hi = rep.code_range()
    clamp = op.get("clamp")
    if clamp:  # a fused activation's range, intersected with the output type's range
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])

    def run(x: np.ndarray) -> Arrays:
        acc = _i64(x) - in_zp if in_zp else x
        codes = requantize(
            acc, sc.scale, mode=mode, qmin=lo, qmax=hi, out_zero_point=sc.zero_point, axis=sc.axis
        )
        return (codes.astype(rep.dtype),)

    return run


# ---- TFLite integer kernels -------------------------------------------------------------------


@kernel(nn.QAddOp)
def qadd(op: nn.QAddOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    lo, hi = rep.code_range()
    clamp = op.get("clamp")
    if clamp:  # a fused activation's range, intersected with the output type's range
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    params = {
        "lhs_scale": op.get("lhs_scale"),
        "lhs_zero_point": op.get("lhs_zero_point"),
        "rhs_scale": op.get("rhs_scale"),
        "rhs_zero_point": op.get("rhs_zero_point"),
        "out_scale": op.get("scale"),
        "out_zero_point": op.get("zero_point"),
    }

    def run(a: np.ndarray, b: np.ndarray) -> Arrays:
        return (quantized_add(a, b, **params, qmin=lo, qmax=hi).astype(rep.dtype),)

    return run


@kernel(nn.QSoftmaxOp)
def qsoftmax(op: nn.QSoftmaxOp, ctx: Context) -> Fn:
    rep = repr_of(op.result)
    lo, _ = rep.code_range()
    scale, beta, axis = op.get("input_scale"), op.get("beta"), op.get("axis")

    def run(x: np.ndarray) -> Arrays:
        codes = quantized_softmax(x, input_scale=scale, beta=beta, axis=axis, qmin=lo)
        return (codes.astype(rep.dtype),)

    return run


# ---- ops added for the frontends ------------------------------------------------------------


def _torch_unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    def compute(x: np.ndarray) -> np.ndarray:
        return fn(torch.from_numpy(np.require(x, requirements=["C", "W"]))).numpy()

    return compute


_FLOAT_UNARY: dict[type[Operation], Callable[[np.ndarray], np.ndarray]] = {
    nn.SqrtOp: np.sqrt,
    nn.ReciprocalOp: np.reciprocal,
    nn.ExpOp: np.exp,
    nn.LogOp: np.log,
    nn.ErfOp: _torch_unary(torch.erf),
    nn.NegOp: np.negative,
    nn.AbsOp: np.abs,
}


@kernel(*_FLOAT_UNARY)
def float_unary(op: nn.UnaryOp, ctx: Context) -> Fn:
    return _float_fn(repr_of(op.result), _FLOAT_UNARY[type(op)])


@kernel(nn.PowOp)
def pow_(op: nn.PowOp, ctx: Context) -> Fn:
    return _float_fn(repr_of(op.result), np.power)


@kernel(nn.MaxOp, nn.MinOp)
def max_min(op: nn.BinaryOp, ctx: Context) -> Fn:
    # np.maximum / np.minimum propagate NaN (like ONNX Max/Min and torch); codes compare as
    # integers, which orders every non-posit format by value.
    ufunc = np.maximum if isinstance(op, nn.MaxOp) else np.minimum
    return lambda a, b: (ufunc(a, b),)


@kernel(nn.LeakyReluOp)
def leaky_relu(op: nn.LeakyReluOp, ctx: Context) -> Fn:
    alpha = np.float32(op.get("alpha"))
    return _float_fn(repr_of(op.result), lambda x: np.where(x >= 0, x, x * alpha))


@kernel(nn.HardSigmoidOp)
def hardsigmoid(op: nn.HardSigmoidOp, ctx: Context) -> Fn:
    alpha, beta = np.float32(op.get("alpha")), np.float32(op.get("beta"))
    one, zero = np.float32(1), np.float32(0)
    return _float_fn(
        repr_of(op.result), lambda x: np.minimum(one, np.maximum(zero, x * alpha + beta))
    )


@kernel(nn.HardSwishOp)
def hardswish(op: nn.HardSwishOp, ctx: Context) -> Fn:
    return _float_fn(repr_of(op.result), _torch_unary(torch.nn.functional.hardswish))


@kernel(nn.LogSoftmaxOp)
def log_softmax(op: nn.LogSoftmaxOp, ctx: Context) -> Fn:
    axis = op.get("axis")

    def compute(x: np.ndarray) -> np.ndarray:
        shifted = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    return _float_fn(repr_of(op.result), compute)


@kernel(nn.ReduceMeanOp, nn.ReduceSumOp, nn.ReduceMaxOp)
def reduce(op: nn.ReduceOp, ctx: Context) -> Fn:
    axes, keep = tuple(op.reduced_axes()), bool(op.get("keepdims"))
    rep = repr_of(op.result)
    if isinstance(op, nn.ReduceMaxOp):
        return lambda x: (np.max(x, axis=axes, keepdims=keep),)
    # Float reductions in float64, rounded once (like the other non-MAC reductions).
    method = np.mean if isinstance(op, nn.ReduceMeanOp) else np.sum
    rnd = float_rounder(rep)
    return lambda x: (rnd(method(x, axis=axes, keepdims=keep, dtype=np.float64)),)


@kernel(nn.GatherOp)
def gather(op: nn.GatherOp, ctx: Context) -> Fn:
    axis = shapes.normalize_axis(op.get("axis"), len(op.shape_of(op.data)))

    def run(data: np.ndarray, indices: np.ndarray) -> Arrays:
        size = data.shape[axis]
        idx = _i64(indices)
        if idx.size and (idx.min() < -size or idx.max() >= size):
            raise InputError(
                f"gather index out of range [{-size}, {size - 1}] on axis {axis}: "
                f"{idx.min()}..{idx.max()}"
            )
        return (np.take(data, idx, axis=axis),)

    return run


@kernel(nn.ExpandOp)
def expand(op: nn.ExpandOp, ctx: Context) -> Fn:
    target = op.get("shape")

    def run(x: np.ndarray) -> Arrays:
        # -1 (dynamic) entries take the input's size, i.e. broadcast as 1.
        known = tuple(1 if d == shapes.DYN else d for d in target)
        return (np.broadcast_to(x, np.broadcast_shapes(x.shape, known)).copy(),)

    return run


@kernel(nn.WhereOp)
def where(op: nn.WhereOp, ctx: Context) -> Fn:
    return lambda c, a, b: (np.where(c.astype(bool), a, b),)


@kernel(nn.CastOp)
def cast(op: nn.CastOp, ctx: Context) -> Fn:
    rnd = float_rounder(repr_of(op.result))
    return lambda x: (rnd(_f32(x)),)


def missing_kernels(op_types: Sequence[type[Operation]]) -> list[str]:
    """Names of the op types without a kernel (used by the tests)."""
    return [t.name for t in op_types if t not in KERNELS]


__all__ = ["F32", "KERNELS", "Context", "Fn", "kernel", "missing_kernels"]
