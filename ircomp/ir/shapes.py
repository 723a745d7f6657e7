"""Shape rules of the `nn` ops, on plain tuples (-1 marks a dynamic dimension).

The verifier, the shape-inference pass, the golden interpreter and the frontends all use these,
so one rule defines each op's shape. Errors are `ShapeError(ValueError)` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

DYN = -1
Shape = tuple[int, ...]


class ShapeError(ValueError):
    pass


def _dim_eq(a: int, b: int) -> bool:
    return a == b or DYN in (a, b)


def broadcast(a: Shape, b: Shape) -> Shape:
    """numpy broadcasting of two shapes."""
    out: list[int] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif DYN in (x, y):
            out.append(x if y == DYN else y)
        else:
            raise ShapeError(f"shapes {a} and {b} do not broadcast (dim -{i}: {x} vs {y})")
    return tuple(reversed(out))


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def linear(x: Shape, w: Shape, bias: Shape | None) -> Shape:
    if len(w) != 2:
        raise ShapeError(f"linear weight must be 2-D [out, in], got {w}")
    if len(x) < 1 or not _dim_eq(x[-1], w[1]):
        raise ShapeError(f"linear input {x} does not end in the weight's in-features {w[1]}")
    if bias is not None and (len(bias) != 1 or not _dim_eq(bias[0], w[0])):
        raise ShapeError(f"linear bias must be [{w[0]}], got {bias}")
    return (*x[:-1], w[0])


def matmul(a: Shape, b: Shape) -> Shape:
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul needs operands of rank >= 2, got {a} and {b}")
    if not _dim_eq(a[-1], b[-2]):
        raise ShapeError(f"matmul inner dimensions differ: {a} @ {b}")
    return (*broadcast(a[:-2], b[:-2]), a[-2], b[-1])


def _window_out(
    size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int, ceil: bool
) -> int:
    if size == DYN:
        return DYN
    span = dilation * (kernel - 1) + 1
    room = size + pads[0] + pads[1] - span
    if room < 0:
        raise ShapeError(f"window {span} is larger than the padded input {size + sum(pads)}")
    out = (room + stride - 1) // stride + 1 if ceil else room // stride + 1
    if ceil and (out - 1) * stride >= size + pads[0]:
        # PyTorch/ONNX: the last window must start inside the input or its leading padding.
        out -= 1
    return out


def window2d(
    x: Shape,
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[int],
    dilations: Sequence[int],
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """Spatial output size of a 2-D window op on NCHW input (padding: top, left, bottom, right)."""
    if len(x) != 4:
        raise ShapeError(f"expected an NCHW input of rank 4, got {x}")
    for name, values, n in (
        ("kernel", kernel, 2),
        ("strides", strides, 2),
        ("padding", padding, 4),
        ("dilations", dilations, 2),
    ):
        if len(values) != n:
            raise ShapeError(f"{name} needs {n} values, got {list(values)}")
    if min(*kernel, *strides, *dilations) < 1 or min(padding) < 0:
        raise ShapeError("kernel, strides and dilations must be >= 1 and padding >= 0")
    pads_h = (padding[0], padding[2])
    pads_w = (padding[1], padding[3])
    h = _window_out(x[2], kernel[0], strides[0], pads_h, dilations[0], ceil_mode)
    w = _window_out(x[3], kernel[1], strides[1], pads_w, dilations[1], ceil_mode)
    return h, w


def conv2d(
    x: Shape,
    w: Shape,
    bias: Shape | None,
    strides: Sequence[int],
    padding: Sequence[int],
    dilations: Sequence[int],
    groups: int,
) -> Shape:
    if len(w) != 4:
        raise ShapeError(f"conv2d weight must be [out, in/groups, kh, kw], got {w}")
    if groups < 1 or w[0] % groups:
        raise ShapeError(f"conv2d out-channels {w[0]} are not divisible by groups={groups}")
    if len(x) == 4 and not _dim_eq(x[1], w[1] * groups):
        raise ShapeError(f"conv2d input has {x[1]} channels, weight expects {w[1]}x{groups}")
    if bias is not None and (len(bias) != 1 or not _dim_eq(bias[0], w[0])):
        raise ShapeError(f"conv2d bias must be [{w[0]}], got {bias}")
    h, wd = window2d(x, w[2:], strides, padding, dilations)
    return (x[0], w[0], h, wd)


def pool2d(
    x: Shape,
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[int],
    dilations: Sequence[int],
    ceil_mode: bool,
) -> Shape:
    h, w = window2d(x, kernel, strides, padding, dilations, ceil_mode)
    return (x[0], x[1], h, w)


def reshape(x: Shape, target: Sequence[int]) -> Shape:
    if any(d < DYN or d == 0 for d in target):
        raise ShapeError(f"reshape target {list(target)} may hold only positive sizes and -1")
    if DYN in x:
        return tuple(target)
    total = 1
    for d in x:
        total *= d
    known = 1
    for d in target:
        if d != DYN:
            known *= d
    holes = list(target).count(DYN)
    if holes > 1:
        raise ShapeError(f"reshape target {list(target)} has more than one -1")
    if holes == 1:
        if total % known:
            raise ShapeError(f"cannot reshape {x} ({total} elements) to {list(target)}")
        return tuple(total // known if d == DYN else d for d in target)
    if known != total:
        raise ShapeError(f"cannot reshape {x} ({total} elements) to {list(target)}")
    return tuple(target)


def flatten(x: Shape, axis: int) -> Shape:
    if not 0 <= axis <= len(x):
        raise ShapeError(f"flatten axis {axis} is out of range for rank {len(x)}")

    def prod(dims: Shape) -> int:
        out = 1
        for d in dims:
            if d == DYN:
                return DYN
            out *= d
        return out

    return (prod(x[:axis]), prod(x[axis:]))


def transpose(x: Shape, perm: Sequence[int]) -> Shape:
    if sorted(perm) != list(range(len(x))):
        raise ShapeError(f"transpose perm {list(perm)} is not a permutation of rank {len(x)}")
    return tuple(x[p] for p in perm)


def concat(inputs: Sequence[Shape], axis: int) -> Shape:
    if not inputs:
        raise ShapeError("concat needs at least one input")
    rank = len(inputs[0])
    ax = normalize_axis(axis, rank)
    total = 0
    for s in inputs:
        if len(s) != rank or not all(_dim_eq(s[i], inputs[0][i]) for i in range(rank) if i != ax):
            raise ShapeError(f"concat inputs {list(inputs)} differ outside axis {axis}")
        total = DYN if DYN in (total, s[ax]) else total + s[ax]
    return (*inputs[0][:ax], total, *inputs[0][ax + 1 :])


def slice_(
    x: Shape, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int], steps: Sequence[int]
) -> Shape:
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("slice starts, ends, axes and steps must have the same length")
    out = list(x)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        ax = normalize_axis(axis, len(x))
        if step == 0:
            raise ShapeError("slice step must not be 0")
        if x[ax] != DYN:
            out[ax] = len(range(*slice(start, end, step).indices(x[ax])))
    return tuple(out)


def split(x: Shape, axis: int, sizes: Sequence[int]) -> list[Shape]:
    ax = normalize_axis(axis, len(x))
    if any(s < 1 for s in sizes):
        raise ShapeError(f"split sizes {list(sizes)} must be positive")
    if x[ax] != DYN and sum(sizes) != x[ax]:
        raise ShapeError(f"split sizes {list(sizes)} do not add up to dim {ax} = {x[ax]}")
    return [(*x[:ax], s, *x[ax + 1 :]) for s in sizes]


def reduce_axes(x: Shape, axes: Sequence[int], keepdims: bool) -> Shape:
    norm = {normalize_axis(a, len(x)) for a in axes}
    if keepdims:
        return tuple(1 if i in norm else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in norm)


def gather(data: Shape, indices: Shape, axis: int) -> Shape:
    """numpy take: data dims before axis, the index dims, data dims after axis."""
    if not data:
        raise ShapeError("gather needs data of rank >= 1")
    ax = normalize_axis(axis, len(data))
    return (*data[:ax], *indices, *data[ax + 1 :])


def expand(x: Shape, target: Sequence[int]) -> Shape:
    """ONNX Expand: numpy broadcasting of the input shape with `target` (-1: dynamic)."""
    if any(d < DYN for d in target):
        raise ShapeError(f"expand shape {list(target)} may hold only sizes >= 0 and -1")
    return broadcast(x, tuple(target))
