"""Hypothesis strategies for random ircomp programs.

Strategies draw *plain graph specs* (small frozen dataclasses of ints, strings and tuples), never
xDSL objects, so a falsifying example prints as a short readable spec. `build_program(spec)`
turns a spec into a verified `Program` (through `GraphBuilder`) plus random inputs, all seeded
from the spec.

A spec is a list of nodes over numbered values: values 0..k-1 are the function inputs, and
each node appends its results (one, or several for `split`). Value types are written as text:
`f32`, `f16`, `bf16`, `i8`, `ui8`, `i32`, `fixp<w,f>`.

Families:
- `float_graphs()`: chains and DAGs of linear/conv2d/relu/clip/add/concat/reshape/flatten/
  maxpool/avgpool/batchnorm/transpose/split in f32/f16/bf16, with duplicated nodes (CSE), dead
  branches (DCE), weight-only subgraphs (constant folding) and conv/linear -> batchnorm (folding).
- `quant_graphs()`: quantize -> int8 linear/conv2d with zero points and int32 bias ->
  requantize (onnx or integer mode) -> relu/clip/maxpool on codes -> ... -> dequantize.
- `fixp_graphs()`: quantize to fixp -> fixp linear -> fixp add with fraction alignment ->
  requantize -> relu -> dequantize (or raw fixp outputs).
- `graph_specs()`: any of the above.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
    StringAttr,
    TensorType,
)
from xdsl.dialects.func import FuncOp
from xdsl.ir import Attribute, SSAValue
from xdsl.rewriter import Rewriter

from ircomp.dialects import nn
from ircomp.dialects.base import NNOperation
from ircomp.dialects.num import FixPType
from ircomp.ir import shapes
from ircomp.ir.builder import GraphBuilder, accumulator_type
from ircomp.ir.program import Program
from ircomp.numerics import Float

Shape = tuple[int, ...]
FLOAT_TYPES = ("f32", "f16", "bf16")
MAX_ELEMENTS = 256


# ---- the spec --------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One op: `op` names a builder recipe, `args` are value indices, `attrs` its parameters."""

    op: str
    args: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)

    def __repr__(self) -> str:
        parts = [", ".join(f"v{a}" for a in self.args)] if self.args else []
        parts += [f"{k}={v!r}" for k, v in self.attrs]
        return f"{self.op}({'; '.join(parts)})"


@dataclass(frozen=True)
class GraphSpec:
    family: str
    inputs: tuple[tuple[Shape, str], ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    seed: int

    def __repr__(self) -> str:
        ins = ", ".join(f"{t}{list(s)}" for s, t in self.inputs)
        body = ", ".join(map(repr, self.nodes))
        return (
            f"GraphSpec({self.family}; in=[{ins}]; nodes=[{body}]; out={list(self.outputs)}; "
            f"seed={self.seed})"
        )

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]


# ---- drawing helpers -----------------------------------------------------------------------


@dataclass
class _Val:
    shape: Shape
    type: str
    const: bool  # computed from weights only


class _Graph:
    """The spec under construction and what is known about each value."""

    def __init__(self, draw: Any, family: str) -> None:
        self.draw = draw
        self.family = family
        self.values: list[_Val] = []
        self.inputs: list[tuple[Shape, str]] = []
        self.nodes: list[Node] = []
        self.wseed = 0

    def add_input(self, shape: Shape, vtype: str) -> int:
        self.inputs.append((shape, vtype))
        self.values.append(_Val(shape, vtype, False))
        return len(self.values) - 1

    def next_wseed(self) -> int:
        self.wseed += 1
        return self.wseed

    def emit(self, op: str, args: Sequence[int], results: Sequence[tuple[Shape, str]], **attrs):
        const = bool(args) and all(self.values[a].const for a in args)
        if op == "const":
            const = True
        self.nodes.append(Node(op, tuple(args), tuple(attrs.items())))
        for shape, vtype in results:
            self.values.append(_Val(tuple(shape), vtype, const))
        return len(self.values) - 1

    def pick(self, ok: Any = lambda v: True) -> int | None:
        """A value index satisfying `ok`, preferring recent values (shrinks towards chains)."""
        candidates = [i for i, v in enumerate(self.values) if ok(v)]
        if not candidates:
            return None
        back = self.draw(st.integers(0, len(candidates) - 1))
        return candidates[len(candidates) - 1 - back]


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _draw_window(
    draw: Any, hw: tuple[int, int], pool: bool
) -> tuple[list[int], list[int], list[int], list[int]] | None:
    kh = draw(st.integers(1, min(3, hw[0])))
    kw = draw(st.integers(1, min(3, hw[1])))
    strides = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pad = [draw(st.integers(0, k // 2)) for k in (kh, kw, kh, kw)]
    dil = [1, 1] if pool else [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    if dil[0] * (kh - 1) + 1 > hw[0] + pad[0] + pad[2]:
        dil[0] = 1
    if dil[1] * (kw - 1) + 1 > hw[1] + pad[1] + pad[3]:
        dil[1] = 1
    return [kh, kw], strides, pad, dil


def _try_shape(rule: Any, *args: Any) -> Any:
    try:
        return rule(*args)
    except shapes.ShapeError:
        return None


# ---- float graphs ----------------------------------------------------------------------------

FLOAT_OPS = (
    "linear",
    "conv2d",
    "relu",
    "clip",
    "add",
    "concat",
    "reshape",
    "flatten",
    "maxpool",
    "avgpool",
    "batchnorm",
    "transpose",
    "split",
    "const",
    "dup",
)


def _float_step(g: _Graph, op: str, fmt: str) -> bool:
    """Try to append one `op` node; False if no value suits it."""
    draw = g.draw

    def is_float(v: _Val) -> bool:
        return v.type == fmt

    if op == "dup":
        return _dup(g)
    if op == "const":
        src = g.pick(is_float)
        if src is None:
            return False
        shape = g.values[src].shape
        if draw(st.booleans()) and len(shape) >= 1:
            shape = shape[-1:]
        g.emit("const", [], [(shape, fmt)], shape=tuple(shape), wseed=g.next_wseed())
        return True
    if op == "linear":
        x = g.pick(lambda v: is_float(v) and len(v.shape) in (2, 3))
        if x is None:
            return False
        out = draw(st.integers(1, 6))
        shape = (*g.values[x].shape[:-1], out)
        if _numel(shape) > MAX_ELEMENTS:
            return False
        g.emit(
            "linear", [x], [(shape, fmt)], out=out, bias=draw(st.booleans()), wseed=g.next_wseed()
        )
        return True
    if op == "conv2d":
        x = g.pick(lambda v: is_float(v) and len(v.shape) == 4)
        if x is None:
            return False
        n, c, h, w = g.values[x].shape
        groups = draw(st.sampled_from([d for d in (1, 2, 3) if c % d == 0]))
        out = groups * draw(st.integers(1, max(1, 4 // groups)))
        kernel, strides, pad, dil = _draw_window(draw, (h, w), pool=False)
        shape = _try_shape(
            shapes.conv2d,
            (n, c, h, w),
            (out, c // groups, *kernel),
            None,
            strides,
            pad,
            dil,
            groups,
        )
        if shape is None or min(shape) < 1 or _numel(shape) > MAX_ELEMENTS:
            return False
        g.emit(
            "conv2d",
            [x],
            [(shape, fmt)],
            out=out,
            kernel=tuple(kernel),
            strides=tuple(strides),
            padding=tuple(pad),
            dilations=tuple(dil),
            groups=groups,
            bias=draw(st.booleans()),
            wseed=g.next_wseed(),
        )
        return True
    if op in ("relu", "clip"):
        x = g.pick(is_float)
        if x is None:
            return False
        attrs: dict[str, Any] = {}
        if op == "clip":
            lo = draw(st.sampled_from([-1.0, -0.5, 0.0]))
            attrs = {"min": lo, "max": lo + draw(st.sampled_from([0.25, 1.0, 2.0]))}
        g.emit(op, [x], [(g.values[x].shape, fmt)], **attrs)
        return True
    if op == "batchnorm":
        x = g.pick(lambda v: is_float(v) and len(v.shape) >= 2)
        if x is None:
            return False
        g.emit(
            "batchnorm",
            [x],
            [(g.values[x].shape, fmt)],
            wseed=g.next_wseed(),
            epsilon=draw(st.sampled_from([1e-5, 1e-3])),
        )
        return True
    if op == "add":
        x = g.pick(is_float)
        if x is None:
            return False
        shape = g.values[x].shape
        y = g.pick(lambda v: is_float(v) and v.shape in (shape, shape[-1:]))
        assert y is not None  # x itself qualifies
        if draw(st.booleans()):
            g.emit("add", [x, y], [(shape, fmt)])
        else:
            g.emit("add", [y, x], [(shapes.broadcast(g.values[y].shape, shape), fmt)])
        return True
    if op == "concat":
        x = g.pick(is_float)
        if x is None:
            return False
        shape = g.values[x].shape
        y = g.pick(lambda v: is_float(v) and v.shape == shape)
        assert y is not None
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        out = shapes.concat([shape, shape], axis)
        if _numel(out) > MAX_ELEMENTS:
            return False
        g.emit("concat", [x, y], [(out, fmt)], axis=axis)
        return True
    if op == "reshape":
        x = g.pick(lambda v: is_float(v) and len(v.shape) >= 1)
        if x is None:
            return False
        shape = g.values[x].shape
        rest = _numel(shape[1:]) if len(shape) > 1 else 1
        first = shape[0] if len(shape) > 1 else _numel(shape)
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        choice = draw(st.integers(0, 2))
        if choice == 0:
            target: tuple[int, ...] = (first, -1)
        elif choice == 1:
            d = draw(st.sampled_from(divisors))
            target = (first, rest // d, d)
        else:
            target = (-1,)
        out = shapes.reshape(shape, target)
        g.emit("reshape", [x], [(out, fmt)], shape=target)
        return True
    if op == "flatten":
        x = g.pick(lambda v: is_float(v) and len(v.shape) >= 2)
        if x is None:
            return False
        axis = draw(st.integers(0, len(g.values[x].shape)))
        g.emit("flatten", [x], [(shapes.flatten(g.values[x].shape, axis), fmt)], axis=axis)
        return True
    if op in ("maxpool", "avgpool"):
        x = g.pick(lambda v: is_float(v) and len(v.shape) == 4)
        if x is None:
            return False
        return _pool_step(g, op, x, fmt)
    if op == "transpose":
        x = g.pick(lambda v: is_float(v) and len(v.shape) >= 2)
        if x is None:
            return False
        rank = len(g.values[x].shape)
        perm = tuple(draw(st.permutations(list(range(rank)))))
        g.emit("transpose", [x], [(shapes.transpose(g.values[x].shape, perm), fmt)], perm=perm)
        return True
    if op == "split":
        x = g.pick(lambda v: is_float(v) and max(v.shape, default=0) >= 2)
        if x is None:
            return False
        shape = g.values[x].shape
        axis = draw(st.sampled_from([i for i, d in enumerate(shape) if d >= 2]))
        cut = draw(st.integers(1, shape[axis] - 1))
        sizes = (cut, shape[axis] - cut)
        outs = shapes.split(shape, axis, sizes)
        g.emit("split", [x], [(s, fmt) for s in outs], axis=axis, sizes=sizes)
        return True
    raise AssertionError(op)


def _pool_step(g: _Graph, op: str, x: int, vtype: str) -> bool:
    draw = g.draw
    n, c, h, w = g.values[x].shape
    kernel, strides, pad, _ = _draw_window(draw, (h, w), pool=True)
    ceil = draw(st.booleans())
    shape = _try_shape(shapes.pool2d, (n, c, h, w), kernel, strides, pad, [1, 1], ceil)
    if shape is None or min(shape) < 1:
        return False
    attrs: dict[str, Any] = {
        "kernel": tuple(kernel),
        "strides": tuple(strides),
        "padding": tuple(pad),
        "ceil_mode": ceil,
    }
    if op == "avgpool":
        attrs["count_include_pad"] = draw(st.booleans())
    g.emit(op, [x], [(shape, vtype)], **attrs)
    return True


def _result_count(node: Node) -> int:
    return len(node.attr("sizes")) if node.op == "split" else 1


def _dup(g: _Graph) -> bool:
    """Repeat an earlier single-result node with the same operands and weights (for CSE)."""
    candidates = [i for i, n in enumerate(g.nodes) if _result_count(n) == 1]
    if not candidates:
        return False
    back = g.draw(st.integers(0, len(candidates) - 1))
    index = candidates[len(candidates) - 1 - back]
    node = g.nodes[index]
    first = len(g.inputs) + sum(_result_count(n) for n in g.nodes[:index])
    g.emit(node.op, node.args, [(g.values[first].shape, g.values[first].type)], **dict(node.attrs))
    return True


def _weight_subgraph(g: _Graph, x: int, fmt: str) -> None:
    """A computation on weights only (constant folding), added into value `x`."""
    draw = g.draw
    shape = g.values[x].shape
    target = shape if draw(st.booleans()) else shape[-1:]
    if len(target) >= 2 and draw(st.booleans()):  # built transposed, transposed back
        perm = tuple(reversed(range(len(target))))
        flipped = shapes.transpose(target, perm)
        c = g.emit("const", [], [(flipped, fmt)], shape=flipped, wseed=g.next_wseed())
        c = g.emit("transpose", [c], [(target, fmt)], perm=perm)
    else:
        c = g.emit("const", [], [(target, fmt)], shape=tuple(target), wseed=g.next_wseed())
    for _ in range(draw(st.integers(0, 2))):
        step = draw(st.sampled_from(["relu", "clip", "add"]))
        if step == "relu":
            c = g.emit("relu", [c], [(target, fmt)])
        elif step == "clip":
            c = g.emit("clip", [c], [(target, fmt)], min=-0.5, max=0.5)
        else:
            d = g.emit("const", [], [(target, fmt)], shape=tuple(target), wseed=g.next_wseed())
            c = g.emit("add", [c, d], [(target, fmt)])
    g.emit("add", [x, c], [(shape, fmt)])


def _outputs(g: _Graph) -> tuple[int, ...]:
    """The last value, plus a few others (the rest of the graph is dead)."""
    last = len(g.values) - 1
    others = [i for i in range(len(g.inputs), last)]
    extra = g.draw(st.lists(st.sampled_from(others), max_size=2, unique=True)) if others else []
    return (last, *sorted(extra))


@st.composite
def float_graphs(
    draw: Any,
    formats: Sequence[str] = FLOAT_TYPES,
    ops: Sequence[str] = FLOAT_OPS,
    max_nodes: int = 8,
) -> GraphSpec:
    fmt = draw(st.sampled_from(list(formats)))
    g = _Graph(draw, "float")
    n = draw(st.integers(1, 2))
    if draw(st.booleans()):
        shape: Shape = (
            n,
            draw(st.integers(1, 3)),
            draw(st.integers(1, 5)),
            draw(st.integers(1, 5)),
        )
    else:
        shape = (n, draw(st.integers(1, 6)))
    g.add_input(shape, fmt)
    if draw(st.booleans()):
        g.add_input(shape, fmt)
    count = draw(st.integers(1, max_nodes))
    attempts = 0
    while len(g.nodes) < count and attempts < 4 * max_nodes:
        attempts += 1
        op = draw(st.sampled_from(list(ops)))
        if not _float_step(g, op, fmt):
            continue
        last = len(g.values) - 1
        if op in ("linear", "conv2d") and "batchnorm" in ops and draw(st.booleans()):
            # conv/linear -> batchnorm, the folding pattern
            g.emit(
                "batchnorm",
                [last],
                [(g.values[last].shape, fmt)],
                wseed=g.next_wseed(),
                epsilon=1e-5,
            )
        elif "const" in ops and draw(st.integers(0, 3)) == 0:
            _weight_subgraph(g, last, fmt)
    if not g.nodes:
        _float_step(g, "relu", fmt)
    seed = draw(st.integers(0, 2**16))
    return GraphSpec("float", tuple(g.inputs), tuple(g.nodes), _outputs(g), seed)


# ---- quantized (integer) chains -----------------------------------------------------------------


def _scale(draw: Any, lo_exp: int, hi_exp: int) -> float:
    mant = draw(st.sampled_from([1.0, 1.25, 1.5, 1.75]))
    return mant * 2.0 ** draw(st.integers(lo_exp, hi_exp))


@st.composite
def quant_graphs(draw: Any, max_layers: int = 3) -> GraphSpec:
    g = _Graph(draw, "quant")
    n = draw(st.integers(1, 2))
    conv = draw(st.booleans())
    if conv:
        shape: Shape = (
            n,
            draw(st.integers(1, 3)),
            draw(st.integers(2, 5)),
            draw(st.integers(2, 5)),
        )
    else:
        shape = (n, draw(st.integers(1, 8)))
    x = g.add_input(shape, "f32")
    code = draw(st.sampled_from(["i8", "ui8"]))
    zp = draw(st.integers(-5, 5)) if code == "i8" else draw(st.integers(0, 10))
    x = g.emit("quantize", [x], [(shape, code)], to=code, scale=_scale(draw, -5, -2), zp=zp)
    for _ in range(draw(st.integers(1, max_layers))):
        cur = g.values[x]
        if len(cur.shape) == 4 and draw(st.booleans()):
            n, c, h, w = cur.shape
            out = draw(st.integers(1, 3))
            kernel, strides, pad, dil = _draw_window(draw, (h, w), pool=False)
            oshape = _try_shape(
                shapes.conv2d, cur.shape, (out, c, *kernel), None, strides, pad, dil, 1
            )
            if oshape is None or min(oshape) < 1:
                oshape = shapes.conv2d(cur.shape, (out, c, 1, 1), None, [1, 1], [0] * 4, [1, 1], 1)
                kernel, strides, pad, dil = [1, 1], [1, 1], [0] * 4, [1, 1]
            acc = g.emit(
                "qconv2d",
                [x],
                [(oshape, "i32")],
                out=out,
                kernel=tuple(kernel),
                strides=tuple(strides),
                padding=tuple(pad),
                dilations=tuple(dil),
                bias=draw(st.booleans()),
                in_zp=zp,
                w_zp=draw(st.integers(-3, 3)),
                wseed=g.next_wseed(),
                from_float=draw(st.booleans()),
            )
        else:
            if len(cur.shape) != 2:
                x = g.emit("flatten", [x], [(shapes.flatten(cur.shape, 1), cur.type)], axis=1)
                cur = g.values[x]
            out = draw(st.integers(1, 6))
            acc = g.emit(
                "qlinear",
                [x],
                [((cur.shape[0], out), "i32")],
                out=out,
                bias=draw(st.booleans()),
                in_zp=zp,
                w_zp=draw(st.integers(-3, 3)),
                wseed=g.next_wseed(),
                from_float=draw(st.booleans()),
            )
        code = draw(st.sampled_from(["i8", "ui8"]))
        zp = draw(st.integers(-5, 5)) if code == "i8" else draw(st.integers(0, 10))
        clamp: tuple[int, ...] = ()
        if draw(st.booleans()):
            lo = draw(st.integers(-128, 0)) if code == "i8" else draw(st.integers(0, 50))
            clamp = (lo, lo + draw(st.integers(0, 127)))
        x = g.emit(
            "requantize",
            [acc],
            [(g.values[acc].shape, code)],
            to=code,
            mode=draw(st.sampled_from(["onnx", "integer"])),
            scale=_scale(draw, -12, -6),
            zp=zp,
            clamp=clamp,
        )
        post = draw(st.sampled_from(["none", "relu", "clip", "maxpool", "avgpool"]))
        cur = g.values[x]
        if post == "relu":
            x = g.emit("relu", [x], [(cur.shape, cur.type)])
        elif post == "clip":
            lo = float(draw(st.integers(-20, 20)))
            x = g.emit(
                "clip", [x], [(cur.shape, cur.type)], min=lo, max=lo + draw(st.integers(0, 60))
            )
        elif post in ("maxpool", "avgpool") and len(cur.shape) == 4:
            before = len(g.nodes)
            if _pool_step(g, post, x, cur.type) and len(g.nodes) > before:
                x = len(g.values) - 1
    if draw(st.booleans()):
        cur = g.values[x]
        x = g.emit("dequantize", [x], [(cur.shape, "f32")], scale=_scale(draw, -6, -2), zp=zp)
    outputs = _outputs(g)
    if draw(st.booleans()) and _dup(g):  # a duplicated node, also returned (CSE)
        outputs = (*outputs, len(g.values) - 1)
    seed = draw(st.integers(0, 2**16))
    return GraphSpec("quant", tuple(g.inputs), tuple(g.nodes), outputs, seed)


# ---- fixed-point chains -----------------------------------------------------------------------


def _fixp(w: int, f: int) -> str:
    return f"fixp<{w},{f}>"


@st.composite
def fixp_graphs(draw: Any, max_layers: int = 2) -> GraphSpec:
    g = _Graph(draw, "fixp")
    n = draw(st.integers(1, 2))
    features = draw(st.integers(1, 6))
    x = g.add_input((n, features), "f32")
    fx = draw(st.integers(2, 6))
    x = g.emit("quantize", [x], [((n, features), _fixp(8, fx))], to=_fixp(8, fx), scale=1.0, zp=0)
    for _ in range(draw(st.integers(1, max_layers))):
        out = draw(st.integers(1, 6))
        fw = draw(st.integers(1, 6))
        acc_frac = fx + fw
        acc = g.emit(
            "fixp_linear",
            [x],
            [((n, out), _fixp(32, acc_frac))],
            out=out,
            wtype=_fixp(8, fw),
            bias=draw(st.booleans()),
            wseed=g.next_wseed(),
        )
        fb = draw(st.integers(0, 10))
        frac = max(acc_frac, fb)
        if draw(st.booleans()):  # add a fixp vector with another fraction: alignment
            acc = g.emit(
                "fixp_add",
                [acc],
                [((n, out), _fixp(32, frac))],
                wtype=_fixp(8, fb),
                wseed=g.next_wseed(),
                result=_fixp(32, frac),
            )
        else:
            frac = acc_frac
        if draw(st.booleans()):  # add two activations of different fractions
            other = g.emit(
                "requantize",
                [acc],
                [((n, out), _fixp(16, frac - 1))],
                to=_fixp(16, frac - 1),
                mode="onnx",
                scale=0.5,
                zp=0,
                clamp=(),
            )
            acc = g.emit("add", [acc, other], [((n, out), _fixp(32, frac))], result=_fixp(32, frac))
        fx = draw(st.integers(2, 6))
        x = g.emit(
            "requantize",
            [acc],
            [((n, out), _fixp(8, fx))],
            to=_fixp(8, fx),
            mode=draw(st.sampled_from(["onnx", "integer"])),
            scale=2.0 ** (fx - frac) * draw(st.sampled_from([1.0, 0.75, 1.5])),
            zp=0,
            clamp=(),
        )
        if draw(st.booleans()):
            x = g.emit("relu", [x], [((n, out), _fixp(8, fx))])
    if draw(st.booleans()):
        x = g.emit("dequantize", [x], [(g.values[x].shape, "f32")], scale=1.0, zp=0)
    outputs = _outputs(g)
    if draw(st.booleans()) and _dup(g):  # a duplicated node, also returned (CSE)
        outputs = (*outputs, len(g.values) - 1)
    seed = draw(st.integers(0, 2**16))
    return GraphSpec("fixp", tuple(g.inputs), tuple(g.nodes), outputs, seed)


def graph_specs(max_nodes: int = 8) -> st.SearchStrategy[GraphSpec]:
    """Any family; float graphs (the richest) are drawn about half of the time."""
    floats = float_graphs(max_nodes=max_nodes)
    return st.one_of(floats, floats, quant_graphs(), fixp_graphs())


# ---- building ------------------------------------------------------------------------------------

_FIXP = re.compile(r"fixp<(\d+),(-?\d+)>")


def ir_type(text: str) -> Attribute:
    match text:
        case "f32":
            return Float32Type()
        case "f16":
            return Float16Type()
        case "bf16":
            return BFloat16Type()
        case "i8":
            return IntegerType(8)
        case "ui8":
            return IntegerType(8, Signedness.UNSIGNED)
        case "i32":
            return IntegerType(32)
    m = _FIXP.fullmatch(text)
    assert m, text
    return FixPType(int(m.group(1)), int(m.group(2)))


def float_storage(values: np.ndarray, vtype: str) -> np.ndarray:
    """Real values -> how a weight of float format `vtype` is stored (bf16: bit patterns)."""
    fmt = Float(vtype)  # type: ignore[arg-type]
    if vtype == "bf16":
        return fmt.encode(values).astype(np.uint16)
    return fmt.quantize(values).astype(fmt.storage_dtype)


class _Builder:
    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self.b = GraphBuilder("main")
        self.values: list[SSAValue] = []

    def rng(self, node: Node) -> np.random.Generator:
        return np.random.default_rng([self.spec.seed, node.attr("wseed", 0)])

    def fweight(self, name: str, values: np.ndarray, vtype: str) -> SSAValue:
        return self.b.weight(name, float_storage(values, vtype), ir_type(vtype))

    def build(self) -> Program:
        for shape, vtype in self.spec.inputs:
            self.values.append(self.b.input(shape, ir_type(vtype)))
        for index, node in enumerate(self.spec.nodes):
            results = self.node(index, node)
            owner = results[0].owner
            if self.spec.seed % 2 and not isinstance(owner, nn.WeightOp):
                # Half of the specs carry source-layer names (the discardable `name` attribute).
                owner.attributes[nn.NAME_ATTR] = StringAttr(f"layer{index}")
            self.values.extend(results)
        return self.b.finish([self.values[i] for i in self.spec.outputs])

    def node(self, index: int, node: Node) -> list[SSAValue]:
        b, a = self.b, node.attr
        args = [self.values[i] for i in node.args]
        name = f"n{index}"
        vtype = str(args[0].type.element_type) if args else None  # type: ignore[union-attr]
        ftype = {"f32": "f32", "f16": "f16", "bf16": "bf16"}.get(vtype or "", "f32")
        rng = self.rng(node)
        match node.op:
            case "const":
                ctype = self._const_type()
                return [self.fweight(name, rng.normal(size=a("shape")), ctype)]
            case "linear":
                fin = args[0].type.get_shape()[-1]  # type: ignore[union-attr]
                ops = [
                    args[0],
                    self.fweight(f"{name}.weight", rng.normal(size=(a("out"), fin)) * 0.5, ftype),
                ]
                if a("bias"):
                    ops.append(self.fweight(f"{name}.bias", rng.normal(size=a("out")), ftype))
                return [b.op(nn.LinearOp, ops)]
            case "conv2d":
                c = args[0].type.get_shape()[1]  # type: ignore[union-attr]
                wshape = (a("out"), c // a("groups"), *a("kernel"))
                ops = [
                    args[0],
                    self.fweight(f"{name}.weight", rng.normal(size=wshape) * 0.5, ftype),
                ]
                if a("bias"):
                    ops.append(self.fweight(f"{name}.bias", rng.normal(size=a("out")), ftype))
                return [
                    b.op(
                        nn.Conv2dOp,
                        ops,
                        strides=list(a("strides")),
                        padding=list(a("padding")),
                        dilations=list(a("dilations")),
                        groups=a("groups"),
                    )
                ]
            case "relu":
                return [b.op(nn.ReluOp, args)]
            case "clip":
                return [b.op(nn.ClipOp, args, min=float(a("min")), max=float(a("max")))]
            case "batchnorm":
                ch = args[0].type.get_shape()[1]  # type: ignore[union-attr]
                params = [
                    self.fweight(f"{name}.scale", rng.normal(size=ch), ftype),
                    self.fweight(f"{name}.bias", rng.normal(size=ch), ftype),
                    self.fweight(f"{name}.mean", rng.normal(size=ch), ftype),
                    self.fweight(f"{name}.var", rng.uniform(0.5, 2.0, size=ch), ftype),
                ]
                return [b.op(nn.BatchNormOp, [args[0], *params], epsilon=a("epsilon"))]
            case "add":
                return [b.op(nn.AddOp, args, ir_type(a("result")) if a("result") else None)]
            case "concat":
                return [b.op(nn.ConcatOp, args, axis=a("axis"))]
            case "reshape":
                return [b.op(nn.ReshapeOp, args, shape=list(a("shape")))]
            case "flatten":
                return [b.op(nn.FlattenOp, args, axis=a("axis"))]
            case "transpose":
                return [b.op(nn.TransposeOp, args, perm=list(a("perm")))]
            case "split":
                return b.op_multi(nn.SplitOp, args, axis=a("axis"), sizes=list(a("sizes")))
            case "maxpool" | "avgpool":
                props: dict[str, Any] = dict(
                    kernel=list(a("kernel")),
                    strides=list(a("strides")),
                    padding=list(a("padding")),
                    ceil_mode=a("ceil_mode"),
                )
                if node.op == "avgpool":
                    props["count_include_pad"] = a("count_include_pad")
                    return [b.op(nn.AvgPool2dOp, args, **props)]
                return [b.op(nn.MaxPool2dOp, args, **props)]
            case "quantize":
                return [
                    b.op(
                        nn.QuantizeOp,
                        args,
                        ir_type(a("to")),
                        scale=[a("scale")],
                        zero_point=[a("zp")],
                    )
                ]
            case "dequantize":
                return [
                    b.op(
                        nn.DequantizeOp,
                        args,
                        Float32Type(),
                        scale=[a("scale")],
                        zero_point=[a("zp")],
                    )
                ]
            case "requantize":
                return [
                    b.op(
                        nn.RequantizeOp,
                        args,
                        ir_type(a("to")),
                        scale=[a("scale")],
                        zero_point=[a("zp")],
                        mode=a("mode"),
                        clamp=list(a("clamp")),
                    )
                ]
            case "qlinear" | "qconv2d":
                shape = args[0].type.get_shape()  # type: ignore[union-attr]
                if node.op == "qlinear":
                    wshape: tuple[int, ...] = (a("out"), shape[-1])
                else:
                    wshape = (a("out"), shape[1], *a("kernel"))
                if a("from_float"):  # a weight-only subgraph: quantize(float weight)
                    real = b.weight(f"{name}.weight_f32", rng.normal(size=wshape) * 0.5)
                    weight = b.op(
                        nn.QuantizeOp,
                        [real],
                        IntegerType(8),
                        scale=[1 / 64],
                        zero_point=[a("w_zp")],
                    )
                else:
                    weight = b.weight(
                        f"{name}.weight", rng.integers(-127, 128, size=wshape), IntegerType(8)
                    )
                ops = [args[0], weight]
                if a("bias"):
                    ops.append(
                        b.weight(
                            f"{name}.bias", rng.integers(-500, 500, size=a("out")), IntegerType(32)
                        )
                    )
                zps = dict(input_zero_point=a("in_zp"), weight_zero_point=a("w_zp"))
                if node.op == "qlinear":
                    return [b.op(nn.LinearOp, ops, **zps)]
                return [
                    b.op(
                        nn.Conv2dOp,
                        ops,
                        strides=list(a("strides")),
                        padding=list(a("padding")),
                        dilations=list(a("dilations")),
                        **zps,
                    )
                ]
            case "fixp_linear":
                fin = args[0].type.get_shape()[-1]  # type: ignore[union-attr]
                wtype = ir_type(a("wtype"))
                ops = [
                    args[0],
                    b.weight(
                        f"{name}.weight", rng.integers(-128, 128, size=(a("out"), fin)), wtype
                    ),
                ]
                if a("bias"):
                    acc = accumulator_type(args[0].type.element_type, wtype)  # type: ignore
                    ops.append(
                        b.weight(
                            f"{name}.bias", rng.integers(-(1 << 12), 1 << 12, size=a("out")), acc
                        )
                    )
                return [b.op(nn.LinearOp, ops)]
            case "fixp_add":
                out = args[0].type.get_shape()[-1]  # type: ignore[union-attr]
                vec = b.weight(
                    f"{name}.offset", rng.integers(-128, 128, size=out), ir_type(a("wtype"))
                )
                return [b.op(nn.AddOp, [args[0], vec], ir_type(a("result")))]
        raise AssertionError(f"unknown spec op {node.op}")

    def _const_type(self) -> str:
        return self.spec.inputs[0][1]


def make_inputs(spec: GraphSpec) -> list[np.ndarray]:
    """Random inputs for a spec: float32 arrays holding values of the input's float format."""
    rng = np.random.default_rng([spec.seed, 0])
    out = []
    for shape, vtype in spec.inputs:
        values = rng.normal(size=shape) * 2.0
        out.append(Float(vtype).quantize(values).astype(np.float32))  # type: ignore[arg-type]
    return out


def build_program(spec: GraphSpec) -> tuple[Program, list[np.ndarray]]:
    """The verified Program a spec describes, and random inputs for it (seeded by the spec)."""
    return _Builder(spec).build(), make_inputs(spec)


# ---- dynamic dims (for shape inference) -------------------------------------------------------


def with_dynamic_dims(program: Program, seed: int, probability: float = 0.5) -> Program:
    """A copy of `program` whose op results (not inputs, nor values computed from weights
    only) have random dims replaced by `?`, with the function signatures updated; it still
    verifies."""
    rng = np.random.default_rng(seed)
    clone = program.clone()
    constant: set[SSAValue] = set()  # computed from weights only: kept static (as frontends do)
    for op in list(clone.module.walk()):
        if isinstance(op, nn.WeightOp) or (
            isinstance(op, NNOperation) and all(v in constant for v in op.operands)
        ):
            constant.update(op.results)
            continue
        if not isinstance(op, NNOperation):
            continue
        for result in list(op.results):
            rtype = result.type
            assert isinstance(rtype, TensorType)
            dims = [DYNAMIC_INDEX if rng.random() < probability else d for d in rtype.get_shape()]
            if dims != list(rtype.get_shape()):
                Rewriter.replace_value_with_new_type(
                    result, TensorType(rtype.element_type, dims, rtype.encoding)
                )
    for op in clone.module.walk():
        if isinstance(op, FuncOp):
            op.update_function_type()
    clone.verify()
    return clone
