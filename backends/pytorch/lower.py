"""The table from `nn` ops to torch kernels: `lower(op, mode)` gives the kernel call of one op.

A `Call` names a kernel (a function of `runtime`, or of `qat` in train mode) and its keyword
arguments, all plain Python literals, so that `IRModule` can run it and the code generator can
print it. Ops without an entry raise `InputError` naming the op.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.ir import Operation

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.interpreter.values import Repr, repr_of
from ircomp.ir import shapes
from ircomp.numerics import (
    Bit,
    FixP,
    FormatError,
    Int,
    Posit,
    posit_maxpos,
    quantize_multiplier_array,
)
from ircomp.numerics.tflite import SOFTMAX_MAX_LENGTH, add_params, softmax_params

MODES = ("exact", "train")


@dataclass
class Call:
    """One kernel call: `fn` in `runtime` (or `qat` when `train`), keyword arguments `kwargs`."""

    fn: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    train: bool = False


@dataclass(frozen=True)
class Lowering:
    """What a lowering may read: the mode and the gradient factory of fake quantization."""

    mode: str
    # fmt -> (u, q) -> grad_scale, or None for the plain straight-through estimator
    gradient_for: Callable[[Any], Any]

    @property
    def train(self) -> bool:
        return self.mode == "train"


Lower = Callable[[Any, Lowering], Call]
LOWERINGS: dict[type[Operation], Lower] = {}


def lowers(*op_types: type[Operation]) -> Callable[[Lower], Lower]:
    def register(fn: Lower) -> Lower:
        for op_type in op_types:
            LOWERINGS[op_type] = fn
        return fn

    return register


def lower(op: Operation, ctx: Lowering) -> Call:
    fn = LOWERINGS.get(type(op))
    if fn is None:
        raise InputError(f"the pytorch backend has no kernel for '{op.name}'")
    return fn(op, ctx)


def kind_of(rep: Repr) -> str:
    return rep.fmt.kind if rep.is_float else "f32"  # type: ignore[union-attr]


def width_signed(rep: Repr) -> tuple[int, bool]:
    fmt = rep.fmt
    if isinstance(fmt, Bit):
        return 1, False
    assert isinstance(fmt, FixP | Int)
    return fmt.width, fmt.signed


def _f32(value: float) -> float:
    return float(np.float32(value))


# ---- multiply-accumulate --------------------------------------------------------------------


def _mac_codes(op: nn.MacOp, names: tuple[str, str]) -> dict[str, Any]:
    x, w, _ = op.mac_operands()
    rx, rw, ro = repr_of(x), repr_of(w), repr_of(op.results[0])
    kw: dict[str, Any] = {}
    if op.get("input_zero_point"):
        kw[f"{names[0]}_zp"] = op.get("input_zero_point")
    if op.get("weight_zero_point"):
        kw[f"{names[1]}_zp"] = op.get("weight_zero_point")
    if isinstance(rw.fmt, Posit):
        kw[f"{names[1]}_posit"] = [rw.fmt.n, rw.fmt.es]
        kw[f"{names[1]}_frac"] = ro.frac - rx.frac
    return kw


def _mac(
    op: nn.MacOp, ctx: Lowering, float_fn: str, names: tuple[str, str], extra: dict[str, Any]
) -> Call:
    ro = repr_of(op.results[0])
    if ro.is_float:
        return Call(float_fn, {**extra, "kind": kind_of(ro)})
    kw = {**extra, **_mac_codes(op, names)}
    if ctx.train:
        return Call(f"t_q{float_fn}", kw, train=True)
    width, signed = width_signed(ro)
    return Call(f"q{float_fn}", {**kw, "width": width, "signed": signed})


@lowers(nn.LinearOp)
def _linear(op: nn.LinearOp, ctx: Lowering) -> Call:
    return _mac(op, ctx, "linear", ("x", "w"), {})


@lowers(nn.MatMulOp)
def _matmul(op: nn.MatMulOp, ctx: Lowering) -> Call:
    return _mac(op, ctx, "matmul", ("a", "b"), {})


@lowers(nn.Conv2dOp)
def _conv2d(op: nn.Conv2dOp, ctx: Lowering) -> Call:
    window = {
        "strides": op.get("strides"),
        "padding": op.get("padding"),
        "dilations": op.get("dilations"),
        "groups": op.get("groups"),
    }
    return _mac(op, ctx, "conv2d", ("x", "w"), window)


# ---- normalization and float elementwise ----------------------------------------------------


def _kind(op: Operation) -> dict[str, Any]:
    return {"kind": kind_of(repr_of(op.results[0]))}


@lowers(nn.BatchNormOp)
def _batchnorm(op: nn.BatchNormOp, ctx: Lowering) -> Call:
    return Call("batchnorm", {"epsilon": op.get("epsilon"), **_kind(op)})


@lowers(nn.LayerNormOp)
def _layernorm(op: nn.LayerNormOp, ctx: Lowering) -> Call:
    return Call("layernorm", {"axis": op.get("axis"), "epsilon": op.get("epsilon"), **_kind(op)})


_BINARY = {nn.AddOp: "add", nn.SubOp: "sub", nn.MulOp: "mul", nn.DivOp: "div"}


@lowers(*_BINARY)
def _binary(op: nn.BinaryOp, ctx: Lowering) -> Call:
    name = _BINARY[type(op)]
    ra, rb, ro = repr_of(op.lhs), repr_of(op.rhs), repr_of(op.result)
    if ro.is_float:
        return Call(name, _kind(op))
    if isinstance(op, nn.MulOp):
        shifts = {"shift_a": ro.frac - ra.frac - rb.frac, "shift_b": 0}
    else:
        shifts = {"shift_a": ro.frac - ra.frac, "shift_b": ro.frac - rb.frac}
    if ctx.train:
        return Call("t_qbinary", {"op": name, **shifts}, train=True)
    width, signed = width_signed(ro)
    return Call(f"q{name}", {**shifts, "width": width, "signed": signed})


@lowers(nn.ReluOp)
def _relu(op: nn.ReluOp, ctx: Lowering) -> Call:
    return Call("relu")


def _float_clip(op: Operation, lo: float, hi: float) -> Call:
    return Call("clip", {"min": _f32(lo), "max": _f32(hi), **_kind(op)})


@lowers(nn.ClipOp)
def _clip(op: nn.ClipOp, ctx: Lowering) -> Call:
    rep = repr_of(op.result)
    lo, hi = op.get("min"), op.get("max")
    if rep.is_float:
        return _float_clip(op, lo, hi)
    code_lo, code_hi = rep.code_range()
    lo_code = min(max(math.ceil(lo), code_lo), code_hi)
    hi_code = max(min(math.floor(hi), code_hi), code_lo)
    return Call("clip", {"min": lo_code, "max": hi_code})


@lowers(nn.HardTanhOp)
def _hardtanh(op: nn.HardTanhOp, ctx: Lowering) -> Call:
    return _float_clip(op, op.get("min"), op.get("max"))


_SIMPLE_FLOAT: dict[type[Operation], str] = {
    nn.SigmoidOp: "sigmoid",
    nn.TanhOp: "tanh",
    nn.PowOp: "pow",
    nn.HardSwishOp: "hardswish",
    nn.CastOp: "cast",
}


@lowers(*_SIMPLE_FLOAT)
def _simple_float(op: Operation, ctx: Lowering) -> Call:
    return Call(_SIMPLE_FLOAT[type(op)], _kind(op))


_UNARY = {
    nn.SqrtOp: "sqrt",
    nn.ReciprocalOp: "reciprocal",
    nn.ExpOp: "exp",
    nn.LogOp: "log",
    nn.ErfOp: "erf",
    nn.NegOp: "neg",
    nn.AbsOp: "abs",
}


@lowers(*_UNARY)
def _unary(op: Operation, ctx: Lowering) -> Call:
    return Call("unary", {"fn": _UNARY[type(op)], **_kind(op)})


@lowers(nn.GeluOp)
def _gelu(op: nn.GeluOp, ctx: Lowering) -> Call:
    return Call("gelu", {"approximate": op.get("approximate"), **_kind(op)})


@lowers(nn.SoftmaxOp, nn.LogSoftmaxOp)
def _softmax(op: Operation, ctx: Lowering) -> Call:
    name = "softmax" if isinstance(op, nn.SoftmaxOp) else "log_softmax"
    return Call(name, {"axis": op.get("axis"), **_kind(op)})  # type: ignore[attr-defined]


@lowers(nn.LeakyReluOp)
def _leaky_relu(op: nn.LeakyReluOp, ctx: Lowering) -> Call:
    return Call("leaky_relu", {"alpha": _f32(op.get("alpha")), **_kind(op)})


@lowers(nn.HardSigmoidOp)
def _hardsigmoid(op: nn.HardSigmoidOp, ctx: Lowering) -> Call:
    return Call(
        "hardsigmoid", {"alpha": _f32(op.get("alpha")), "beta": _f32(op.get("beta")), **_kind(op)}
    )


@lowers(nn.MaxOp, nn.MinOp)
def _max_min(op: Operation, ctx: Lowering) -> Call:
    return Call("maximum" if isinstance(op, nn.MaxOp) else "minimum")


@lowers(nn.WhereOp)
def _where(op: nn.WhereOp, ctx: Lowering) -> Call:
    return Call("where")


# ---- reductions and pooling -----------------------------------------------------------------


@lowers(nn.ReduceMeanOp, nn.ReduceSumOp, nn.ReduceMaxOp)
def _reduce(op: nn.ReduceOp, ctx: Lowering) -> Call:
    kw = {"axes": op.reduced_axes(), "keepdims": bool(op.get("keepdims"))}
    if isinstance(op, nn.ReduceMaxOp):
        return Call("reduce_max", kw)
    name = "reduce_mean" if isinstance(op, nn.ReduceMeanOp) else "reduce_sum"
    return Call(name, {**kw, **_kind(op)})


@lowers(nn.MaxPool2dOp)
def _maxpool(op: nn.MaxPool2dOp, ctx: Lowering) -> Call:
    return Call(
        "maxpool2d",
        {
            "kernel": op.get("kernel"),
            "strides": op.get("strides"),
            "padding": op.get("padding"),
            "dilations": op.dilations(),
            "ceil_mode": bool(op.get("ceil_mode")),
        },
    )


@lowers(nn.AvgPool2dOp)
def _avgpool(op: nn.AvgPool2dOp, ctx: Lowering) -> Call:
    rep = repr_of(op.result)
    kw = {
        "kernel": op.get("kernel"),
        "strides": op.get("strides"),
        "padding": op.get("padding"),
        "ceil_mode": bool(op.get("ceil_mode")),
        "count_include_pad": bool(op.get("count_include_pad")),
    }
    if ctx.train and not rep.is_float:
        return Call("t_avgpool2d", {**kw, "gradient": ctx.gradient_for(rep.fmt)}, train=True)
    return Call("avgpool2d", {**kw, **_kind(op)} if rep.is_float else kw)


@lowers(nn.GlobalAvgPool2dOp)
def _global_avgpool(op: nn.GlobalAvgPool2dOp, ctx: Lowering) -> Call:
    rep = repr_of(op.result)
    if rep.is_float:
        return Call("global_avgpool2d", _kind(op))
    if ctx.train:
        return Call("t_global_avgpool2d", {"gradient": ctx.gradient_for(rep.fmt)}, train=True)
    return Call("global_avgpool2d")


# ---- shape ops ------------------------------------------------------------------------------


@lowers(nn.ReshapeOp)
def _reshape(op: nn.ReshapeOp, ctx: Lowering) -> Call:
    return Call("reshape", {"shape": op.get("shape")})


@lowers(nn.FlattenOp)
def _flatten(op: nn.FlattenOp, ctx: Lowering) -> Call:
    return Call("flatten", {"axis": op.get("axis")})


@lowers(nn.TransposeOp)
def _transpose(op: nn.TransposeOp, ctx: Lowering) -> Call:
    return Call("transpose", {"perm": op.get("perm")})


@lowers(nn.ConcatOp)
def _concat(op: nn.ConcatOp, ctx: Lowering) -> Call:
    return Call("concat", {"axis": op.get("axis")})


@lowers(nn.SliceOp)
def _slice(op: nn.SliceOp, ctx: Lowering) -> Call:
    return Call(
        "slice_",
        {k: op.get(k) for k in ("starts", "ends", "axes", "steps")},
    )


@lowers(nn.SplitOp)
def _split(op: nn.SplitOp, ctx: Lowering) -> Call:
    return Call("split", {"axis": op.get("axis"), "sizes": op.get("sizes")})


@lowers(nn.ExpandOp)
def _expand(op: nn.ExpandOp, ctx: Lowering) -> Call:
    return Call("expand", {"shape": op.get("shape")})


@lowers(nn.GatherOp)
def _gather(op: nn.GatherOp, ctx: Lowering) -> Call:
    axis = shapes.normalize_axis(op.get("axis"), len(op.shape_of(op.data)))
    return Call("gather", {"axis": axis})


# ---- format casts ---------------------------------------------------------------------------


def _scales(op: nn.ScaledCastOp) -> dict[str, Any]:
    return {
        "scale": [float(s) for s in op.get("scale")],
        "zero_point": [int(z) for z in op.get("zero_point")],
        "axis": op.get("axis"),
    }


@lowers(nn.QuantizeOp)
def _quantize(op: nn.QuantizeOp, ctx: Lowering) -> Call:
    rep = repr_of(op.result)
    sc = _scales(op)
    fmt = rep.fmt
    if isinstance(fmt, Posit):
        kw = {"scale": sc["scale"], "axis": sc["axis"], "n": fmt.n, "es": fmt.es}
        if ctx.train:
            return Call("t_quantize_posit", {**kw, "gradient": ctx.gradient_for(fmt)}, True)
        return Call("quantize_posit", kw)
    lo, hi = rep.code_range()
    if ctx.train:
        kw = {**sc, "frac": rep.frac, "lo": lo, "hi": hi, "gradient": ctx.gradient_for(fmt)}
        return Call("t_quantize_grid", kw, train=True)
    if isinstance(fmt, Int):
        return Call("quantize_int", {**sc, "lo": lo, "hi": hi})
    kw = {"scale": sc["scale"], "axis": sc["axis"], "frac": rep.frac, "lo": lo, "hi": hi}
    return Call("quantize_grid", kw)


@lowers(nn.DequantizeOp)
def _dequantize(op: nn.DequantizeOp, ctx: Lowering) -> Call:
    rep = repr_of(op.input)
    sc = _scales(op)
    kind = kind_of(repr_of(op.result))
    fmt = rep.fmt
    if ctx.train:
        return Call("t_dequantize", {**sc, "frac": rep.frac, "kind": kind}, train=True)
    if isinstance(fmt, Posit):
        kw = {"scale": sc["scale"], "axis": sc["axis"], "n": fmt.n, "es": fmt.es, "kind": kind}
        return Call("dequantize_posit", kw)
    if isinstance(fmt, Int):
        return Call("dequantize_int", {**sc, "kind": kind})
    kw = {"scale": sc["scale"], "axis": sc["axis"], "frac": rep.frac, "kind": kind}
    return Call("dequantize_grid", kw)


@lowers(nn.RequantizeOp)
def _requantize(op: nn.RequantizeOp, ctx: Lowering) -> Call:
    rep = repr_of(op.result)
    sc = _scales(op)
    lo, hi = rep.code_range()
    clamp = op.get("clamp")
    if clamp:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    kw = {**sc, "in_zp": op.get("input_zero_point"), "lo": lo, "hi": hi}
    if ctx.train:
        return Call("t_requantize", {**kw, "gradient": ctx.gradient_for(rep.fmt)}, train=True)
    mode = op.get("mode")
    kw["mode"] = mode
    if mode == "integer":
        multiplier, shift = quantize_multiplier_array(np.asarray(sc["scale"], np.float64))
        kw["multiplier"] = [int(m) for m in multiplier]
        kw["shift"] = [int(s) for s in shift]
    return Call("requantize", kw)


# ---- TFLite integer kernels ----------------------------------------------------------------


def _clamped_range(op: Operation) -> tuple[int, int]:
    lo, hi = repr_of(op.results[0]).code_range()
    clamp = op.get("clamp")  # type: ignore[attr-defined]
    if clamp:  # a fused activation's range, intersected with the output type's range
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    return lo, hi


@lowers(nn.QAddOp)
def _qadd(op: nn.QAddOp, ctx: Lowering) -> Call:
    lo, hi = _clamped_range(op)
    zps = {
        "lhs_zp": op.get("lhs_zero_point"),
        "rhs_zp": op.get("rhs_zero_point"),
        "out_zp": op.get("zero_point"),
    }
    if ctx.train:
        scales = {
            "lhs_scale": _f32(op.get("lhs_scale")),
            "rhs_scale": _f32(op.get("rhs_scale")),
            "out_scale": _f32(op.get("scale")),
        }
        gradient = ctx.gradient_for(repr_of(op.result).fmt)
        return Call("t_tflite_add", {**scales, **zps, "lo": lo, "hi": hi, "gradient": gradient},
                    train=True)  # fmt: skip
    try:
        p = add_params(op.get("lhs_scale"), op.get("rhs_scale"), op.get("scale"))
    except FormatError as err:
        raise InputError(f"{op.name} '{nn.op_name(op)}': {err}") from err
    return Call(
        "tflite_add",
        {
            "left_shift": p.left_shift,
            "lhs_multiplier": p.lhs_multiplier,
            "lhs_shift": p.lhs_shift,
            "rhs_multiplier": p.rhs_multiplier,
            "rhs_shift": p.rhs_shift,
            "out_multiplier": p.out_multiplier,
            "out_shift": p.out_shift,
            **zps,
            "lo": lo,
            "hi": hi,
        },
    )


@lowers(nn.QSoftmaxOp)
def _qsoftmax(op: nn.QSoftmaxOp, ctx: Lowering) -> Call:
    shape = op.shape_of(op.results[0])
    axis = shapes.normalize_axis(op.get("axis"), len(shape))
    if not 1 <= shape[axis] <= SOFTMAX_MAX_LENGTH:
        raise InputError(
            f"{op.name} '{nn.op_name(op)}': softmax length {shape[axis]} along the axis must be "
            f"in 1..{SOFTMAX_MAX_LENGTH}"
        )
    qmin = repr_of(op.results[0]).code_range()[0]
    if ctx.train:
        kw = {"axis": axis, "input_scale": _f32(op.get("input_scale")), "beta": op.get("beta")}
        gradient = ctx.gradient_for(repr_of(op.results[0]).fmt)
        return Call("t_tflite_softmax", {**kw, "qmin": qmin, "gradient": gradient}, train=True)
    try:
        p = softmax_params(op.get("input_scale"), op.get("beta"))
    except FormatError as err:
        raise InputError(f"{op.name} '{nn.op_name(op)}': {err}") from err
    return Call(
        "tflite_softmax",
        {
            "axis": axis,
            "multiplier": p.input_multiplier,
            "left_shift": p.input_left_shift,
            "diff_min": p.diff_min,
            "qmin": qmin,
        },
    )


def clipped_ste(fmt: Any) -> Callable[[Any, Any], Any]:
    """Gradient 1 inside the representable range of `fmt`, 0 outside (saturated inputs)."""
    if isinstance(fmt, Posit):
        limit = posit_maxpos(fmt.n, fmt.es)
        return lambda u, q: (u.abs() <= limit).to(u.dtype)
    # Grid formats: the clamp was active exactly where the rounding moved u by more than 1/2.
    return lambda u, q: ((u - q).abs() <= 0.5).to(u.dtype)
